"""Instance maps for object proposals (Long thesis Ch. 4, §4.4; spec region-proposals.md "Data").

Items are ``(Image float32 [3,H,W] in [0,1], {"instances": Mask int64 [H,W]})`` with 0 = no object, 255 = void
(ignored by the loss and the metrics) and object ids 1..n (255 skipped). Masks move with transforms v2 flips and
crops, and padding fills them with 255 (void), as it does labels. Three sources:

- ``synthetic-instances:N[:HxW]`` (180x240 by default; N train scenes, N // 4 (at least 4) in the other splits, as
  ``synthetic:N``): the scene renderer's instance map (painter's order, so occlusion-correct) of its buildings,
  trees, vehicles and people. Touching same-class objects stay apart: the case a pixel labeller cannot split (§4.1).
- ``camvid-instances:PATH``: 8-connected components of each thing class of the label maps (car, pedestrian,
  bicyclist, sign_symbol). Components merge touching same-class objects, so this GT conflates the very case the
  method exists for (spec caveat).
- ``instances:FOLDER``: real instance annotations on disk (:func:`load_instance_folder`)::

      FOLDER/images/<stem>.<png|jpg|...>
      FOLDER/instances/<stem>.png     single-channel 8- or 16-bit PNG of ids: 0 none, 255 void at either depth
                                      (16-bit for more than 254 objects; 65535 is read as void too)
      FOLDER/classes.json             {"<stem>": {"<id>": "<class name>", ...}, ...}

Objects smaller than ``min_pixels`` become void, not background: calling them background would teach "not an
object", keeping them would score targets no window is meant for. The default is the spec's 64 px at CamVid's
360x480 and 16 px for the synthetic scenes, scaled with the frame area.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from skimage import measure
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from pixelwise.data.build import parse_synthetic_spec
from pixelwise.data.camvid import camvid_dataset
from pixelwise.data.info import CAMVID_INFO, SYNTHETIC_INFO, DatasetInfo, default_palette
from pixelwise.data.segmentation import SegmentationDataset
from pixelwise.data.synthetic import SyntheticScenes
from pixelwise.data.validation import (
    IMAGE_EXTENSIONS,
    DatasetError,
    DecodedOnDemand,
    load_image,
    load_label,
)

if TYPE_CHECKING:
    from skimage.measure._regionprops import RegionProperties

VOID = 255
# Class ids looked up by name, so they cannot drift from the label spaces: car 8, pedestrian 9, bicyclist 10,
# sign_symbol 6 (CamVid); trees are the synthetic "vegetation" objects.
CAMVID_THING_CLASSES: Mapping[str, int] = {
    name: CAMVID_INFO.class_names.index(name) for name in ("car", "pedestrian", "bicyclist", "sign_symbol")
}
SYNTHETIC_THING_CLASSES: Mapping[str, int] = {
    name: SYNTHETIC_INFO.class_names.index(name) for name in ("building", "vegetation", "vehicle", "person")
}
CAMVID_MIN_PIXELS, CAMVID_FRAME = 64, (360, 480)  # spec: components of >= 64 px at 360x480
SYNTHETIC_MIN_PIXELS, SYNTHETIC_FRAME = 16, (180, 240)  # spec: objects >= 16 px at 180x240
SPEC_HELP = "'synthetic-instances:N[:HxW]', 'camvid-instances:PATH' or 'instances:FOLDER'"


def scaled_min_pixels(pixels: int, frame: tuple[int, int], size: tuple[int, int] | None) -> int:
    """``pixels`` at ``frame`` (H, W) scaled to a frame of ``size`` (same object, fewer pixels); at least 1."""
    if size is None:
        return pixels
    return max(1, round(pixels * size[0] * size[1] / (frame[0] * frame[1])))


# --- Components --------------------------------------------------------------------------------------------------


def class_components(
    label: np.ndarray, classes: Mapping[str, int], min_pixels: int = 1
) -> Iterator[tuple[str, int, RegionProperties]]:
    """(class name, class id, region) for every 8-connected component of each class in ``classes`` (name -> id)
    with at least ``min_pixels`` pixels, class by class in ``classes`` order, then in raster order of the
    components' first pixels (scikit-image's labelling)."""
    for name, class_id in classes.items():
        for region in measure.regionprops(measure.label(label == class_id, connectivity=2)):
            if region.area >= min_pixels:
                yield name, class_id, region


def _next_id(current: int) -> int:
    return current + 2 if current + 1 == VOID else current + 1


def component_instances(
    label: torch.Tensor | np.ndarray, classes: Mapping[str, int], min_pixels: int, void: int = VOID
) -> tuple[torch.Tensor, dict[int, int]]:
    """Instances from a label map [H, W]: (instances int64 [H, W], 0 = none, 255 where ``label`` is ``void`` or a
    component is smaller than ``min_pixels``, ids 1..n (255 skipped); classes_of: id -> class id).

    Components are 8-connected, per class of ``classes`` (name -> id), in :func:`class_components` order.
    """
    label = label.numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be [H, W], got shape {label.shape}")
    instances = np.zeros(label.shape, np.int64)
    instances[label == void] = VOID
    classes_of: dict[int, int] = {}
    current = 0
    for _, class_id, region in class_components(label, classes):
        rows, cols = region.coords[:, 0], region.coords[:, 1]
        if region.area < min_pixels:
            instances[rows, cols] = VOID
            continue
        current = _next_id(current)
        instances[rows, cols] = current
        classes_of[current] = class_id
    return torch.from_numpy(instances), classes_of


def compact_instances(
    ids: np.ndarray, classes: Mapping[int, int], min_pixels: int, void: int = VOID
) -> tuple[torch.Tensor, dict[int, int]]:
    """Renumber an instance map whose objects are already separate (synthetic painting order, a file): objects in
    ``classes`` (id -> class id) with at least ``min_pixels`` pixels get ids 1..n in increasing old-id order (255
    skipped); smaller ones become void, ids without a class become 0; ``void`` stays void."""
    out = np.zeros(ids.shape, np.int64)
    out[ids == void] = VOID
    values, counts = np.unique(ids[(ids > 0) & (ids != void)], return_counts=True)
    classes_of: dict[int, int] = {}
    current = 0
    for value, count in zip(values.tolist(), counts.tolist()):
        if value not in classes:
            continue
        if count < min_pixels:
            out[ids == value] = VOID
            continue
        current = _next_id(current)
        out[ids == value] = current
        classes_of[current] = classes[value]
    return torch.from_numpy(out), classes_of


# --- The on-disk folder format -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceRecord:
    """One annotated image of an instance folder: its files and its objects' classes (file id -> name)."""

    stem: str
    image: Path
    instances: Path
    classes: Mapping[int, str]


