"""``pixelwise datasets`` and ``pixelwise models``: describe what is available before training on it."""

from __future__ import annotations

import torch

DATASET_FORMS = """dataset forms for --data:
  synthetic[:N[:HxW]]            procedural road scenes (6 classes, depth, tags); N train images (val N//4)
  camvid:PATH                    SegNet CamVid layout (PATH/train.txt, val.txt; void 11 -> ignore 255)
  LIST.txt                       lines 'image label' relative to the list file; classes.txt beside it
  folders:IMAGES_DIR:LABELS_DIR  pairs matched by file stem; classes.txt in LABELS_DIR or its parent
labels are single-channel PNGs of class indices; 255 is ignored in every loss and metric."""


def describe_dataset(spec: str | None, split: str, validate: bool) -> int:
    from pixelwise.data import build_dataset, has_splits

    if not spec:
        print(DATASET_FORMS)
        return 0
    dataset = build_dataset(spec, split)
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
    total = counts.sum().item()
    for name, count in zip([*info.class_names, "(ignored)"], counts.tolist()):
        print(f"  {name:>16s}: {100 * count / total:6.2f}% of pixels")
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
