"""Keypoints on real images: a small JSON format, its checked loader, and CamVid component keypoints.

Thesis Ch. 2 scores keypoint transfer, classification and prediction (§2.2-2.4) on PASCAL keypoints
[BM09]; none are on hand offline, so (spec correspondence-keypoints.md P4) real images get label-derived
keypoints: the car and pedestrian connected components of CamVid, each with its 4 extreme points and
centroid. Any other annotation (a hand-labelled set, a converted PASCAL file) goes through the same format.

Coordinates are (row, col) in the image file's pixels with pixel p's centre at p (the convention of
:mod:`pixelwise.methods.correspondence`): a keypoint lies in [0, H-1] x [0, W-1]. Boxes give pixel *edges*
(top, left, bottom, right), so a box around pixels 3..5 is (2.5, ..., 5.5, ...) and is 3 px tall, as PCK's
max(h, w) wants (§2.2). The file::

    {"format": "pixelwise-keypoints", "version": 1,
     "images": [{"image": "frames/0001.png", "size": [360, 480],
                 "objects": [{"category": "car",
                              "box": {"top": 99.5, "left": 19.5, "bottom": 140.5, "right": 90.5},
                              "keypoints": {"left": {"row": 120.0, "col": 20.0, "visible": true}}}]}]}

``image`` is relative to the JSON file's folder (or absolute); ``size`` (H, W) is optional and, when given,
must match the image; ``visible`` defaults to true. Every problem is one :class:`DatasetError` line naming the
file, the entry and the fix.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from pixelwise.data.instances import class_components
from pixelwise.data.validation import DatasetError

FORMAT = "pixelwise-keypoints"
VERSION = 1
CAMVID_THINGS: Mapping[str, int] = {"car": 8, "pedestrian": 9}  # SegNet class ids (data/info.py CAMVID_INFO)
COMPONENT_KEYPOINTS = ("top", "bottom", "left", "right", "centroid")
MIN_COMPONENT_PIXELS = 400  # spec P4: components of at least 400 px

Box = tuple[float, float, float, float]  # (top, left, bottom, right) pixel edges


@dataclass(frozen=True)
class Keypoint:
    """One named keypoint: (``row``, ``col``) pixel coordinates, and whether it is visible."""

    row: float
    col: float
    visible: bool = True


@dataclass(frozen=True)
class KeypointObject:
    """One annotated object: its ``category``, ``box`` (top, left, bottom, right; pixel edges), keypoints."""

    category: str
    box: Box
    keypoints: Mapping[str, Keypoint] = field(default_factory=dict)

    @property
    def box_size(self) -> tuple[float, float]:
        """(height, width) of the box in pixels (PCK's max(h, w), thesis §2.2)."""
        top, left, bottom, right = self.box
        return bottom - top, right - left

    def arrays(self, names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(points float32 [K, 2] (row, col), NaN where absent; visible bool [K], False where absent) in the
        order of ``names``: the layout of :func:`pixelwise.metrics.correspondence.pck` and of transfer."""
        points = torch.full((len(names), 2), math.nan)
        visible = torch.zeros(len(names), dtype=torch.bool)
        for k, name in enumerate(names):
            if name in self.keypoints:
                point = self.keypoints[name]
                points[k] = torch.tensor([point.row, point.col])
                visible[k] = point.visible
        return points, visible


@dataclass(frozen=True)
class KeypointImage:
    """The annotations of one image: its file, the (H, W) frame the coordinates refer to, and its objects."""

    image: Path
    size: tuple[int, int]
    objects: tuple[KeypointObject, ...] = ()

    def rescaled(self, size: tuple[int, int]) -> KeypointImage:
        """The same annotations in a frame of ``size`` (H, W), e.g. the resized images a dataset returns.

        Pixel edges scale by the size ratio; a centre p maps to (p + 0.5) * ratio - 0.5, as resizing with
        ``align_corners=False`` (and ``NEAREST_EXACT`` labels) maps pixels.
        """
        sy, sx = size[0] / self.size[0], size[1] / self.size[1]

        def centre(v: float, s: float) -> float:
            return (v + 0.5) * s - 0.5

        objects = tuple(
            replace(
                obj,
                box=(
                    centre(obj.box[0], sy),
                    centre(obj.box[1], sx),
                    centre(obj.box[2], sy),
                    centre(obj.box[3], sx),
                ),
                keypoints={
                    name: replace(p, row=centre(p.row, sy), col=centre(p.col, sx))
                    for name, p in obj.keypoints.items()
                },
            )
            for obj in self.objects
        )
        return KeypointImage(self.image, (int(size[0]), int(size[1])), objects)


# --- The JSON format ----------------------------------------------------------------------------------------


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file as :func:`~pixelwise.data.validation.load_image` returns it (EXIF rotation
    applied), read from the header only."""
    if not path.is_file():
        raise DatasetError(
            f"{path}: image file not found; check the path (relative to the keypoint file's folder)"
        )
    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = img.getexif().get(0x0112, 1)  # EXIF Orientation
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            f"{path}: cannot read the image header ({exc}); re-export or replace the file"
        ) from exc
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)  # 5-8: stored sideways


