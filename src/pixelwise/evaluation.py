"""Score a checkpoint on a labelled split: JSON of all metrics, confusion-matrix PNG, HTML report.

The library function behind ``pixelwise eval`` and the pipeline's final report (both call it; it calls neither).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from pixelwise.data import build_dataset, eval_transforms, has_splits
from pixelwise.data.rgbd import WithDepthChannel, depth_folder
from pixelwise.engine.checkpoint import inference_scales, resolve_checkpoint, selection_note
from pixelwise.engine.config import EvalConfig, data_options
from pixelwise.engine.distributed import resolve_device
from pixelwise.engine.evaluate import EvalOptions, evaluate
from pixelwise.engine.runtimes import inference_runtime
from pixelwise.methods.kinds import build_model_from_checkpoint
from pixelwise.metrics import scores_to_json
from pixelwise.report.examples import save_examples
from pixelwise.report.html import write_report
from pixelwise.report.images import save_confusion_png


def evaluate_checkpoint(
    config: EvalConfig,
    title: str = "pixelwise evaluation",
    sections: Sequence[tuple[str, Sequence[Path]]] = (),
) -> dict:
    """Evaluate and write ``metrics.json``, ``confusion.png`` and ``report.html`` (plus any extra image
    ``sections``, e.g. the pipeline's training curves); returns the JSON-ready scores."""
    if not config.checkpoint or not config.data:
        raise ValueError("eval needs --checkpoint and --data")
    if config.threads:
        torch.set_num_threads(config.threads)
    checkpoint = resolve_checkpoint(config.checkpoint)
    device = resolve_device(config.device)
    model, meta = build_model_from_checkpoint(checkpoint, expect="segmentation")
    # Unset options fall back to the training run's: its data used that "no label" value, label map, suffixes.
    options = data_options(config, meta.get("config", {}))
    if has_splits(
        config.data
    ):  # voc:, cityscapes:, ...: their own ids; the run's --label-map was for its files
        options.update(data_options(config))
    # A fusion run (train --fusion early / late) reads RGB + a depth channel: from --extra-input, else the run's.
    fusion = meta.get("config", {}).get("fusion", "none") != "none"
    extra = (config.extra_input or meta["config"].get("extra_input")) if fusion else None
    # Depth PNGs are attached before the transform, the data's own depth after it.
    folder = depth_folder(extra)
    transform = None if folder else eval_transforms()
    dataset = build_dataset(config.data, config.split, transform=transform, **options)
    trained_classes = meta["dataset"]["class_names"]
    if list(dataset.info.class_names) != list(trained_classes):
        raise ValueError(
            f"{config.data} has classes {list(dataset.info.class_names)} but {checkpoint} was trained on {trained_classes}"
        )
    check = getattr(dataset, "check", None)
    if check is not None:  # as training does: a bad file, or 0/255 masks whose foreground is ignored, stops
        check()  # the evaluation up front instead of skewing its scores (decoded once: the dataset caches)
    if fusion:
        dataset = WithDepthChannel(dataset, folder, eval_transforms() if folder else None)
    scales, scales_from = inference_scales(config.scales, meta)
    chosen = selection_note(checkpoint, meta, config.data, config.split)
    print(f"scoring {chosen}; scales {scales} ({scales_from})")
    options = EvalOptions(
        tuple(scales), config.flip, config.window, tuple(config.boundary_widths), examples=4
    )
    loader = DataLoader(dataset, batch_size=1)
    info = dataset.info
    runtime = inference_runtime(model.to(device), config.engine, meta, config.channels_last)
    scores, cm, kept = evaluate(
        runtime, loader, info.num_classes, device, info.ignore_index, options, info.class_names
    )
    result = {**scores_to_json(scores), "checkpoint": str(checkpoint), "chosen": chosen, "scales": scales}
    output = Path(config.output or checkpoint.parent / f"eval-{config.split}")
    output.mkdir(parents=True, exist_ok=True)
    (output / "metrics.json").write_text(json.dumps(result, indent=2))
    save_confusion_png(cm, info.class_names, output / "confusion.png")
    examples = save_examples(kept, info, output / "examples")
    notes = (
        f"checkpoint {chosen}; data {config.data} [{config.split}], scales {scales} ({scales_from}), "
        f"flip {config.flip}"
    )
    write_report(
        output / "report.html",
        title,
        result,
        info.class_names,
        [output / "confusion.png", *examples],
        notes,
        sections,
    )
    print(format_scores(result, info.class_names))
    print(f"wrote {output / 'metrics.json'}, {output / 'confusion.png'} and {output / 'report.html'}")
    return result


def format_scores(scores: dict, class_names) -> str:
    lines = [f"{key:>18s}: {scores[key]:.4f}" for key in ("pixel_acc", "mean_acc", "mean_iou", "fw_iou")]
    lines += [f"{k:>18s}: {v:.4f}" for k, v in scores.items() if k.startswith("trimap_") and v is not None]
    lines.append("per-class IoU:")
    for name, iou in zip(class_names, scores["per_class_iou"]):
        lines.append(f"{name:>18s}: {'absent' if iou is None else f'{iou:.4f}'}")
    return "\n".join(lines)
