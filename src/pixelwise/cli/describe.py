"""``pixelwise datasets`` and ``pixelwise models``: describe what is available before training on it."""

from __future__ import annotations

import torch

DATASET_FORMS = """dataset forms for --data:
  synthetic[:N[:HxW]]            procedural road scenes (6 classes, depth, tags); N train images (val N//4)
  camvid:PATH                    SegNet CamVid layout (PATH/train.txt, val.txt; void 11 -> ignore 255)
  voc:PATH                       PASCAL VOC 2012 (JPEGImages/, SegmentationClass/, ImageSets/Segmentation/); 21
                                 classes, 255 void; split aug reads SegmentationClassAug/ + train_aug.txt
  cityscapes:PATH                leftImg8bit/SPLIT/CITY/ + gtFine/SPLIT/CITY/; labelIds -> 19 trainIds (rest 255),
                                 *_labelTrainIds.png used as is when present
  ade20k:PATH                    ADEChallengeData2016 (images/, annotations/ {training,validation}); 150 classes,
                                 0 = other -> 255
  LIST.txt                       lines 'image label' relative to the list file; classes.txt beside it
  folders:IMAGES_DIR:LABELS_DIR  pairs matched by file stem (subfolders searched; --label-suffix/--image-suffix
                                 removed first); classes.txt in LABELS_DIR or its parent
labels are single-channel PNGs of class indices; 255 is ignored in every loss and metric. classes.txt lines
are 'name' or 'name r g b' (the palette predictions are painted in); --label-map FILE (YAML/JSON 'id: class
or 255') maps the ids a list / folder dataset's files hold."""


def describe_dataset(spec: str | None, split: str, validate: bool, options: dict | None = None) -> int:
    """Print the dataset's size and per-class pixel counts (classes that never occur flagged); 1 on problems.

    ``options``: build_dataset's label-reading keywords (void, label_map, label_suffix, image_suffix).
    """
    from pixelwise.data import build_dataset, has_splits

    if not spec:
        print(DATASET_FORMS)
        return 0
    dataset = build_dataset(spec, split, **(options or {}))
    info = dataset.info
    print(
        f"{info.name} [{split if has_splits(spec) else 'the whole list / folder'}]: {len(dataset)} images, "
        f"{info.num_classes} classes, ignore index {info.ignore_index}"
    )
    if validate:
        problems = dataset.validate(progress=True)
        for problem in problems:
            print(f"  PROBLEM {problem}")
        print(f"{len(problems)} problem(s) found")
        if problems:
            return 1
    counts = torch.zeros(info.num_classes + 1, dtype=torch.long)
    for index in range(len(dataset)):
        label = dataset[index][1]["seg"].flatten()
        counts += torch.bincount(label.clamp(max=info.num_classes), minlength=info.num_classes + 1)
    total = max(counts.sum().item(), 1)
    for index, (name, count) in enumerate(zip([*info.class_names, "(ignored)"], counts.tolist())):
        # A class with no pixel in the split can never be learnt and scores NaN IoU: say so next to it.
        never = "  NEVER OCCURS" if count == 0 and index < info.num_classes else ""
        print(f"  {name:>16s}: {count:>12d} px {100 * count / total:6.2f}% of pixels{never}")
    missing = [name for name, count in zip(info.class_names, counts.tolist()) if count == 0]
    if missing:
        print(f"{len(missing)} class(es) never occur in this split: {', '.join(missing)}")
    # Every label was decoded above, so the dataset-wide 0/255 check costs nothing here even without --validate.
    problem = dataset.label_set_problem() if hasattr(dataset, "label_set_problem") else None
    if problem is not None:
        print(f"  PROBLEM {problem}")
        return 1
    return 0


def describe_models(rf_name: str | None, num_classes: int) -> int:
    from pixelwise.models import ARCHITECTURES, BACKBONES, create_model

    if rf_name:
        from pixelwise.models.receptive_field import ARCHITECTURES as RF_NETS
        from pixelwise.models.receptive_field import format_table, receptive_fields

        if rf_name not in RF_NETS:
            raise ValueError(
                f"no receptive-field description for {rf_name!r}; choose from {', '.join(RF_NETS)}"
            )
        print(format_table(receptive_fields(RF_NETS[rf_name])))
        return 0
    print(f"architectures: {', '.join(ARCHITECTURES)}")
    print(f"{'backbone':>14s}  {'fcn8s params (M)':>16s}")
    for name in BACKBONES:
        model = create_model("fcn8s", name, num_classes)
        print(f"{name:>14s}  {sum(p.numel() for p in model.parameters()) / 1e6:16.2f}")
    return 0
