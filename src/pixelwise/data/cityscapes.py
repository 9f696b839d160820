"""Cityscapes fine annotations (``cityscapes:PATH``): labelIds mapped to the 19 trainIds, the rest ignored.

Layout under PATH::

    leftImg8bit/{train,val}/CITY/CITY_000000_000019_leftImg8bit.png
    gtFine/{train,val}/CITY/CITY_000000_000019_gtFine_labelIds.png       raw ids 0..33 (mapped by LABELS below)
    gtFine/{train,val}/CITY/CITY_000000_000019_gtFine_labelTrainIds.png  optional; used as is when every image has one

Predictions are written back as labelIds (what the benchmark server takes) through ``info.source_ids``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pixelwise.data.info import DatasetInfo
from pixelwise.data.label_maps import IGNORE, LabelMap
from pixelwise.data.segmentation import SegmentationDataset
from pixelwise.data.validation import CITYSCAPES_LABEL_ID_HINT, DatasetError

# (labelId, trainId, name, colour) of the official cityscapesScripts labels.py (license plate, id -1, left out:
# PNGs cannot hold it).
LABELS = (
    (0, IGNORE, "unlabeled", (0, 0, 0)), (1, IGNORE, "ego vehicle", (0, 0, 0)),
    (2, IGNORE, "rectification border", (0, 0, 0)), (3, IGNORE, "out of roi", (0, 0, 0)),
    (4, IGNORE, "static", (0, 0, 0)), (5, IGNORE, "dynamic", (111, 74, 0)), (6, IGNORE, "ground", (81, 0, 81)),
    (7, 0, "road", (128, 64, 128)), (8, 1, "sidewalk", (244, 35, 232)), (9, IGNORE, "parking", (250, 170, 160)),
    (10, IGNORE, "rail track", (230, 150, 140)), (11, 2, "building", (70, 70, 70)), (12, 3, "wall", (102, 102, 156)),
    (13, 4, "fence", (190, 153, 153)), (14, IGNORE, "guard rail", (180, 165, 180)),
    (15, IGNORE, "bridge", (150, 100, 100)), (16, IGNORE, "tunnel", (150, 120, 90)), (17, 5, "pole", (153, 153, 153)),
    (18, IGNORE, "polegroup", (153, 153, 153)), (19, 6, "traffic light", (250, 170, 30)),
    (20, 7, "traffic sign", (220, 220, 0)), (21, 8, "vegetation", (107, 142, 35)), (22, 9, "terrain", (152, 251, 152)),
    (23, 10, "sky", (70, 130, 180)), (24, 11, "person", (220, 20, 60)), (25, 12, "rider", (255, 0, 0)),
    (26, 13, "car", (0, 0, 142)), (27, 14, "truck", (0, 0, 70)), (28, 15, "bus", (0, 60, 100)),
    (29, IGNORE, "caravan", (0, 0, 90)), (30, IGNORE, "trailer", (0, 0, 110)), (31, 16, "train", (0, 80, 100)),
    (32, 17, "motorcycle", (0, 0, 230)), (33, 18, "bicycle", (119, 11, 32)),
)  # fmt: skip
LABEL_ID_TO_TRAIN_ID = {label_id: train_id for label_id, train_id, _, _ in LABELS}
LABEL_ID_MAP = LabelMap(LABEL_ID_TO_TRAIN_ID, "Cityscapes labelId -> trainId")
_TRAIN = sorted(
    (train_id, label_id, name, colour) for label_id, train_id, name, colour in LABELS if train_id != IGNORE
)
CITYSCAPES_INFO = DatasetInfo(
    name="cityscapes",
    class_names=tuple(name for _, _, name, _ in _TRAIN),
    palette=tuple(colour for _, _, _, colour in _TRAIN),
    source_ids=tuple(label_id for _, label_id, _, _ in _TRAIN),
)
SPLITS = ("train", "val", "test")
IMAGE_SUFFIX = "_leftImg8bit"


def cityscapes_dataset(
    path: str | Path,
    split: str = "train",
    *,
    size: tuple[int, int] | None = None,
    transform: Callable | None = None,
    cache: bool = True,
    length: int | None = None,
) -> SegmentationDataset:
    """Cityscapes split ``split`` with gtFine labels: trainIds files when all exist, else labelIds mapped."""
    root = Path(path)
    if split not in SPLITS:
        raise DatasetError(f"{root}: unknown Cityscapes split {split!r}; use one of {', '.join(SPLITS)}")
    images_dir = root / "leftImg8bit" / split
    images = sorted(images_dir.glob(f"*/*{IMAGE_SUFFIX}.png"))
    if not images:
        raise DatasetError(
            f"{images_dir}: no */*{IMAGE_SUFFIX}.png images; cityscapes:PATH must hold leftImg8bit/{split}/CITY/ "
            f"and gtFine/{split}/CITY/"
        )
    images = images[:length]
    stems = [(image.parent.name, image.name[: -len(f"{IMAGE_SUFFIX}.png")]) for image in images]
    labels = root / "gtFine" / split
    train_ids = [labels / city / f"{stem}_gtFine_labelTrainIds.png" for city, stem in stems]
    if all(p.is_file() for p in train_ids):  # already converted by cityscapesScripts: no mapping needed
        return SegmentationDataset(
            list(zip(images, train_ids)), CITYSCAPES_INFO, size=size, transform=transform, cache=cache
        )
    label_ids = [labels / city / f"{stem}_gtFine_labelIds.png" for city, stem in stems]
    missing = [(img, lab) for img, lab in zip(images, label_ids) if not lab.is_file()]
    if missing:
        raise DatasetError(
            f"{missing[0][1]}: label for {missing[0][0]} not found ({len(missing)} image(s) without gtFine "
            f"labelIds); unpack gtFine_trainvaltest.zip into {root}"
        )
    return SegmentationDataset(
        list(zip(images, label_ids)), CITYSCAPES_INFO, size=size, transform=transform, cache=cache,
        label_map=LABEL_ID_MAP,
    )  # fmt: skip


def refuse_label_ids_without_map(label: Path) -> None:
    """A ``*_labelIds`` file read as class indices trains road (id 7) as class 7: refuse it, saying the fix."""
    if label.stem.endswith("labelIds"):
        raise DatasetError(
            f"{label}: a Cityscapes labelIds file read without a label map; {CITYSCAPES_LABEL_ID_HINT}"
        )