def read_instance_png(path: Path) -> np.ndarray:
    """An instance PNG as int64 [H, W] (0 none, 255 void; 65535 in a 16-bit file read as void too)."""
    if path.suffix.lower() != ".png":
        raise DatasetError(f"{path}: instance maps must be PNG files; save it as an 8- or 16-bit PNG of ids")
    ids = load_label(path, ())
    ids[ids == 65535] = VOID
    return ids


def write_instance_png(path: str | Path, instances: torch.Tensor | np.ndarray) -> None:
    """Save an instance map [H, W] (0 none, 255 void): 8-bit when every id fits, else 16-bit."""
    ids = instances.numpy() if isinstance(instances, torch.Tensor) else np.asarray(instances)
    if ids.min() < 0 or ids.max() > 65534:
        raise ValueError(f"instance ids must lie in 0..65534, got {ids.min()}..{ids.max()}")
    Image.fromarray(ids.astype(np.uint8 if ids.max() <= 255 else np.uint16)).save(path)


def write_instance_folder(
    folder: str | Path,
    samples: Sequence[tuple[str, torch.Tensor | np.ndarray, torch.Tensor | np.ndarray, Mapping[int, str]]],
) -> None:
    """Write (stem, image uint8 [H, W, 3], instances [H, W], id -> class name) samples in the folder format."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "instances").mkdir(exist_ok=True)
    classes = {}
    for stem, image, instances, names in samples:
        array = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        Image.fromarray(array.astype(np.uint8)).save(folder / "images" / f"{stem}.png")
        write_instance_png(folder / "instances" / f"{stem}.png", instances)
        classes[stem] = {str(k): v for k, v in sorted(names.items())}
    (folder / "classes.json").write_text(json.dumps(classes, indent=1) + "\n")


def _read_classes(path: Path) -> dict[str, dict[int, str]]:
    fix = '; it must be JSON {"<stem>": {"<id>": "<class name>", ...}, ...} with integer ids'
    if not path.is_file():
        raise DatasetError(f"{path}: class file not found{fix}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read the classes ({exc}){fix}") from exc
    if not isinstance(raw, dict) or not all(isinstance(entry, dict) for entry in raw.values()):
        raise DatasetError(f"{path}: not an object of objects{fix}")
    try:
        return {str(stem): {int(k): str(v) for k, v in entry.items()} for stem, entry in raw.items()}
    except ValueError as exc:
        raise DatasetError(f"{path}: an id is not an integer ({exc}){fix}") from exc


def load_instance_folder(path: str | Path) -> list[InstanceRecord]:
    """The records of an instance folder (see the module doc), every instance PNG decoded and checked now; each
    problem is one :class:`DatasetError` line naming the file and the fix."""
    root = Path(path)
    for sub in (root, root / "images", root / "instances"):
        if not sub.is_dir():
            raise DatasetError(
                f"{sub}: folder not found; an instance folder holds images/, instances/ and classes.json"
            )
    images: dict[str, Path] = {}
    for image in sorted((root / "images").iterdir()):
        if image.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if image.stem in images:
            raise DatasetError(f"{image}: same stem as {images[image.stem]}; keep one image per stem")
        images[image.stem] = image
    if not images:
        raise DatasetError(
            f"{root / 'images'}: no images found ({', '.join(IMAGE_EXTENSIONS)}); check the folder"
        )
    classes = _read_classes(root / "classes.json")
    records = []
    for stem, image in images.items():
        png = root / "instances" / f"{stem}.png"
        if not png.is_file():
            raise DatasetError(
                f"{image}: no instance map {png}; add it (ids 0 none, 255 void) or remove the image"
            )
        if stem not in classes:
            raise DatasetError(
                f'{root / "classes.json"}: no entry for {stem!r}; add "{stem}": {{"<id>": "<class>"}}'
            )
        present = set(np.unique(read_instance_png(png)).tolist()) - {0, VOID}
        missing = sorted(set(classes[stem]) - present)
        if missing:
            raise DatasetError(
                f"{png}: ids {missing} of classes.json[{stem!r}] are not in the map; remove them from classes.json "
                f"or fix the map"
            )
        unnamed = sorted(present - set(classes[stem]))
        if unnamed:
            raise DatasetError(
                f"{png}: ids {unnamed[:8]} have no class in classes.json[{stem!r}]; add them or set those pixels to 0"
            )
        records.append(InstanceRecord(stem, image, png, classes[stem]))
    return records


# --- The dataset -------------------------------------------------------------------------------------------------

# image uint8 [3,H,W], instances int32 [H,W], classes_of (id -> class id)
_Raw = tuple[torch.Tensor, torch.Tensor, dict[int, int]]
Source = SegmentationDataset | SyntheticScenes | Sequence[InstanceRecord]


class InstanceDataset(DecodedOnDemand, Dataset):
    """Instance maps of a :class:`SegmentationDataset` (components of ``classes``), of :class:`SyntheticScenes`
    (painted objects of ``classes``) or of an instance folder's records, with the image; see the module doc.

    Build the source without a transform: this dataset applies ``transform`` to (image, {"instances"}) jointly.
    ``size`` (H, W) resizes folder samples (bilinear image, NEAREST_EXACT ids); the other sources have their own.
    ``classes`` (name -> id) picks the thing classes of a segmentation or synthetic source (default: CamVid's /
    the synthetic ones); a folder's classes come from its classes.json. ``info`` is the label space that
    ``classes_of`` ids index.
    """

    def __init__(
        self,
        source: Source,
        *,
        classes: Mapping[str, int] | None = None,
        min_pixels: int = 1,
        transform: Callable | None = None,
        size: tuple[int, int] | None = None,
        cache: bool = True,
    ) -> None:
        self.source, self.transform, self.size, self.cache = source, transform, size, cache
        self.min_pixels = min_pixels
        if isinstance(source, SyntheticScenes):
            self.classes = dict(classes if classes is not None else SYNTHETIC_THING_CLASSES)
            self.info, self.names = source.info, list(source.names)
        elif isinstance(source, SegmentationDataset):
            self.classes = dict(classes if classes is not None else CAMVID_THING_CLASSES)
            self.info, self.names = source.info, list(source.names)
        else:
            names = tuple(sorted({name for record in source for name in record.classes.values()})) or (
                "object",
            )
            self.info = DatasetInfo("instances", names, default_palette(len(names)))
            self.classes = {name: k for k, name in enumerate(names)}
            self.names = [record.stem for record in source]
        self._cache: list[_Raw | None] = [None] * len(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict[str, torch.Tensor]]:
        image_u8, instances, _ = self.load_raw(index)
        image = F.to_dtype(tv_tensors.Image(image_u8), torch.float32, scale=True)
        target: dict[str, torch.Tensor] = {"instances": tv_tensors.Mask(instances.long())}
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target

    def load_raw(self, index: int) -> _Raw:
        """(image uint8 [3,H,W], instances int32 [H,W], classes_of id -> class id), untransformed, cached."""
        cached = self._cache[index]
        if cached is not None:
            return cached
        image, instances, classes_of = self._decode(index)
        item = (image, instances.to(torch.int32), classes_of)
        if self.cache:
            self._cache[index] = item
        return item

    def load_instances(self, index: int) -> torch.Tensor:
        """The untransformed instance map int64 [H,W]."""
        return self.load_raw(index)[1].long()

    def classes_of(self, index: int) -> dict[int, int]:
        """Sample ``index``'s id -> class id (an index into ``info.class_names``)."""
        return self.load_raw(index)[2]

    def _decode(self, index: int) -> tuple[torch.Tensor, torch.Tensor, dict[int, int]]:
        source = self.source
        if isinstance(source, SyntheticScenes):
            scene = source.scene(index)  # one render gives the image and the instance map
            assert scene.instances is not None
            wanted = set(self.classes.values())
            painted = {k + 1: p.obj.cls for k, p in enumerate(scene.objects) if p.obj.cls in wanted}
            # No void in a rendered scene: void=-1 keeps a 255th painted object an object.
            instances, classes_of = compact_instances(scene.instances, painted, self.min_pixels, void=-1)
            return torch.from_numpy(scene.image.transpose(2, 0, 1).copy()), instances, classes_of
        if isinstance(source, SegmentationDataset):
            image, label = source.load_uint8(index)
            instances, classes_of = component_instances(label, self.classes, self.min_pixels)
            return image, instances, classes_of
        record = source[index]
        image = torch.from_numpy(np.ascontiguousarray(load_image(record.image).transpose(2, 0, 1)))
        ids = read_instance_png(record.instances)
        if tuple(ids.shape) != tuple(image.shape[1:]):
            raise DatasetError(
                f"{record.instances}: {ids.shape[1]}x{ids.shape[0]} (WxH) but {record.image} is "
                f"{image.shape[2]}x{image.shape[1]}; instance maps must have the image's size"
            )
        named = {k: self.classes[name] for k, name in record.classes.items()}
        instances, classes_of = compact_instances(ids, named, self.min_pixels)
        if self.size is not None and tuple(image.shape[1:]) != tuple(self.size):
            image = F.resize_image(image, list(self.size), InterpolationMode.BILINEAR, antialias=True)
            instances = F.resize_image(instances[None], list(self.size), InterpolationMode.NEAREST_EXACT)[0]
            classes_of = {k: v for k, v in classes_of.items() if bool((instances == k).any())}
        return image.contiguous(), instances, classes_of


