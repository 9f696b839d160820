"""Decoding and checking of image/label files.

Every failure is a :class:`DatasetError` whose message starts with the offending file and ends with how to
fix it, because a bad file in a 10k-image dataset is otherwise a needle in a haystack.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pixelwise.data.palettes import VOC_VOID_COLOUR, palette_lookup, voc_palette

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
# Lossy compression blends neighbouring class ids into values no annotator wrote (fake classes along every
# edge), so these are refused as label maps; the decoded format is checked too, whatever the file is called.
LOSSY_LABEL_EXTENSIONS = (".jpg", ".jpeg", ".webp")
_LOSSY_FORMATS = ("JPEG", "MPO", "WEBP")


# Full-scale value per high-bit-depth PIL mode ("I" is how older Pillow opens 16-bit PNGs; "F" is assumed 0..1).
_HIGH_DEPTH_SCALE = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0, "F": 1.0}


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or inconsistent; the message names the file and the fix."""


class DecodedOnDemand:
    """``preload`` / ``validate`` for datasets that decode sample ``index`` in ``load_raw(index)`` (raising
    :class:`DatasetError` on a bad file) and cache it when ``self.cache`` is set."""

    cache: bool

    def load_raw(self, index: int) -> object:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def preload(self, progress: bool = True) -> None:
        """Decode every sample into the cache now (implies caching), e.g. before forking DataLoader workers."""
        self.cache = True
        for index in range(len(self)):
            self.load_raw(index)

    def validate(self, progress: bool = False) -> list[str]:
        """One message per bad sample (empty list = all good)."""
        problems = []
        for index in range(len(self)):
            try:
                self.load_raw(index)
            except DatasetError as exc:
                problems.append(str(exc))
        return problems


# The report list of the innermost ``skip_bad_samples()`` block, or None outside one (bad samples raise).
_SKIP_REPORT: ContextVar[list[str] | None] = ContextVar("pixelwise_skip_bad_report", default=None)


@contextmanager
def skip_bad_samples() -> Iterator[list[str]]:
    """Inside this block, datasets drop bad samples when they are preloaded or checked instead of raising.

    Yields a list that collects one message (file and reason) per dropped sample, for the run's report. A
    context rather than a ``build_dataset`` argument so that the trainer's ``--skip-bad`` reaches the datasets
    every task builds without each task having to pass it along.
    """
    report: list[str] = []
    token = _SKIP_REPORT.set(report)
    try:
        yield report
    finally:
        _SKIP_REPORT.reset(token)


def skip_report() -> list[str] | None:
    """The active ``skip_bad_samples()`` report list, or None when bad samples must raise."""
    return _SKIP_REPORT.get()


def _open(path: Path, what: str) -> Image.Image:
    if not path.is_file():
        raise DatasetError(
            f"{path}: {what} file not found; check the path (relative paths are resolved "
            f"against the list file's folder)"
        )
    try:
        img = Image.open(path)
        img.load()  # force the decode here so that truncated files fail now, with the file name
    except Image.DecompressionBombError as exc:
        raise DatasetError(
            f"{path}: {what} is too large to decode safely ({exc}); downscale it or remove it"
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            f"{path}: cannot decode {what} ({exc}); the file is corrupt or not an image, "
            f"re-export or replace it"
        ) from exc
    except Exception as exc:  # Pillow's decoders fail on hostile bytes with many other types too (fuzz test)
        raise DatasetError(
            f"{path}: cannot decode {what} ({type(exc).__name__}: {exc}); the file is corrupt, "
            f"re-export or replace it"
        ) from exc
    return img


