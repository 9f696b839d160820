"""Mix-and-Match tuning on CamVid (Zhan et al. 2018 at CPU scale): does M&M between pretraining and fine-tuning help?

Every arm ends with the same fine-tuning as benchmarks/colorization_transfer.py (grey-input FCN-8s / ResNet-18,
default 300 AdamW + poly steps at batch 8, all train labels, scored on val mean IoU). Arms:

  colorization_ft            colorization -> FT                       (no M&M)
  colorization_mm-graph_ft   colorization -> M&M (class-wise graph) -> FT
  colorization_mm-random_ft  colorization -> M&M (random triplets) -> FT   (Table 1's ablation)
  random_ft                  random init -> FT
  random_mm-graph_ft         random init -> M&M (graph) -> FT
  colorization_softmax_ft    colorization -> softmax segmentation training for as many iterations (and images
                             per batch) as M&M -> FT: the control for "M&M is just more training with labels".
                             Only its backbone is kept (new head at FT), exactly as after M&M.

M&M (``pixelwise tune``): B = 16 images x K = 10 patches (sides 24-96 px on the 180x240 frames, i.e. 1/8-1/2 of
the crop as in the authors' code, resized to 64), margin 2.1, SGD lr 0.01 / 10 at 75%, momentum 0.9, wd 5e-4,
default 300 iterations. The paper's M&M:FT ratio is 8k:40k; here it is 1:1 so the stage has a chance to act.
The colorization checkpoint comes from benchmarks/colorization_pretrain.py (runs/bench/colorization/hue-chroma_e30).
M&M arms also record the patch-feature diagnostic (nearest-class-centroid accuracy on val patches) before/after.

With --labels-fraction F < 1, M&M, the softmax control and FT all see the same seeded F share of the labelled
frames (for the same number of steps), and tags end in _f<F>: the full pipeline's label-efficiency points.

Each arm writes benchmarks/results/mixmatch/<arm>_seed<S>.json and is skipped when that exists; a finished stage
(its run folder holds metrics.json) is reused, an interrupted one resumed. Usage:

    python benchmarks/mixmatch.py                          # all arms, seeds 0 1 2 (seed-major)
    python benchmarks/mixmatch.py --arms colorization_ft colorization_mm-graph_ft --seeds 0
    python benchmarks/mixmatch.py --tune-set margin=0.5 --tag margin0.5
    python benchmarks/mixmatch.py --arms colorization_mm-graph_ft --labels-fraction 0.1
    python benchmarks/mixmatch.py --pretrain-tag geo_ --tag geo_margin0.5 --tune-set margin=0.5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from pixelwise.engine.checkpoint import load_checkpoint, save_checkpoint
from pixelwise.engine.trainer import Trainer
from pixelwise.methods.mixmatch import DiagnoseConfig, MixMatchTask
from pixelwise.methods.mixmatch.config import TuneConfig
from pixelwise.methods.mixmatch.diagnose import diagnose
from pixelwise.methods.segmentation import SegmentationTask, TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from colorization_transfer import epochs_for, pretrained_checkpoint, recipe  # noqa: E402
from common import CAMVID, ROOT, camvid_recipe, parse_overrides, result_record, write_result  # noqa: E402

# arm -> (initialisation, middle stage: None, "mm-graph", "mm-random" or "softmax")
ARMS: dict[str, tuple[str, str | None]] = {
    "colorization_ft": ("colorization", None),
    "colorization_mm-graph_ft": ("colorization", "mm-graph"),
    "colorization_mm-random_ft": ("colorization", "mm-random"),
    "random_ft": ("random", None),
    "random_mm-graph_ft": ("random", "mm-graph"),
    "colorization_softmax_ft": ("colorization", "softmax"),
}
TUNE_BATCH = 16  # images per graph (Zhan §4)
BENCH = ROOT / "runs" / "bench" / "mixmatch"
RESULTS = ROOT / "benchmarks" / "results" / "mixmatch"


def tune_config(
    init_from: Path | None, sampler: str, seed: int, epochs: int, output: Path, **overrides: Any
) -> TuneConfig:
    """M&M on the CamVid train frames with the shared data recipe and the paper's optimiser (TuneConfig defaults)."""
    data_keys = ("data", "output", "backbone", "base_size", "crop", "scale", "eval_scale", "seed", "resume")
    values = {k: v for k, v in camvid_recipe(output, seed).items() if k in data_keys}
    return TuneConfig(
        **values,
        init_from=str(init_from) if init_from else None,
        in_channels=1,  # grey, like the colorization backbone and the fine-tuning, random arms included
        sampler=sampler,
        batch_size=TUNE_BATCH,
        epochs=epochs,
        amp=True,
        eval_every=0,
        **overrides,
    )


