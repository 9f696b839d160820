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
    ``source_ids``: when the files' values were mapped to classes (a label map, Cityscapes' labelId -> trainId),
    the dataset's own id of each class, so predictions can be written back in the ids the dataset uses.
    """

    name: str
    class_names: tuple[str, ...]
    palette: tuple[RGB, ...]
    ignore_index: int = 255
    source_ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.palette) != len(self.class_names):
            raise ValueError(f"{self.name}: {len(self.class_names)} classes but {len(self.palette)} colours")
        # Labels are cached as uint8, so every class id and the ignore value must fit into one byte.
        if not 0 < len(self.class_names) <= self.ignore_index <= 255:
            raise ValueError(f"{self.name}: need 1..{self.ignore_index} classes with ignore_index <= 255")
        if self.source_ids is not None and len(self.source_ids) != len(self.class_names):
            raise ValueError(
                f"{self.name}: {len(self.class_names)} classes but {len(self.source_ids)} source ids"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_metadata(self) -> dict:
        """The label space as stored in checkpoints (so predict draws the same colours without the data)."""
        meta = {
            "name": self.name,
            "class_names": list(self.class_names),
            "palette": [list(c) for c in self.palette],
            "ignore_index": self.ignore_index,
        }
        if self.source_ids is not None:  # predict writes NAME_ids.png in these ids
            meta["source_ids"] = list(self.source_ids)
        return meta


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
    """Build a DatasetInfo from ``classes.txt``: one class per line, in class-index order.

    A line is ``name`` or ``name r g b``; with colours on every line they become the palette, so predictions are
    painted in the dataset's own colours (and colour-coded labels are explained with them). Names may hold spaces.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read class list ({exc}); it must be a UTF-8 text file") from exc
    entries = [
        (no, _class_line(line.strip(), path, no))
        for no, line in enumerate(lines, start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not entries:
        raise DatasetError(f"{path}: class list is empty; write one class name per line, class 0 first")
    if len(entries) > 255:
        raise DatasetError(
            f"{path}: {len(entries)} classes, at most 255 are supported (255 is the ignore value)"
        )
    names = tuple(entry[0] for _, entry in entries)
    coloured = [no for no, entry in entries if entry[1] is not None]
    if coloured and len(coloured) != len(entries):
        missing = next(no for no, entry in entries if entry[1] is None)
        raise DatasetError(
            f"{path}:{missing}: some lines give a colour ('name r g b') and this one does not; give every class "
            f"a colour or none"
        )
    palette = tuple(entry[1] for _, entry in entries) if coloured else default_palette(len(names))
    return DatasetInfo(name=name, class_names=names, palette=palette)  # type: ignore[arg-type]


def _class_line(line: str, path: Path, line_no: int) -> tuple[str, RGB | None]:
    """``name`` -> (name, None); ``name r g b`` (three trailing integers) -> (name, (r, g, b))."""
    fields = line.split()
    tail = fields[-3:]
    if len(fields) < 4 or not all(f.lstrip("-").isdigit() for f in tail):
        return line, None
    colour = tuple(int(v) for v in tail)
    if not all(0 <= v <= 255 for v in colour):
        raise DatasetError(
            f"{path}:{line_no}: colour {tail} out of range; write 'name r g b' with 0..255 values"
        )
    return " ".join(fields[:-3]), colour  # type: ignore[return-value]


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
