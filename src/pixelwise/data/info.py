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


# Kelly's colours of maximum contrast (Kelly 1965; white and black left out): neighbouring classes stay apart,
# which the VOC bit-interleaving palette did not do (its classes 0 and 8 are (128,0,0) and (192,0,0)).
KELLY = (
    (243, 195, 0), (135, 86, 146), (243, 132, 0), (161, 202, 241), (190, 0, 50), (194, 178, 128), (132, 132, 130),
    (0, 136, 86), (230, 143, 172), (0, 103, 165), (249, 147, 121), (96, 78, 151), (246, 166, 0), (179, 68, 108),
    (220, 211, 0), (136, 45, 23), (141, 182, 0), (101, 69, 34), (226, 88, 34), (43, 61, 38),
)  # fmt: skip


def default_palette(n: int) -> tuple[RGB, ...]:
    """Distinguishable colours for ``n`` classes: Kelly's 20, then golden-ratio hues at alternating brightness."""
    import colorsys

    colours = list(KELLY[:n])
    for i in range(len(colours), n):
        hue = (i * 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, 0.85 if i % 2 else 0.55, 0.95 if (i // 2) % 2 else 0.7)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
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