def _upright(img: Image.Image, path: Path, what: str) -> Image.Image:
    """Apply the EXIF orientation tag (cameras store portrait photos sideways); a broken tag names the file."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception as exc:
        raise DatasetError(
            f"{path}: cannot apply the {what}'s EXIF orientation ({type(exc).__name__}: {exc}); "
            f"re-save the file without EXIF data"
        ) from exc


def load_image(path: Path) -> np.ndarray:
    """Decode an input image to uint8 RGB [H, W, 3].

    EXIF orientation is applied. Grayscale is replicated to 3 channels, alpha is dropped (not composited),
    palette and CMYK images are converted to RGB, and 16-bit images are scaled to 8 bits (value / 257;
    Pillow already reduces 16-bit RGB(A) PNGs to 8 bits the same way).
    """
    img = _upright(_open(path, "image"), path, "image")
    try:
        if img.mode in _HIGH_DEPTH_SCALE:  # 16/32-bit grayscale: PIL's convert("RGB") would clip, not scale
            arr = np.asarray(img, dtype=np.float64) * (255.0 / _HIGH_DEPTH_SCALE[img.mode])
            grey = np.clip(np.nan_to_num(np.rint(arr)), 0, 255).astype(np.uint8)
            return np.repeat(grey[..., None], 3, axis=2)
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    # An exotic mode Pillow cannot convert (e.g. "La"), or a decode error surfacing late.
    except Exception as exc:
        raise DatasetError(
            f"{path}: cannot convert image mode {img.mode!r} to RGB ({type(exc).__name__}: {exc}); "
            f"re-export it as an 8-bit RGB PNG or JPEG"
        ) from exc


def load_label(path: Path, palette: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """Decode a label map of class indices to an integer array [H, W].

    Palette-mode PNGs are read as their indices (the Pascal VOC convention). RGB/RGBA labels are accepted
    only when all channels are equal (a grey image saved as RGB); real colour labels are rejected.
    """
    opened = _open(path, "label")
    if opened.format in _LOSSY_FORMATS:  # before _upright: a transposed copy no longer knows its format
        raise DatasetError(_lossy_label_message(path, opened.format))
    img = _upright(opened, path, "label")  # same orientation handling as the image
    if img.mode in ("RGB", "RGBA"):
        rgb = np.asarray(img.convert("RGB"))
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
            return rgb[..., 0]
        raise DatasetError(_colour_label_message(path, rgb, palette))
    if img.mode in ("LA", "PA"):
        img = img.getchannel(0)
    if img.mode not in ("L", "P", "1", "I", "I;16", "I;16B", "I;16L"):
        raise DatasetError(
            f"{path}: label has unsupported mode {img.mode!r}; save labels as single-channel "
            f"8-bit PNGs of class indices"
        )
    return np.asarray(img).astype(np.int64)


def _lossy_label_message(path: Path, kind: str) -> str:
    return (
        f"{path}: label is a lossy {kind} file; compression invents class ids along every edge, so label maps "
        f"must be lossless: re-export it from the original annotations as a PNG of class indices"
    )


def _colour_label_message(path: Path, rgb: np.ndarray, palette: Sequence[tuple[int, int, int]]) -> str:
    """Explain a colour-coded label with the palette that places most of its colours: this dataset's, or VOC's.

    VOC's real palette starts at black = background (class 0) and paints void (224,224,192) = 255; a hint built on
    another palette would have a user convert aeroplane to background.
    """
    colours = [tuple(int(v) for v in c) for c in np.unique(rgb.reshape(-1, 3), axis=0)]
    candidates = [
        ("this dataset's palette", palette_lookup(list(palette))),
        ("the PASCAL VOC palette", palette_lookup(voc_palette(21), VOC_VOID_COLOUR)),
    ]
    name, lookup = max(
        candidates, key=lambda c: sum(colour in c[1] for colour in colours)
    )  # ties: the dataset's
    placed = [f"{c}->{lookup[c]}" for c in colours if c in lookup]
    unplaced = [str(c) for c in colours if c not in lookup]
    mapping = ", ".join(placed[:12]) + (f" (+{len(placed) - 12} more)" if len(placed) > 12 else "")
    not_placed = (
        f"; colours not in it (give each a class or 255): {', '.join(unplaced[:8])}"
        + (f" (+{len(unplaced) - 8} more)" if len(unplaced) > 8 else "")
        if unplaced
        else ""
    )
    return (
        f"{path}: label looks colour-coded ({len(colours)} distinct RGB colours, {len(placed)} of them in {name}); "
        f"labels must be single-channel PNGs of class indices: map each colour to its class "
        f"({mapping or 'none placed'}){not_placed}, other pixels -> 255 = ignore, and save in mode 'L'"
    )


def binary_mask_message(path: Path, files: int, ignore_index: int) -> str:
    """Why a dataset whose label files hold only 0 and the ignore value 255 is refused (``path``: one of them)."""
    return (
        f"{path}: the {files} label file(s) checked hold only the values 0 and {ignore_index}, the format of "
        f"binary masks saved as 0/255; {ignore_index} is the ignore value, so every foreground pixel would be "
        f"left out of training and scoring; save the masks as class ids 0/1 (e.g. mask // 255), with "
        f"{ignore_index} only for void pixels"
    )


def check_label(label: np.ndarray, path: Path, num_classes: int, ignore_index: int) -> None:
    """Reject class ids outside [0, num_classes) other than the ignore value, saying which and how often."""
    values, counts = np.unique(label, return_counts=True)
    bad = (values < 0) | ((values >= num_classes) & (values != ignore_index))
    if bad.any():
        detail = ", ".join(f"{int(v)} ({int(c)} px)" for v, c in zip(values[bad][:8], counts[bad][:8]))
        raise DatasetError(
            f"{path}: label values outside 0..{num_classes - 1} (and not the ignore value "
            f"{ignore_index}): {detail}; {_out_of_range_fix(values[bad], num_classes, ignore_index)}"
        )


CITYSCAPES_LABEL_ID_HINT = (
    "these look like Cityscapes labelIds (road = 7, sky = 23, car = 26), not the 19 trainIds: read the dataset "
    "with --data cityscapes:ROOT, or pass --label-map with the labelId -> trainId table"
)


def _out_of_range_fix(bad: np.ndarray, num_classes: int, ignore_index: int) -> str:
    # 19 classes and ids up to 33 (Cityscapes' last labelId): raw labelIds, which remapping, not classes.txt, fixes.
    if num_classes == 19 and int(bad.max()) <= 33 and int(bad.min()) >= 0:
        return CITYSCAPES_LABEL_ID_HINT
    return (
        f"fix the class count (classes.txt) or remap these values to valid classes or to {ignore_index} "
        f"(--label-map FILE)"
    )


def check_same_size(image: np.ndarray, label: np.ndarray, image_path: Path, label_path: Path) -> None:
    if image.shape[:2] != label.shape[:2]:
        raise DatasetError(
            f"{label_path}: label is {label.shape[1]}x{label.shape[0]} (WxH) but its image "
            f"{image_path} is {image.shape[1]}x{image.shape[0]}; labels must have exactly the "
            f"image's size (resize labels with nearest neighbour only)"
        )


def resolve_inside(root: Path, entry: str, list_file: Path, line_no: int) -> Path:
    """Resolve a list-file entry against ``root`` and refuse paths that escape it (``../``, absolute).

    The check is lexical, so symlinks inside the dataset folder keep working.
    """
    # Absolute, still lexical: a list in the current folder has root "." (which no joined path starts with).
    joined = os.path.abspath(os.path.join(root, entry))
    root_str = os.path.abspath(root)
    if os.path.isabs(entry) or os.path.commonpath([joined, root_str]) != root_str:
        raise DatasetError(
            f"{list_file}:{line_no}: path {entry!r} points outside {root_str}; list-file "
            f"paths must be relative to the list file's folder and stay inside it"
        )
    return Path(joined)


def parse_list_file(list_file: Path) -> list[tuple[Path, Path]]:
    """Read "image label" lines (blank lines and ``#`` comments allowed) into resolved path pairs.

    Labels in a lossy format (``LOSSY_LABEL_EXTENSIONS``) are refused here, before anything is decoded.
    """
    try:
        text = list_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"{list_file}: cannot read list file ({exc}); check the path") from exc
    root = list_file.parent
    pairs = []
    lossy: list[tuple[int, str]] = []  # (line, label entry) of labels in a lossy format
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2:
            raise DatasetError(
                f"{list_file}:{line_no}: expected 2 fields 'image-path label-path', got "
                f"{len(fields)} in {line!r}; paths with spaces are not supported"
            )
        pairs.append(tuple(resolve_inside(root, f, list_file, line_no) for f in fields))
        if Path(fields[1]).suffix.lower() in LOSSY_LABEL_EXTENSIONS:
            lossy.append((line_no, fields[1]))
    if not pairs:
        raise DatasetError(
            f"{list_file}: list file has no samples; add lines 'image-path label-path' relative to {root}"
        )
    if lossy and skip_report() is None:  # inside skip_bad_samples() load_label drops and reports each one
        line_no, entry = lossy[0]
        more = f" ({len(lossy)} lossy label files in all)" if len(lossy) > 1 else ""
        kind = "WebP" if entry.lower().endswith(".webp") else "JPEG"
        raise DatasetError(f"{list_file}:{line_no}: {_lossy_label_message(Path(entry), kind)}{more}")
    return pairs


def check_files_exist(pairs: Sequence[tuple[Path, Path]], source: Path) -> None:
    """Cheap up-front existence check (one stat per file), so a typo fails at construction, not mid-epoch.

    Inside ``skip_bad_samples()`` it does not raise: the per-sample check at preload/check time drops and
    reports those samples like any other bad file.
    """
    missing = [str(p) for pair in pairs for p in pair if not p.is_file()]
    if missing and skip_report() is None:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DatasetError(
            f"{missing[0]}: file not found (listed in {source}; missing: "
            f"{', '.join(missing[:3])}{more}); fix the paths or remove those entries"
        )
