"""``run_pipeline``: every stage of ``pixelwise pipeline`` in order, each a run folder under OUTPUT (see the
package docstring); finished stages skipped, interrupted ones resumed, changed ones refused or rerun."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from pixelwise.data import has_splits, validation_spec
from pixelwise.engine.config import EvalConfig, RunConfig, data_options
from pixelwise.engine.state import RESUMABLE_CHANGES
from pixelwise.engine.task import Task
from pixelwise.engine.trainer import Trainer
from pixelwise.methods.mixmatch.config import TuneConfig
from pixelwise.methods.pretrain import PretrainConfig
from pixelwise.methods.segmentation import TrainConfig
from pixelwise.pipeline.config import PipelineConfig


@dataclass
class StageRun:
    name: str
    folder: Path
    score_key: str
    rerun: bool = (
        False  # trained afresh because its options (or an earlier stage) changed: later stages follow
    )


# Options that say how a stage runs, not what it computes: a rerun may change them freely.
# Paths to the output and to earlier stages follow the pipeline's folder (a moved folder is the same pipeline);
# whether an earlier stage changed is told by its checkpoint's time, not its path (see stale_stage).
HOW_NOT_WHAT = (RESUMABLE_CHANGES - {"epochs", "time_limit", "eval_every"}) | {"init_from", "label_ae"}


def changed_options(folder: Path, config: RunConfig) -> list[str]:
    """Keys whose value in ``folder``'s stored config.yaml differs from ``config`` ([] if nothing is stored)."""
    stored_path = folder / "config.yaml"
    if not stored_path.is_file():
        return []
    stored = yaml.safe_load(stored_path.read_text()) or {}
    wanted = yaml.safe_load(yaml.safe_dump(config.to_dict()))  # the same YAML round trip (tuples -> lists)
    # Options added to pixelwise after the stage ran are not in its config.yaml: not a change (as for --resume).
    return sorted(k for k in wanted if k not in HOW_NOT_WHAT and k in stored and stored[k] != wanted[k])


def stale_stage(folder: Path, upstream: list[Path]) -> bool:
    """A finished stage trained on an earlier stage's checkpoint that has been rewritten since (e.g. a
    --rerun-changed that was interrupted after the earlier stage but before this one)."""
    done = folder / "metrics.json"
    if not done.is_file():
        return False
    finished = done.stat().st_mtime
    return any((u / "last.safetensors").is_file() and (u / "last.safetensors").stat().st_mtime > finished
               for u in upstream)  # fmt: skip


def move_aside(folder: Path) -> Path:
    """Rename a stage folder to the first free ``NAME.replaced-N``: nothing already computed is deleted."""
    index = 1
    while (target := folder.with_name(f"{folder.name}.replaced-{index}")).exists():
        index += 1
    folder.rename(target)
    return target


def run_stage(
    name: str,
    config: RunConfig,
    task: Task,
    rerun: bool = False,
    rerun_changed: bool = False,
    upstream: list[Path] | None = None,
) -> StageRun:
    """Train ``task`` in ``config.output`` unless it finished there before with the same options; resume it if it
    was interrupted. ``rerun`` (an earlier stage was rerun) or a change with ``rerun_changed`` starts it afresh."""
    folder = Path(config.output)
    changed = changed_options(folder, config)
    if stale_stage(folder, upstream or []):
        changed.append("(an earlier stage's checkpoint, rewritten since this stage finished)")
    if changed and not (rerun or rerun_changed):
        shown = ", ".join(k if k.startswith("(") else f"--{k.replace('_', '-')}" for k in changed)
        raise ValueError(
            f"[pipeline] {name}: {folder} was run with other values of {shown}; pass --rerun-changed to move it "
            "aside and rerun it (and every later stage), or choose another --output"
        )
    rerun = rerun or bool(changed)
    if rerun and folder.exists():
        print(f"[pipeline] {name}: options changed, {folder} moved to {move_aside(folder)}")
    if (folder / "metrics.json").is_file():
        print(f"[pipeline] {name}: done already with these options ({folder}), skipped")
    else:
        config.resume = (folder / "last.safetensors").is_file()
        print(f"[pipeline] {name}: {'resuming' if config.resume else 'training'} in {folder}")
        Trainer(config, task).fit()
    return StageRun(name, folder, task.score_key, rerun)


def _shared(config: PipelineConfig) -> dict[str, Any]:
    return dict(
        backbone=config.backbone,
        batch_size=config.batch_size,
        base_size=config.base_size,
        crop=config.crop,
        val_data=config.val_data,
        eval_scale=config.eval_scale,
        amp=config.amp,
        seed=config.seed,
        device=config.device,
        ignore_index=config.ignore_index,
        label_map=config.label_map,
        label_suffix=config.label_suffix,
        image_suffix=config.image_suffix,
    )


def _image_splits(data: str) -> list[str]:
    """Pretraining sees train + val images where the data has splits (labels are never read)."""
    return ["train", "val"] if has_splits(data) else ["train"]


