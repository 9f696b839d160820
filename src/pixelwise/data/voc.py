"""PASCAL VOC 2012 segmentation (``voc:PATH``), optionally with the SBD "aug" labels (``SegmentationClassAug``).

Layout under PATH (the ``VOC2012`` folder, or ``VOCdevkit`` above it)::

    JPEGImages/2007_000032.jpg
    SegmentationClass/2007_000032.png        palette-mode PNGs, read as their indices (255 = void boundary)
    ImageSets/Segmentation/{train,val,trainval}.txt
    SegmentationClassAug/2007_000032.png     optional SBD labels: split 'aug' and, when present, 'train'
                                             (list ImageSets/Segmentation/train_aug.txt or trainaug.txt)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pixelwise.data.info import DatasetInfo
from pixelwise.data.palettes import voc_palette
from pixelwise.data.segmentation import SegmentationDataset
from pixelwise.data.validation import DatasetError, skip_report

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
VOC_INFO = DatasetInfo(name="voc", class_names=VOC_CLASSES, palette=voc_palette(len(VOC_CLASSES)))
AUG_SPLITS = ("aug", "train_aug", "trainaug")
AUG_LISTS = ("train_aug.txt", "trainaug.txt")


def voc_root(path: str | Path) -> Path:
    """``path`` itself when it holds JPEGImages/, else its VOC2012/ (PATH may be the VOCdevkit folder)."""
    root = Path(path)
    for candidate in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise DatasetError(
        f"{root}: no JPEGImages/ folder here or in VOC2012/; voc:PATH must point at the VOC2012 folder "
        f"(JPEGImages/, SegmentationClass/, ImageSets/Segmentation/)"
    )


def voc_dataset(
    path: str | Path,
    split: str = "train",
    *,
    size: tuple[int, int] | None = None,
    transform: Callable | None = None,
    cache: bool = True,
    length: int | None = None,
) -> SegmentationDataset:
    """VOC split ``split``: train, val, trainval, or aug (the SBD-augmented list, SegmentationClassAug/).

    ``train`` is the aug list when SegmentationClassAug/ and its list are present (the usual 10,582-image training
    set; it leaves out the val images), else VOC's own 1,464 images; split ``voc-train`` always reads the latter.
    """
    root = voc_root(path)
    lists = root / "ImageSets" / "Segmentation"
    has_aug = (root / "SegmentationClassAug").is_dir() and any((lists / name).is_file() for name in AUG_LISTS)
    if split == "voc-train":
        split = "train"
    elif split == "train" and has_aug:
        split = "aug"
    if split in AUG_SPLITS:
        labels = root / "SegmentationClassAug"
        found = [lists / name for name in AUG_LISTS if (lists / name).is_file()]
        if not labels.is_dir() or not found:
            raise DatasetError(
                f"{labels}: split {split!r} needs SegmentationClassAug/ and {lists / AUG_LISTS[0]}; add the SBD "
                f"aug labels or use split train"
            )
        list_file = found[0]
    else:
        labels, list_file = root / "SegmentationClass", lists / f"{split}.txt"
    if not list_file.is_file():
        raise DatasetError(
            f"{list_file}: VOC split file not found; use split train, val, trainval, aug or voc-train"
        )
    pairs = split_pairs(list_file, root / "JPEGImages", labels)[:length]
    return SegmentationDataset(pairs, VOC_INFO, size=size, transform=transform, cache=cache)


def split_pairs(list_file: Path, images: Path, labels: Path) -> list[tuple[Path, Path]]:
    """(JPEGImages/ID.jpg, LABELS/ID.png) per line of a split file; a line is 'ID' or DeepLab's 'IMAGE LABEL'."""
    pairs = []
    for line_no, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        stem = Path(line.split()[0]).stem
        pair = (images / f"{stem}.jpg", labels / f"{stem}.png")
        missing = [p for p in pair if not p.is_file()]
        if missing and skip_report() is None:  # inside --skip-bad the sample check drops and reports it
            raise DatasetError(
                f"{list_file}:{line_no}: names {stem!r} but {missing[0]} is missing; restore the file or remove "
                f"the line from the split file"
            )
        pairs.append(pair)
    if not pairs:
        raise DatasetError(f"{list_file}: split file lists no images; one image id per line")
    return pairs


def voc_noaug_dataset(path: str | Path, split: str = "train", **options) -> SegmentationDataset:
    """``voc-noaug:PATH``: VOC 2012 with its own 1,464 training images even when the SBD aug labels are there
    (the comparison setting of papers that train without SBD)."""
    return voc_dataset(path, "voc-train" if split == "train" else split, **options)