def instance_dataset(
    spec: str,
    split: str = "train",
    size: tuple[int, int] | None = None,
    *,
    transform: Callable | None = None,
    cache: bool = True,
    seed: int = 0,
    length: int | None = None,
    min_pixels: int | None = None,
    classes: Mapping[str, int] | None = None,
) -> InstanceDataset:
    """Build an :class:`InstanceDataset` from ``spec`` (:data:`SPEC_HELP`). ``split`` selects the synthetic stream
    and the CamVid list (a folder is one set); ``length`` caps the samples; ``min_pixels`` defaults to the spec's
    sizes scaled to the frame (:func:`scaled_min_pixels`)."""
    options: dict[str, Any] = {"classes": classes, "transform": transform, "cache": cache}
    if spec.startswith("synthetic-instances"):
        rest = spec[len("synthetic-instances") :]
        if rest and not rest.startswith(":"):
            raise DatasetError(f"{spec}: bad spec; use {SPEC_HELP}")
        n, spec_size = parse_synthetic_spec("synthetic" + rest, split)
        frame = size or (spec_size if rest.count(":") >= 2 else SYNTHETIC_FRAME)
        scenes = SyntheticScenes(
            length if length is not None else n, size=frame, seed=seed, split=split, cache=False
        )
        pixels = (
            min_pixels
            if min_pixels is not None
            else scaled_min_pixels(SYNTHETIC_MIN_PIXELS, SYNTHETIC_FRAME, frame)
        )
        return InstanceDataset(scenes, min_pixels=pixels, **options)
    if spec.startswith("camvid-instances:"):
        base = camvid_dataset(spec[len("camvid-instances:") :], split, size=size, cache=False, length=length)
        pixels = (
            min_pixels if min_pixels is not None else scaled_min_pixels(CAMVID_MIN_PIXELS, CAMVID_FRAME, size)
        )
        return InstanceDataset(base, min_pixels=pixels, **options)
    if spec.startswith("instances:"):
        records = load_instance_folder(spec[len("instances:") :])[:length]
        return InstanceDataset(records, min_pixels=min_pixels or 1, size=size, **options)
    raise DatasetError(f"{spec}: unknown instance dataset; use {SPEC_HELP}")