def run_pipeline(config: PipelineConfig) -> dict[str, Any]:
    """Run (or continue) every stage; returns the final evaluation scores (JSON-ready)."""
    from pixelwise.methods.segmentation import SegmentationTask

    out = Path(config.output)
    stages: list[StageRun] = []

    def after(done: list[StageRun]) -> tuple[bool, bool, list[Path]]:
        """(rerun: an earlier stage was rerun, rerun_changed, the earlier stages' folders) for the next stage."""
        return any(s.rerun for s in done), config.rerun_changed, [s.folder for s in done]

    init_from: Path | None = None
    if config.pretrain_epochs:
        name, pretrain, task = pretraining_stage(config, out)
        stages.append(run_stage(name, pretrain, task, *after(stages)))
        init_from = stages[-1].folder / "last.safetensors"
    # Colorization backbones see lightness (Larsson §3: grey fine-tuning); multi-proxy ones share a 3-channel conv1.
    grey = init_from is not None and not config.pretrain_tasks
    if config.mixmatch_epochs:
        from pixelwise.methods.mixmatch import MixMatchTask

        tune = TuneConfig(
            data=config.data,
            output=str(out / "2-mixmatch"),
            init_from=str(init_from) if init_from else None,
            epochs=config.mixmatch_epochs,
            eval_every=max(1, config.mixmatch_epochs // 2),
            labels_fraction=config.labels_fraction,
            **_shared(config),
        )
        stages.append(run_stage("Mix-and-Match tuning", tune, MixMatchTask(tune), *after(stages)))
        init_from = stages[-1].folder / "last.safetensors"
    label_ae: Path | None = None
    if config.label_ae_epochs:
        from pixelwise.methods.label_ae import LabelAETask

        ae = PretrainConfig(
            method="label-ae",
            data=config.data,
            output=str(out / "3-label-ae"),
            splits=["train"],
            labels_fraction=config.labels_fraction,  # the autoencoder sees only the labels the predictor does
            epochs=config.label_ae_epochs,
            eval_every=max(1, config.label_ae_epochs // 2),
            **_shared(config),
        )
        stages.append(run_stage("label autoencoder", ae, LabelAETask(ae), *after(stages)))
        label_ae = stages[-1].folder
    train = TrainConfig(
        data=config.data,
        output=str(out / "4-segmentation"),
        arch=config.arch,
        head_width=config.head_width,
        in_channels=1 if grey else 3,
        init_from=str(init_from) if init_from else None,
        labels_fraction=config.labels_fraction,
        epochs=config.train_epochs,
        eval_every=max(1, config.train_epochs // 4),
        regularizer="label-ae" if label_ae else "none",
        label_ae=str(label_ae) if label_ae else None,
        select_fraction=config.select_fraction,
        **_shared(config),
    )
    stages.append(run_stage("segmentation training", train, SegmentationTask(train), *after(stages)))
    grey_colorizer = config.pretrain_epochs and not config.pretrain_tasks
    colorizer = out / "1-colorization" / "last.safetensors" if grey_colorizer else None
    return report(config, stages, colorizer)


def pretraining_stage(config: PipelineConfig, out: Path) -> tuple[str, PretrainConfig, Task]:
    """(name, options, task) of the pretraining stage: grey colorization, or the --pretrain-tasks with NormSGD."""
    common = dict(
        data=config.data,
        splits=_image_splits(config.data),
        epochs=config.pretrain_epochs,
        eval_every=max(1, config.pretrain_epochs // 2),
        **_shared(config),
    )
    if not config.pretrain_tasks:
        from pixelwise.methods.colorization import ColorizationTask

        pretrain = PretrainConfig(output=str(out / "1-colorization"), **common)
        return "colorization pretraining", pretrain, ColorizationTask(pretrain)
    from pixelwise.methods.multiproxy import MultiProxyTask

    # NormSGD (Eq. 4.11) steps momentum SGD with a normalised gradient: its lr is the mean step per weight.
    pretrain = PretrainConfig(output=str(out / "1-multi-proxy"), method="multi", tasks=list(config.pretrain_tasks),
                              flow_data=config.flow_data, combine="normsgd", optimizer="sgd", lr=1e-4,
                              warmup_iters=10, **common)  # fmt: skip
    return "multi-proxy pretraining", pretrain, MultiProxyTask(pretrain)


def report(config: PipelineConfig, stages: list[StageRun], colorizer: Path | None) -> dict[str, Any]:
    """Evaluate the segmentation model and write OUTPUT/report/report.html with every stage's curves."""
    from pixelwise.evaluation import evaluate_checkpoint
    from pixelwise.report.curves import plot_training_curves

    folder = Path(config.output) / "report"
    curves = plot_training_curves(
        {s.name: s.folder / "log.jsonl" for s in stages},
        {s.name: s.score_key for s in stages},
        folder / "training_curves.png",
    )
    sections = [("Training curves", [curves])]
    if colorizer is not None:
        sections.append(
            ("Colorizations: grey | colorization | original", colorize_examples(config, colorizer, folder))
        )
    evaluation = EvalConfig(
        checkpoint=str(stages[-1].folder),
        data=validation_spec(config.data, config.val_data),
        output=str(folder),
        scales=[config.eval_scale],
        device=config.device,
    )
    notes = " -> ".join(s.name for s in stages) + f"; labels fraction {config.labels_fraction}"
    scores = evaluate_checkpoint(evaluation, "pixelwise pipeline", sections)
    print(f"[pipeline] report: {folder / 'report.html'}")
    return {**scores, "stages": [s.name for s in stages], "notes": notes}


@torch.no_grad()
def colorize_examples(config: PipelineConfig, checkpoint: Path, folder: Path) -> list[Path]:
    """Grey | colorization | original panels for the first val images."""
    from pixelwise.data import build_dataset
    from pixelwise.methods.kinds import build_model_from_checkpoint
    from pixelwise.report.images import save_colorization_panel

    model, _ = build_model_from_checkpoint(checkpoint)
    options = data_options(config)
    dataset = build_dataset(validation_spec(config.data, config.val_data), "val", **options)
    paths = []
    for index in range(min(config.colorize_examples, len(dataset))):
        image = dataset[index][0][None]
        colour = model.colorize(image, config.eval_scale)
        path = folder / "colorizations" / f"{index:02d}.png"
        paths.append(save_colorization_panel(colour[0], image[0], path))
    return paths
