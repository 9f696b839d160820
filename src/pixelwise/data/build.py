"""``build_dataset``: one string spec -> dataset object, so configs and the CLI stay declarative."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from pixelwise.data.camvid import camvid_dataset
from pixelwise.data.info import DatasetInfo, read_classes_file
from pixelwise.data.segmentation import SegmentationDataset
from pixelwise.data.synthetic import SyntheticScenes
from pixelwise.data.validation import (
    IMAGE_EXTENSIONS,
    DatasetError,
    check_files_exist,
    parse_list_file,
    skip_report,
)

SPEC_HELP = "'synthetic[:N[:HxW]]', 'camvid:PATH', 'folders:IMAGES_DIR:LABELS_DIR' or a path to an 'image label' list file"


def has_splits(spec: str) -> bool:
    """Synthetic and CamVid data have train/val splits; a list file or a folder pair is one set of images."""
    return spec == "synthetic" or spec.startswith(("synthetic:", "camvid:"))


def validation_spec(data: str, val_data: str | None) -> str:
    """The data validation reads: ``val_data``, else the 'val' split of ``data``.

    A list file or folder pair has no 'val' split, so without ``val_data`` the run is validated on its training
    images (and best.safetensors chosen on them): allowed, for a quick look, but said out loud.
    """
    if val_data:
        return val_data
    if not has_splits(data):
        warnings.warn(
            f"{data} has no 'val' split: validating on the training images; pass --val-data for held-out scores",
            stacklevel=2,
        )
    return data


def parse_synthetic_spec(spec: str, split: str) -> tuple[int, tuple[int, int]]:
    """``synthetic[:N[:HxW]]`` -> (images in this split, (H, W)); val/test splits get N // 4 (at least 4) images."""
    parts = spec.split(":")
    try:
        n = int(parts[1]) if len(parts) > 1 else 200
        height, width = (int(v) for v in parts[2].lower().split("x")) if len(parts) > 2 else (120, 160)
    except ValueError as exc:
        raise DatasetError(
            f"{spec}: bad synthetic spec; use synthetic, synthetic:N or synthetic:N:HxW"
        ) from exc
    if len(parts) > 3 or n < 1 or height < 8 or width < 8:
        raise DatasetError(f"{spec}: bad synthetic spec; use synthetic:N:HxW with N >= 1 and H, W >= 8")
    return (n if split == "train" else max(4, n // 4)), (height, width)


def build_dataset(
    spec: str,
    split: str = "train",
    *,
    size: tuple[int, int] | None = None,
    transform: Callable | None = None,
    cache: bool = True,
    seed: int = 0,
    length: int | None = None,
    void: int = 255,
) -> SegmentationDataset | SyntheticScenes:
    """Build a dataset from ``spec`` (see SPEC_HELP).

    ``void``: the label value a list-file or folder dataset uses for "no label" (--ignore-index); it is mapped to
    255, the ignore value of every loss and metric. CamVid and the synthetic scenes know their own.

    ``split`` selects the CamVid list and the synthetic stream and is ignored for list files and folders.
    ``length`` is the number of synthetic images (default 200 train / 50 otherwise) and caps file datasets
    to their first ``length`` samples. ``seed`` only affects synthetic data.
    """
    if spec == "synthetic" or spec.startswith("synthetic:"):
        n, spec_size = parse_synthetic_spec(spec, split)
        return SyntheticScenes(
            length if length is not None else n,
            size=size or spec_size,
            seed=seed,
            split=split,
            transform=transform,
            cache=cache,
        )
    if spec.startswith("camvid:"):
        return camvid_dataset(
            spec[len("camvid:") :], split, size=size, transform=transform, cache=cache, length=length
        )
    if spec.startswith("folders:"):
        parts = spec.split(":", 2)
        if len(parts) != 3 or not all(parts[1:]):
            raise DatasetError(f"{spec}: bad folders spec; use folders:IMAGES_DIR:LABELS_DIR")
        pairs, info = _folder_pairs(Path(parts[1]), Path(parts[2]))
    else:
        pairs, info = _list_pairs(Path(spec))
    label_map = {void: 255} if void != 255 else None
    return SegmentationDataset(
        pairs[:length], info, size=size, transform=transform, cache=cache, label_map=label_map
    )


def _list_pairs(list_file: Path) -> tuple[list[tuple[Path, Path]], DatasetInfo]:
    if not list_file.is_file():
        raise DatasetError(f"{list_file}: no such list file; the dataset spec must be {SPEC_HELP}")
    info = read_classes_file(_classes_file([list_file.parent], list_file), list_file.parent.name or "dataset")
    pairs = parse_list_file(list_file)
    check_files_exist(pairs, list_file)
    return pairs, info


def _classes_file(candidates: Sequence[Path], source: Path) -> Path:
    """Class counts are never guessed from label values: a missing class would silently shift metrics."""
    for folder in candidates:
        if (folder / "classes.txt").is_file():
            return folder / "classes.txt"
    tried = " or ".join(str(folder / "classes.txt") for folder in candidates)
    raise DatasetError(
        f"{source}: no class list found; create {tried} with one class name per line "
        f"(class 0 first) so the number of classes is known"
    )


def _stem_index(folder: Path, extensions: Sequence[str]) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found; check the folders:IMAGES_DIR:LABELS_DIR spec")
    index: dict[str, Path] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot list folder ({exc}); check its permissions") from exc
    for path in entries:
        if path.suffix.lower() not in extensions:
            continue
        if path.stem in index:
            raise DatasetError(
                f"{path}: same file stem as {index[path.stem]}; samples are matched by stem, "
                f"so keep one file per stem"
            )
        index[path.stem] = path
    return index


def _folder_pairs(images_dir: Path, labels_dir: Path) -> tuple[list[tuple[Path, Path]], DatasetInfo]:
    info = read_classes_file(
        _classes_file([labels_dir, labels_dir.parent], labels_dir), labels_dir.parent.name
    )
    label_extensions = (".png", ".bmp", ".tif", ".tiff")
    images = _stem_index(images_dir, IMAGE_EXTENSIONS)
    labels = _stem_index(labels_dir, label_extensions)
    # Empty folders first: "no images" says more than "every label is unmatched".
    if not images:
        raise DatasetError(f"{images_dir}: no images found ({', '.join(IMAGE_EXTENSIONS)}); check the folder")
    if not labels:
        raise DatasetError(
            f"{labels_dir}: no label maps found ({', '.join(label_extensions)}); check the folder"
        )
    unmatched = sorted(set(images) ^ set(labels))
    report = skip_report()
    if unmatched and report is not None and set(images) & set(labels):  # --skip-bad: keep matched pairs
        for stem in unmatched:
            report.append(
                f"{images.get(stem) or labels[stem]}: no file with the same stem in the other folder"
            )
            images.pop(stem, None)
    elif unmatched:
        where = [str(images.get(s) or labels[s]) for s in unmatched[:3]]
        raise DatasetError(
            f"{where[0]}: has no counterpart with the same stem in the other folder "
            f"({len(unmatched)} unmatched, e.g. {', '.join(where)}); every image in "
            f"{images_dir} needs a label with the same stem in {labels_dir}"
        )
    return [(images[s], labels[s]) for s in sorted(images)], info
