"""RGB-D data: 16-bit depth PNGs (millimetres), list files where only some images carry labels, and the
wrappers that put depth where a model reads it (Mostajabi thesis §5.5.2; Long thesis §3.4).

List-file format (``rgbd:LIST_FILE``), one sample per line, paths relative to the list file's folder::

    rgb/0001.png  depth/0001.png  labels/0001.png   # fully labelled: seg + depth
    rgb/0002.png  depth/0002.png                    # depth only (NYU's raw frames), or "-" as the label

Depth PNGs are 16-bit greyscale in millimetres, 0 = no measurement (the Kinect / NYUv2 convention); a
``classes.txt`` beside the list file names the classes. Items are ``(Image, {"seg": Mask (255 where the image
has no labels), "depth": Depth metres [1,H,W], "has_seg": bool})``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from pixelwise.data.info import DatasetInfo, read_classes_file
from pixelwise.data.tensors import Depth
from pixelwise.data.validation import DatasetError, DecodedOnDemand, resolve_inside

MM_PER_METRE = 1000.0
MAX_PNG_METRES = 65535 / MM_PER_METRE  # the most a 16-bit millimetre PNG holds
# The depth channel fed to a network (late / early fusion): log metres centred on log 10 m, so 1-80 m maps to
# about -2.3..2.1 and "unknown" (0) to the centre.
LOG_DEPTH_CENTRE = math.log(10.0)


def write_depth_png(path: str | Path, metres: np.ndarray | torch.Tensor) -> None:
    """Save depth [H,W] in metres as a 16-bit PNG in millimetres (unknown, <= 0 or NaN -> 0; max 65.535 m)."""
    values = np.asarray(metres.as_subclass(torch.Tensor) if isinstance(metres, torch.Tensor) else metres)
    values = np.nan_to_num(values.astype(np.float64).squeeze(), nan=0.0)
    millimetres = np.rint(values * MM_PER_METRE)
    beyond = int((millimetres > 65535).sum())
    if beyond:  # e.g. the synthetic sky (80 m): saturates, and says so
        warnings.warn(f"{path}: {beyond} pixels beyond {MAX_PNG_METRES} m saved as that", stacklevel=2)
    millimetres = np.clip(millimetres, 0, 65535).astype(np.uint16)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(millimetres).save(path)


def read_depth_png(path: str | Path) -> np.ndarray:
    """A 16-bit millimetre depth PNG -> float32 [H,W] metres (0 = unknown)."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read depth PNG ({exc})") from exc
    if array.ndim != 2 or array.dtype not in (np.uint16, np.int32, np.uint8):
        raise DatasetError(
            f"{path}: depth must be a single-channel 16-bit PNG in millimetres, got {array.dtype}"
        )
    if array.dtype == np.uint8:
        raise DatasetError(f"{path}: an 8-bit PNG; depth must be 16-bit millimetres (8 bits hold 0.255 m)")
    return (array.astype(np.float32) / MM_PER_METRE).astype(np.float32)


def depth_channel(depth: torch.Tensor) -> torch.Tensor:
    """Metric depth [..., 1, H, W] -> the network's depth channel: log metres - log 10 m, 0 where unknown. Depth
    is clipped at what a 16-bit millimetre PNG holds (65.535 m), so the data's own depth (--extra-input depth,
    e.g. the synthetic sky at 80 m) and the same depth read back from PNGs give the same channel."""
    depth = depth.as_subclass(torch.Tensor).float().clamp(max=MAX_PNG_METRES)
    return torch.where(depth > 0, depth.clamp(min=1e-3).log() - LOG_DEPTH_CENTRE, torch.zeros_like(depth))


def parse_rgbd_list(list_file: Path) -> list[tuple[Path, Path, Path | None]]:
    """(image, depth, label or None) per line of an RGB-D list file (see the module docstring)."""
    try:
        text = list_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"{list_file}: cannot read RGB-D list file ({exc}); check the path") from exc
    entries: list[tuple[Path, Path, Path | None]] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) not in (2, 3):
            raise DatasetError(
                f"{list_file}:{line_no}: expected 'image depth [label]', got {len(fields)} fields in {line!r}"
            )
        image, depth = (resolve_inside(list_file.parent, f, list_file, line_no) for f in fields[:2])
        label = None
        if len(fields) == 3 and fields[2] != "-":
            label = resolve_inside(list_file.parent, fields[2], list_file, line_no)
        for path in (image, depth, label):
            if path is not None and not path.is_file():
                raise DatasetError(f"{list_file}:{line_no}: {path} does not exist")
        entries.append((image, depth, label))
    if not entries:
        raise DatasetError(f"{list_file}: no samples; add lines 'image depth [label]'")
    return entries


