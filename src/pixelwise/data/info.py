"""Dataset metadata: class names, display palette and the ignore value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pixelwise.data.validation import DatasetError

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class DatasetInfo:
    """What downstream code (losses, metrics, visualisation) needs to know about a label space.

    ``palette`` is only for drawing predictions; labels on disk are always single-channel class indices.
    """

    name: str
    class_names: tuple[str, ...]
    palette: tuple[RGB, ...]
    ignore_index: int = 255

    def __post_init__(self) -> None:
        if len(self.palette) != len(self.class_names):
            raise ValueError(f"{self.name}: {len(self.class_names)} classes but {len(self.palette)} colours")
        # Labels are cached as uint8, so every class id and the ignore value must fit into one byte.
        if not 0 < len(self.class_names) <= self.ignore_index <= 255:
            raise ValueError(f"{self.name}: need 1..{self.ignore_index} classes with ignore_index <= 255")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_metadata(self) -> dict:
        """The label space as stored in checkpoints (so predict draws the same colours without the data)."""
        return {
            "name": self.name,
            "class_names": list(self.class_names),
            "palette": [list(c) for c in self.palette],
            "ignore_index": self.ignore_index,
        }


def default_palette(n: int) -> tuple[RGB, ...]:
    """The Pascal VOC bit-interleaving palette: deterministic and visually distinct for small n."""
    colours = []
    for i in range(n):
        r = g = b = 0
        c = i + 1  # skip black so that class 0 is visible on a black background
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append((r, g, b))
    return tuple(colours)


def read_classes_file(path: Path, name: str) -> DatasetInfo:
    """Build a DatasetInfo from ``classes.txt``: one class name per line, in class-index order."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read class list ({exc}); it must be a UTF-8 text file") from exc
    names = tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not names:
        raise DatasetError(f"{path}: class list is empty; write one class name per line, class 0 first")
    if len(names) > 255:
        raise DatasetError(
            f"{path}: {len(names)} classes, at most 255 are supported (255 is the ignore value)"
        )
    return DatasetInfo(name=name, class_names=names, palette=default_palette(len(names)))


CAMVID_INFO = DatasetInfo(
    name="camvid",
    class_names=(
        "sky",
        "building",
        "pole",
        "road",
        "sidewalk",
        "tree",
        "sign_symbol",
        "fence",
        "car",
        "pedestrian",
        "bicyclist",
    ),
    palette=(
        (128, 128, 128),
        (128, 0, 0),
        (192, 192, 128),
        (128, 64, 128),
        (60, 40, 222),
        (128, 128, 0),
        (192, 128, 128),
        (64, 64, 128),
        (64, 0, 128),
        (64, 64, 0),
        (0, 128, 192),
    ),
)

SYNTHETIC_INFO = DatasetInfo(
    name="synthetic",
    class_names=("sky", "building", "road", "vegetation", "vehicle", "person"),
    palette=((70, 130, 180), (150, 100, 60), (128, 64, 128), (60, 150, 40), (200, 30, 30), (0, 180, 180)),
)
