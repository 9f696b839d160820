"""CamVid in the SegNet 11-class layout (see ../shared/data/camvid/README.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pixelwise.data.info import CAMVID_INFO
from pixelwise.data.segmentation import SegmentationDataset
from pixelwise.data.validation import DatasetError, check_files_exist, parse_list_file

CAMVID_VOID = 11  # SegNet's "unlabelled" class; mapped to the ignore value so losses and metrics skip it
CAMVID_SPLITS = ("train", "val", "test")


def camvid_dataset(
    root: str | Path,
    split: str = "train",
    *,
    size: tuple[int, int] | None = None,
    transform: Callable | None = None,
    cache: bool = True,
    length: int | None = None,
) -> SegmentationDataset:
    """CamVid split ``split`` from ``root/{split}.txt`` (lines "image label" relative to ``root``).

    ``length`` keeps only the first ``length`` samples (quick experiments).
    """
    if split not in CAMVID_SPLITS:
        raise DatasetError(f"{root}: unknown CamVid split {split!r}; use one of {', '.join(CAMVID_SPLITS)}")
    list_file = Path(root) / f"{split}.txt"
    if not list_file.is_file():
        raise DatasetError(
            f"{list_file}: CamVid list file not found; expected the SegNet layout "
            f"(train.txt, val.txt, ... next to train/, trainannot/, ...) under {root}"
        )
    pairs = parse_list_file(list_file)[:length]
    check_files_exist(pairs, list_file)
    return SegmentationDataset(
        pairs, CAMVID_INFO, size=size, transform=transform, cache=cache, label_map={CAMVID_VOID: 255}
    )