# --- Statistics --------------------------------------------------------------------------------------------------


def instance_stats(
    dataset: InstanceDataset, quantiles: Sequence[float] = (0.1, 0.5, 0.9, 1.0)
) -> dict[str, Any]:
    """Objects per frame (overall and per class name) and sqrt(area) quantiles in px (overall and per class), on
    the untransformed frames (the spec's CamVid figures: 10.8 components per train frame at >= 64 px, 360x480)."""
    names = dict(enumerate(dataset.info.class_names))
    sides: dict[str, list[float]] = {names[c]: [] for c in dataset.classes.values()}
    for index in range(len(dataset)):
        ids, counts = np.unique(dataset.load_raw(index)[1].numpy(), return_counts=True)
        areas = dict(zip(ids.tolist(), counts.tolist()))
        for k, class_id in dataset.classes_of(index).items():
            sides[names[class_id]].append(areas[k] ** 0.5)
    frames = max(1, len(dataset))
    every = [s for values in sides.values() for s in values]

    def spread(values: list[float]) -> dict[str, float]:
        if not values:
            return {}
        found = np.quantile(np.asarray(values), quantiles)
        return {f"q{round(100 * q)}": float(v) for q, v in zip(quantiles, found)}

    return {
        "frames": len(dataset),
        "objects": len(every),
        "per_frame": len(every) / frames,
        "per_frame_by_class": {name: len(values) / frames for name, values in sides.items()},
        "sqrt_area": spread(every),
        "sqrt_area_by_class": {name: spread(values) for name, values in sides.items()},
    }