class _Reader:
    """Walks one parsed file; every error names the file and the JSON path of the bad entry."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> DatasetError:
        return DatasetError(f"{self.path}: {where}: {problem}")

    def mapping(self, value: Any, where: str, required: Sequence[str], optional: Sequence[str] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {type(value).__name__}")
        missing = [k for k in required if k not in value]
        if missing:
            raise self.fail(where, f"missing {', '.join(repr(k) for k in missing)}")
        unknown = sorted(set(value) - set(required) - set(optional))
        if unknown:  # a typo ("visibile") would otherwise be silently ignored
            allowed = ", ".join(repr(k) for k in (*required, *optional))
            raise self.fail(
                where, f"unknown field(s) {', '.join(repr(k) for k in unknown)}; allowed: {allowed}"
            )
        return value

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(where, f"expected a finite number, got {value!r}")
        return float(value)

    def listing(self, value: Any, where: str) -> list:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {type(value).__name__}")
        return value

    def image(self, entry: Any, where: str) -> KeypointImage:
        entry = self.mapping(entry, where, ("image", "objects"), ("size",))
        if not isinstance(entry["image"], str) or not entry["image"]:
            raise self.fail(f"{where}.image", f"expected a file path, got {entry['image']!r}")
        image = Path(os.path.join(self.path.parent, entry["image"]))
        if not image.is_file():
            raise self.fail(
                f"{where}.image", f"image file {image} not found; paths are relative to {self.path.parent}"
            )
        size = image_size(image)
        if "size" in entry:
            given = entry["size"]
            if not isinstance(given, list) or [type(v) for v in given] != [int, int] or tuple(given) != size:
                raise self.fail(
                    f"{where}.size", f"{given!r} does not match the image's [H, W] = {list(size)}"
                )
        objects = self.listing(entry["objects"], f"{where}.objects")
        return KeypointImage(
            image,
            size,
            tuple(self.object(o, f"{where}.objects[{i}]", size, image) for i, o in enumerate(objects)),
        )

    def object(self, entry: Any, where: str, size: tuple[int, int], image: Path) -> KeypointObject:
        entry = self.mapping(entry, where, ("category", "box"), ("keypoints",))
        if not isinstance(entry["category"], str) or not entry["category"]:
            raise self.fail(f"{where}.category", f"expected a non-empty name, got {entry['category']!r}")
        raw = self.mapping(entry["box"], f"{where}.box", ("top", "left", "bottom", "right"))
        box = tuple(self.number(raw[k], f"{where}.box.{k}") for k in ("top", "left", "bottom", "right"))
        top, left, bottom, right = box
        if not (-0.5 <= top < bottom <= size[0] - 0.5 and -0.5 <= left < right <= size[1] - 0.5):
            raise self.fail(
                f"{where}.box",
                f"(top {top:g}, left {left:g}, bottom {bottom:g}, right {right:g}) is empty or leaves the "
                f"{size[0]}x{size[1]} image {image.name} (edges lie in [-0.5, H-0.5] x [-0.5, W-0.5])",
            )
        keypoints = entry.get("keypoints", {})
        if not isinstance(keypoints, dict):
            raise self.fail(f"{where}.keypoints", f"expected an object of named keypoints, got {keypoints!r}")
        return KeypointObject(
            entry["category"],
            box,  # type: ignore[arg-type]
            {
                name: self.keypoint(p, f"{where}.keypoints.{name}", size, image)
                for name, p in keypoints.items()
            },
        )

    def keypoint(self, entry: Any, where: str, size: tuple[int, int], image: Path) -> Keypoint:
        entry = self.mapping(entry, where, ("row", "col"), ("visible",))
        row, col = self.number(entry["row"], f"{where}.row"), self.number(entry["col"], f"{where}.col")
        visible = entry.get("visible", True)
        if not isinstance(visible, bool):
            raise self.fail(f"{where}.visible", f"expected true or false, got {visible!r}")
        if not (0 <= row <= size[0] - 1 and 0 <= col <= size[1] - 1):
            raise self.fail(
                where,
                f"(row {row:g}, col {col:g}) lies outside the {size[0]}x{size[1]} image {image.name} "
                f"(pixel centres run 0..H-1, 0..W-1); fix it or drop the keypoint",
            )
        return Keypoint(row, col, visible)


def load_keypoints(path: str | Path, size: tuple[int, int] | None = None) -> list[KeypointImage]:
    """The checked annotations of a keypoint JSON file, optionally rescaled to a working ``size`` (H, W)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: keypoint file not found; check the path")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); fix the file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the keypoint file ({exc}); it must be UTF-8 JSON") from exc
    reader = _Reader(path)
    data = reader.mapping(data, "top level", ("format", "version", "images"))
    if data["format"] != FORMAT or data["version"] != VERSION:
        raise reader.fail(
            "top level",
            f"format {data['format']!r} version {data['version']!r}; expected {FORMAT!r} version {VERSION}",
        )
    entries = reader.listing(data["images"], "images")
    images = [reader.image(entry, f"images[{i}]") for i, entry in enumerate(entries)]
    return [im.rescaled(size) for im in images] if size is not None else images