def fit(config: Any, task: Any = None) -> tuple[dict[str, Any], int, float]:
    """Train (or resume) one stage -> (final scores, iterations, minutes); no ``task``: segmentation."""
    started = time.time()
    trainer = Trainer(config, task if task is not None else SegmentationTask(config))
    scores = trainer.fit()
    return scores, trainer.state.iteration, (time.time() - started) / 60


def backbone_only(source: Path, target: Path) -> Path:
    """Copy a segmentation checkpoint's backbone into a checkpoint that --init-from reads as 'backbone only'.

    A segmentation checkpoint would load whole (head included) into the FT model; M&M passes on its backbone
    only, so the softmax control must too.
    """
    checkpoint = load_checkpoint(source)
    described = checkpoint.meta["model"]
    state = {k: v for k, v in checkpoint.model_state.items() if k.startswith("taps.backbone.")}
    model = {"kind": "backbone", "backbone": described["backbone"], "in_channels": described["in_channels"]}
    return save_checkpoint(target, state, {"model": model, "source": str(source)})


def middle_stage(
    init: Path | None, middle: str, seed: int, args: argparse.Namespace
) -> tuple[Path, dict[str, Any]]:
    """Run (or reuse) the stage between pretraining and FT -> (checkpoint for FT's --init-from, record)."""
    fraction = args.labels_fraction  # M&M's graphs and the softmax control read labels too
    epochs = epochs_for(args.tune_steps, fraction, TUNE_BATCH)
    init_name = "colorization" if init else "random"
    output = BENCH / f"{init_name}_{middle}{args.tag}{fraction_suffix(fraction)}_seed{seed}"
    if middle == "softmax":
        config: Any = recipe(init, "none", fraction, seed, epochs, output)
        config.batch_size = TUNE_BATCH  # the same images per step as M&M's graphs
        task = None
    else:
        overrides = {"labels_fraction": fraction, **args.tune_overrides}
        config = tune_config(init, middle.removeprefix("mm-"), seed, epochs, output, **overrides)
        task = MixMatchTask(config)
    record: dict[str, Any] = {"config": config.to_dict()}
    if (output / "metrics.json").exists():
        print(f"  {output.name}: finished already, reused")
        record["reused"] = True
    else:
        scores, iterations, minutes = fit(config, task)
        record |= {"iterations": iterations, "wall_minutes": round(minutes, 2)}
        record["val"] = {k: v for k, v in scores.items() if k != "per_class_acc"}
    checkpoint = output / "last.safetensors"
    if middle == "softmax":
        checkpoint = backbone_only(checkpoint, output / "backbone.safetensors")
    # The feature diagnostic: val patches embedded by the stage's input and output backbones.
    checkpoints = [str(output / "last.safetensors")] + ([str(init)] if init and middle == "softmax" else [])
    record["diagnostic"] = diagnose(
        DiagnoseConfig(
            checkpoint=checkpoints,
            data=f"camvid:{CAMVID}",
            base_size=[180, 240],
            seed=seed,
            output=str(output / "diagnose.json"),
        )
    )["scores"]
    return checkpoint, record


def fraction_suffix(fraction: float) -> str:
    """Tags of runs on a labelled subset end in _f<fraction>; all-label tags stay as they were."""
    return "" if fraction == 1.0 else f"_f{fraction:g}"


