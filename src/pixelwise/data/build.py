"""``build_dataset``: one string spec -> dataset object, so configs and the CLI stay declarative."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from pixelwise.data.ade20k import ade20k_dataset
from pixelwise.data.camvid import camvid_dataset
from pixelwise.data.cityscapes import cityscapes_dataset, refuse_label_ids_without_map
from pixelwise.data.info import DatasetInfo, read_classes_file
from pixelwise.data.label_maps import LabelMap, read_label_map
from pixelwise.data.rgbd import RGBDDataset, rgbd_dataset
from pixelwise.data.scene import VARIANTS
from pixelwise.data.segmentation import SegmentationDataset
from pixelwise.data.synthetic import SyntheticScenes
from pixelwise.data.validation import (
    IMAGE_EXTENSIONS,
    DatasetError,
    check_files_exist,
    parse_list_file,
    skip_report,
)
from pixelwise.data.voc import voc_dataset, voc_noaug_dataset

SPEC_HELP = (
    "'synthetic[:N[:HxW[:hard]]]', 'camvid:PATH', 'voc:PATH', 'voc-noaug:PATH', 'cityscapes:PATH', 'ade20k:PATH', "
    "'rgbd:LIST_FILE' ('image depth [label]' lines, 16-bit millimetre depth PNGs), "
    "'folders:IMAGES_DIR:LABELS_DIR' or a path to an 'image label' list file"
)
# Datasets with their own layout, splits, classes and label ids: spec prefix -> builder.
FORMATS: dict[str, Callable[..., SegmentationDataset]] = {
    "camvid:": camvid_dataset,
    "voc:": voc_dataset,
    "voc-noaug:": voc_noaug_dataset,
    "cityscapes:": cityscapes_dataset,
    "ade20k:": ade20k_dataset,
}


def has_splits(spec: str) -> bool:
    """Synthetic data and the known formats have train/val splits; a list file or a folder pair is one set."""
    return spec == "synthetic" or spec.startswith(("synthetic:", *FORMATS))


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


def synthetic_variant(spec: str) -> str:
    """The world of ``synthetic:N:HxW:VARIANT`` (``hard``: per-scene camera height, texture in metres;
    data/scene.py); ``default`` without one."""
    parts = spec.split(":")
    return parts[3] if len(parts) > 3 else "default"


def parse_synthetic_spec(spec: str, split: str) -> tuple[int, tuple[int, int]]:
    """``synthetic[:N[:HxW[:hard]]]`` -> (images in this split, (H, W)); val/test splits get N // 4 (at least 4)
    images. The optional fourth part picks the world (:func:`synthetic_variant`)."""
    parts = spec.split(":")
    if len(parts) == 4 and parts[3] in VARIANTS:
        parts = parts[:3]
    try:
        n = int(parts[1]) if len(parts) > 1 else 200
        height, width = (int(v) for v in parts[2].lower().split("x")) if len(parts) > 2 else (120, 160)
    except ValueError as exc:
        raise DatasetError(
            f"{spec}: bad synthetic spec; use synthetic, synthetic:N, synthetic:N:HxW or synthetic:N:HxW:hard"
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
    label_map: str | Path | None = None,
    label_suffix: str = "",
    image_suffix: str = "",
) -> SegmentationDataset | SyntheticScenes | RGBDDataset:
    """Build a dataset from ``spec`` (see SPEC_HELP).

    ``void``: the label value a list-file or folder dataset uses for "no label" (--ignore-index); it is mapped to
    255, the ignore value of every loss and metric. The synthetic scenes and the known formats know their own.
    ``label_map``: a YAML/JSON file of source id -> class index or 255 for list-file and folder data (every id
    the labels hold must be in it; the inverse is kept in ``info.source_ids`` for writing predictions back).
    ``label_suffix`` / ``image_suffix``: folders: data pairs files by stem after removing these endings, e.g.
    ``_gtFine_labelIds`` and ``_leftImg8bit``; files that lack a given ending are not part of the dataset.

    ``split`` selects the CamVid list and the synthetic stream and is ignored for list files and folders.
    ``length`` is the number of synthetic images (default 200 train / 50 otherwise) and caps file datasets
    to their first ``length`` samples. ``seed`` only affects synthetic data.
    """
    own_labels = spec == "synthetic" or spec.startswith(("synthetic:", "rgbd:", *FORMATS))
    if own_labels and label_map:
        raise DatasetError(
            f"{label_map}: --label-map is for list-file and folders: data; {spec.split(':')[0]} data maps its "
            f"own labels, so drop --label-map"
        )
    if (label_suffix or image_suffix) and not spec.startswith("folders:"):
        raise DatasetError(f"{spec}: --label-suffix / --image-suffix only apply to folders: data; drop them")
    if spec == "synthetic" or spec.startswith("synthetic:"):
        n, spec_size = parse_synthetic_spec(spec, split)
        return SyntheticScenes(
            length if length is not None else n,
            size=size or spec_size,
            seed=seed,
            split=split,
            transform=transform,
            cache=cache,
            variant=synthetic_variant(spec),
        )
    for prefix, builder in FORMATS.items():
        if spec.startswith(prefix):
            if not spec[len(prefix) :]:
                raise DatasetError(f"{spec}: no path; use {prefix}PATH with the dataset's root folder")
            return builder(
                spec[len(prefix) :], split, size=size, transform=transform, cache=cache, length=length
            )
    if spec.startswith("rgbd:"):  # image + 16-bit depth PNG (+ labels on some lines): data/rgbd.py
        if not spec[5:]:
            raise DatasetError(f"{spec}: no path; use rgbd:LIST_FILE with 'image depth [label]' lines")
        return rgbd_dataset(spec[5:], size=size, transform=transform, cache=cache, length=length)
    if spec.startswith("folders:"):
        parts = spec.split(":", 2)
        if len(parts) != 3 or not all(parts[1:]):
            raise DatasetError(f"{spec}: bad folders spec; use folders:IMAGES_DIR:LABELS_DIR")
        pairs, info = _folder_pairs(Path(parts[1]), Path(parts[2]), label_suffix, image_suffix)
    else:
        pairs, info = _list_pairs(Path(spec))
    pairs = pairs[:length]
    mapping: LabelMap | dict[int, int] | None = {void: 255} if void != 255 else None
    if label_map:
        mapping = read_label_map(Path(label_map), info.num_classes).with_void(void)
        info = replace(info, source_ids=mapping.source_ids(info.num_classes))
    else:
        for _, label in pairs:  # raw Cityscapes ids read as classes would train road (id 7) as class 7
            refuse_label_ids_without_map(label)
    return SegmentationDataset(pairs, info, size=size, transform=transform, cache=cache, label_map=mapping)


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


def _stem_index(folder: Path, extensions: Sequence[str], suffix: str = "") -> dict[str, Path]:
    """Files in ``folder`` and its subfolders by stem, ``suffix`` removed (files without it are left out)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found; check the folders:IMAGES_DIR:LABELS_DIR spec")
    index: dict[str, Path] = {}
    try:
        entries = sorted(p for p in folder.rglob("*") if p.is_file())  # e.g. Cityscapes' one folder per city
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot list folder ({exc}); check its permissions") from exc
    for path in entries:
        if path.suffix.lower() not in extensions or not path.stem.endswith(suffix):
            continue
        stem = path.stem[: len(path.stem) - len(suffix)]
        if stem in index:
            raise DatasetError(
                f"{path}: same file stem as {index[stem]}; samples are matched by stem (after removing "
                f"--label-suffix / --image-suffix), so keep one file per stem"
            )
        index[stem] = path
    return index


def _folder_pairs(
    images_dir: Path, labels_dir: Path, label_suffix: str = "", image_suffix: str = ""
) -> tuple[list[tuple[Path, Path]], DatasetInfo]:
    info = read_classes_file(
        _classes_file([labels_dir, labels_dir.parent], labels_dir), labels_dir.parent.name
    )
    label_extensions = (".png", ".bmp", ".tif", ".tiff")
    images = _stem_index(images_dir, IMAGE_EXTENSIONS, image_suffix)
    labels = _stem_index(labels_dir, label_extensions, label_suffix)
    # Empty folders first: "no images" says more than "every label is unmatched".
    if not images:
        raise DatasetError(f"{images_dir}: no images found ({', '.join(IMAGE_EXTENSIONS)}); check the folder")
    if not labels:
        ending = f" ending in {label_suffix}" if label_suffix else ""
        raise DatasetError(
            f"{labels_dir}: no label maps{ending} found ({', '.join(label_extensions)}); check the folder"
            + (" and --label-suffix" if label_suffix else "")
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