def _relative(image: Path, folder: Path) -> str:
    try:
        return os.path.relpath(image.resolve(), folder.resolve())
    except ValueError:  # another drive (Windows): keep it absolute
        return str(image.resolve())


def save_keypoints(path: str | Path, images: Sequence[KeypointImage]) -> None:
    """Write ``images`` in the JSON format, coordinates rescaled to each image file's own pixels and paths
    made relative to the file's folder, so that :func:`load_keypoints` reads them back."""
    path = Path(path)
    entries = []
    for annotated in images:
        native = image_size(annotated.image)
        if native != annotated.size:
            annotated = annotated.rescaled(native)
        entries.append(
            {
                "image": _relative(annotated.image, path.parent),
                "size": list(native),
                "objects": [
                    {
                        "category": obj.category,
                        "box": dict(zip(("top", "left", "bottom", "right"), obj.box)),
                        "keypoints": {
                            name: {"row": p.row, "col": p.col, "visible": p.visible}
                            for name, p in obj.keypoints.items()
                        },
                    }
                    for obj in annotated.objects
                ],
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": FORMAT, "version": VERSION, "images": entries}, indent=1) + "\n")


# --- CamVid component keypoints (spec P4) -------------------------------------------------------------------


def _extreme(coords: np.ndarray, axis: int, largest: bool) -> tuple[float, float]:
    """The component pixel at the extreme of ``axis`` (0 rows, 1 cols); among ties, the median one along the
    other axis, so the point lies on the component (a mean of a concave run need not)."""
    values = coords[:, axis]
    ties = coords[values == (values.max() if largest else values.min())]
    ties = ties[np.argsort(ties[:, 1 - axis], kind="stable")]
    row, col = ties[len(ties) // 2]
    return float(row), float(col)


def component_keypoints(
    label: np.ndarray | torch.Tensor,
    classes: Mapping[str, int] = CAMVID_THINGS,
    min_pixels: int = MIN_COMPONENT_PIXELS,
) -> list[KeypointObject]:
    """Label-derived keypoints of a label map [H, W] (spec P4): every 8-connected component of each class in
    ``classes`` (name -> id) with at least ``min_pixels`` pixels and not cut by the image border, with its 4
    extreme points (:data:`COMPONENT_KEYPOINTS`) and centroid, all visible, and its pixel box.

    Caveats (spec): extreme points are geometric, not semantic parts, and components merge touching objects.
    The centroid of a concave component may lie off it; it is still the component's keypoint.
    """
    label = label.numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be [H, W], got shape {label.shape}")
    h, w = label.shape
    objects = []
    for name, _, region in class_components(label, classes, min_pixels):
        top, left, bottom, right = region.bbox  # rows top..bottom-1, cols left..right-1
        if top == 0 or left == 0 or bottom == h or right == w:  # cut by the border
            continue
        coords = region.coords
        points = {
            "top": _extreme(coords, 0, largest=False),
            "bottom": _extreme(coords, 0, largest=True),
            "left": _extreme(coords, 1, largest=False),
            "right": _extreme(coords, 1, largest=True),
            "centroid": (float(region.centroid[0]), float(region.centroid[1])),
        }
        box = (top - 0.5, left - 0.5, bottom - 0.5, right - 0.5)  # pixel edges
        objects.append(KeypointObject(name, box, {k: Keypoint(*points[k]) for k in COMPONENT_KEYPOINTS}))
    return objects


def camvid_keypoint_images(
    dataset: Any, classes: Mapping[str, int] = CAMVID_THINGS, min_pixels: int = MIN_COMPONENT_PIXELS
) -> list[KeypointImage]:
    """:func:`component_keypoints` of every label of a
    :class:`~pixelwise.data.segmentation.SegmentationDataset`, e.g. ``camvid_dataset(root, "val",
    size=(180, 240))``, in its stored (resized) frame; frames without a qualifying component are kept, with no
    objects."""
    out = []
    for index in range(len(dataset)):
        label = dataset.load_label(index)
        image = dataset.pairs[index][0]
        out.append(
            KeypointImage(image, tuple(label.shape), tuple(component_keypoints(label, classes, min_pixels)))
        )
    return out