def identical_transfer_run(
    init_name: str, seed: int, config: TrainConfig, pretrain_tag: str = ""
) -> dict[str, Any] | None:
    """The colorization_transfer result of this very fine-tuning run (same config but its folder), if any."""
    name = f"{pretrain_tag}{init_name}_none_f{config.labels_fraction:g}_seed{seed}.json"
    path = ROOT / "benchmarks" / "results" / "colorization_transfer" / name
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    ignored = ("output", "resume")
    ours = {k: v for k, v in config.to_dict().items() if k not in ignored}
    theirs = {k: v for k, v in record["config"].items() if k not in ignored}
    return record if ours == theirs else None


def run_arm(arm: str, seed: int, args: argparse.Namespace) -> None:
    fraction = args.labels_fraction
    tag = f"{arm}{args.tag}{fraction_suffix(fraction)}_seed{seed}"
    result_path = RESULTS / f"{tag}.json"
    if result_path.exists():
        print(f"{tag}: done already")
        return
    init_name, middle = ARMS[arm]
    init = pretrained_checkpoint(init_name, args.pretrain_epochs, args.pretrain_tag)
    if init is not None and not init.exists():
        print(f"{tag}: skipped, {init} does not exist yet (run benchmarks/colorization_pretrain.py)")
        return
    print(f"{tag}:")
    started = time.time()
    stage: dict[str, Any] | None = None
    start_from = init
    if middle is not None:
        start_from, stage = middle_stage(init, middle, seed, args)
    config = recipe(
        start_from, "none", fraction, seed, epochs_for(args.ft_steps, fraction, 8), BENCH / f"{tag}_ft"
    )
    for key, value in args.overrides.items():
        setattr(config, key, value)
    same_run = identical_transfer_run(init_name, seed, config, args.pretrain_tag) if middle is None else None
    if same_run is not None:  # the no-M&M arms are exactly colorization_transfer's 100%-label arms
        scores, iterations, minutes = (
            same_run["val"],
            same_run["iterations"],
            same_run["wall_minutes_including_eval"],
        )
        print(f"  same run as colorization_transfer/{same_run['tag']}: reused")
    else:
        scores, iterations, _ = fit(config)
        minutes = (time.time() - started) / 60
    record = result_record(
        "mixmatch",
        tag,
        config,
        minutes,
        arm=arm,
        init=init_name,
        middle=middle,
        seed=seed,
        labels_fraction=fraction,
        iterations=iterations,
        middle_stage=stage,
        reused_from=same_run["tag"] if same_run else None,
        val={k: v for k, v in scores.items() if k != "per_class_acc"},
    )
    write_result(result_path, record)
    print(f"{tag}: val mIoU {scores['mean_iou']:.4f} after {iterations} FT steps, {minutes:.1f} min in all")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS), help="arms to run")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (init, data order)")
    parser.add_argument("--ft-steps", type=int, default=300, help="fine-tuning optimiser steps (every arm)")
    parser.add_argument(
        "--tune-steps", type=int, default=300, help="M&M iterations (and the softmax control's steps)"
    )
    parser.add_argument(
        "--labels-fraction", type=float, default=1.0,
        help="labelled share of the train set for M&M, the softmax control and FT (the label-efficiency curve)",
    )  # fmt: skip
    parser.add_argument("--pretrain-epochs", type=int, default=30, help="which colorization run to load")
    parser.add_argument("--tag", default="", help="suffix of arm names and run folders (variants)")
    parser.add_argument(
        "--pretrain-tag",
        default="",
        help="prefix of the colorization run to load, as given to colorization_pretrain.py --tag (e.g. geo_)",
    )
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override FT recipe fields")
    parser.add_argument(
        "--tune-set", nargs="*", default=[], metavar="KEY=VALUE", help="override M&M (TuneConfig) fields"
    )
    args = parser.parse_args()
    args.overrides = parse_overrides(args.set)
    args.tune_overrides = parse_overrides(args.tune_set)
    if args.tag and not args.tag.startswith("_"):
        args.tag = "_" + args.tag
    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}; this benchmark needs ../shared/data/camvid")
    for seed in args.seeds:  # seed-major, so an interrupted study has balanced arms
        for arm in args.arms:
            run_arm(arm, seed, args)


if __name__ == "__main__":
    main()