class RGBDDataset(DecodedOnDemand, Dataset):
    """RGB + metric depth, with labels on some images (``labelled[i]``); see the module docstring."""

    def __init__(
        self,
        entries: Sequence[tuple[Path, Path, Path | None]],
        info: DatasetInfo,
        *,
        size: tuple[int, int] | None = None,
        transform: Callable | None = None,
        cache: bool = True,
    ) -> None:
        self.entries = list(entries)
        self.info = info
        self.names = [image.stem for image, _, _ in self.entries]
        self.labelled = [label is not None for _, _, label in self.entries]
        self.size, self.transform, self.cache = size, transform, cache
        self._cache: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None] = [None] * len(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def load_raw(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image uint8 [3,H,W], seg uint8 [H,W] (255 without labels), depth float32 [H,W] metres)."""
        cached = self._cache[index]
        if cached is not None:
            return cached
        image_path, depth_path, label_path = self.entries[index]
        with Image.open(image_path) as file:
            image = torch.from_numpy(np.asarray(file.convert("RGB")).copy()).permute(2, 0, 1)
        depth = torch.from_numpy(read_depth_png(depth_path))
        if label_path is None:
            seg = torch.full(depth.shape, 255, dtype=torch.uint8)
        else:
            with Image.open(label_path) as file:
                seg = torch.from_numpy(np.asarray(file).astype(np.uint8).copy())
        if not image.shape[-2:] == depth.shape == seg.shape:
            raise DatasetError(
                f"{image_path}: image {tuple(image.shape[-2:])}, depth {tuple(depth.shape)} and labels "
                f"{tuple(seg.shape)} differ in size"
            )
        if self.size is not None:
            image = F.resize(image, list(self.size), antialias=True)
            nearest = InterpolationMode.NEAREST
            depth = F.resize(depth[None], list(self.size), interpolation=nearest)[0]
            seg = F.resize(seg[None], list(self.size), interpolation=nearest)[0]
        item = (image, seg, depth)
        if self.cache:
            self._cache[index] = item
        return item

    def load_label(self, index: int) -> torch.Tensor:
        return self.load_raw(index)[1]

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict[str, torch.Tensor]]:
        image_u8, seg, depth = self.load_raw(index)
        image = F.to_dtype(tv_tensors.Image(image_u8), torch.float32, scale=True)
        target: dict[str, torch.Tensor] = {"seg": tv_tensors.Mask(seg.long()), "depth": Depth(depth[None])}
        if self.transform is not None:
            image, target = self.transform(image, target)
        target["has_seg"] = torch.tensor(self.labelled[index])  # after the transform: v2 leaves it alone
        return image, target


def rgbd_dataset(
    list_file: str | Path,
    *,
    size: tuple[int, int] | None = None,
    transform: Callable | None = None,
    cache: bool = True,
    length: int | None = None,
) -> RGBDDataset:
    """``rgbd:LIST_FILE``: the list file's samples (first ``length``), classes from ``classes.txt`` beside it."""
    path = Path(list_file)
    classes = path.parent / "classes.txt"
    if not classes.is_file():
        raise DatasetError(f"{path}: no {classes}; list the class names there, one a line (class 0 first)")
    info = read_classes_file(classes, path.parent.name or "rgbd")
    entries = parse_rgbd_list(path)[:length]
    return RGBDDataset(entries, info, size=size, transform=transform, cache=cache)


def export_rgbd(dataset: Any, folder: str | Path, labelled: Sequence[bool] | None = None) -> Path:
    """Write ``dataset``'s untransformed samples (anything with ``load_raw``, e.g. the synthetic scenes) as an
    RGB-D list-file dataset; ``labelled[i]`` False leaves sample i's labels out. Returns the list file."""
    folder = Path(folder)
    for sub in ("rgb", "depth", "labels"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(len(dataset)):
        image, seg, depth = dataset.load_raw(index)
        name = f"{index:05d}.png"
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / "rgb" / name)
        write_depth_png(folder / "depth" / name, depth.numpy())
        line = f"rgb/{name} depth/{name}"
        if labelled is None or labelled[index]:
            Image.fromarray(seg.numpy().astype(np.uint8)).save(folder / "labels" / name)
            line += f" labels/{name}"
        lines.append(line)
    (folder / "classes.txt").write_text("\n".join(dataset.info.class_names) + "\n")
    (folder / "list.txt").write_text("\n".join(lines) + "\n")
    return folder / "list.txt"


class PartialLabels(Dataset):
    """``dataset`` with segmentation labels kept only where ``labelled[i]``: the other images keep their depth
    (Mostajabi §5.5.2's depth-only frames), their ``seg`` becomes all-void (255) and ``has_seg`` False."""

    def __init__(self, dataset: Any, labelled: Sequence[bool]) -> None:
        if len(labelled) != len(dataset):
            raise ValueError(f"{len(labelled)} labelled flags for {len(dataset)} images")
        self.dataset = dataset
        self.info = dataset.info
        own = getattr(dataset, "labelled", None)  # an RGB-D list file's depth-only lines stay depth-only
        self.labelled = [bool(a) and (own is None or bool(own[i])) for i, a in enumerate(labelled)]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image, target = self.dataset[index]
        target = dict(target)
        if not self.labelled[index]:
            target["seg"] = target["seg"].clone().fill_(255)
        target["has_seg"] = torch.tensor(self.labelled[index])
        return image, target


def depth_folder(extra_input: str | None) -> str | None:
    """``--extra-input`` -> the folder of depth PNGs it names, or None for ``depth`` (the data's own depth)."""
    return None if extra_input in (None, "depth") else extra_input


def image_with_depth(image: torch.Tensor, depth_png: Path) -> torch.Tensor:
    """RGB [3, H, W] in [0, 1] + its 16-bit depth PNG -> [4, H, W], the input of a fusion model."""
    if not depth_png.is_file():
        raise DatasetError(
            f"{depth_png}: no depth PNG for this image (16-bit millimetres, named by its stem)"
        )
    depth = torch.from_numpy(read_depth_png(depth_png))[None]
    if depth.shape[-2:] != image.shape[-2:]:
        raise DatasetError(
            f"{depth_png}: depth is {tuple(depth.shape[-2:])} but its image is {tuple(image.shape[-2:])} (H, W)"
        )
    return torch.cat([image, depth_channel(depth)])


class WithDepthChannel(Dataset):
    """``dataset``'s images with a depth channel appended, [3 + 1, H, W] (:func:`depth_channel`), for early /
    late fusion (Long §3.4). The depth comes from the items' own ``depth`` target (after their transform, so
    crops and flips agree), or from ``folder``: 16-bit millimetre PNGs named by each image's stem, attached
    before ``transform`` (then ``dataset`` must be built without one)."""

    def __init__(
        self, dataset: Any, folder: str | Path | None = None, transform: Callable | None = None
    ) -> None:
        self.dataset, self.transform = dataset, transform
        self.folder = Path(folder) if folder is not None else None
        self.info = dataset.info
        self.names = getattr(dataset, "names", None)
        if self.folder is not None:
            if not self.folder.is_dir():
                raise DatasetError(f"{self.folder}: no such depth folder")
            missing = [n for n in (self.names or []) if not (self.folder / f"{n}.png").is_file()]
            if self.names is None or missing:
                raise DatasetError(
                    f"{self.folder}: no depth PNG for {', '.join(missing[:3]) or 'these images'} (expected "
                    f"16-bit PNGs named by each image's stem)"
                )

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:  # preload, load_label, ... of the wrapped dataset
        if name in ("dataset", "__setstate__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image, target = self.dataset[index]
        if self.folder is not None:
            target = dict(target)
            depth = read_depth_png(self.folder / f"{self.names[index]}.png")
            target["depth"] = Depth(F.resize(torch.from_numpy(depth)[None], list(image.shape[-2:]),
                                             interpolation=InterpolationMode.NEAREST))  # fmt: skip
            if self.transform is not None:
                image, target = self.transform(image, target)
        elif "depth" not in target:
            raise DatasetError("this data has no depth target; pass --extra-input FOLDER of depth PNGs")
        extra = depth_channel(target["depth"])
        return torch.cat([image.as_subclass(torch.Tensor), extra], dim=0), target
