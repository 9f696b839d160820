"""CamVid FCN benchmark: train on CamVid train, report val metrics (Long thesis Ch. 3 at CPU scale).

Default recipe (the issue's target: val mean IoU >= 0.60 within 30 minutes of training on a 2-core CPU):
FCN-8s on a from-scratch ResNet-18, AdamW + poly over 110 epochs, bfloat16 autocast, 180x240 crops of
half-resolution frames with scale jitter, evaluated on full-resolution val labels (inference at half resolution,
bilinear upsampling of the scores), then also with flips and with scales 0.5 + 0.75 and flips (test-time
augmentation, reported beside the single-scale score). On the project's CPU box the default takes ~27 minutes;
on a slower machine keep the 30-minute budget with ``--set schedule=poly-time time_limit=28 --epochs 1000``.
Runs tagged without ``amp=true`` in their command before 2026-11-29 were fp32 (their JSON config says so).

Each (arch, seed) run writes benchmarks/results/camvid_fcn/<tag>.json; a rerun skips finished runs, and an
interrupted run resumes from its last checkpoint. Usage:

    python benchmarks/camvid_fcn.py                          # the default recipe, seed 0
    python benchmarks/camvid_fcn.py --arch fcn32s fcn16s fcn8s --seeds 0 1 2 --epochs 12
    python benchmarks/camvid_fcn.py --staged 6 5 5 --seeds 0     # Long §3.3.4 staged 32s -> 16s -> 8s
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pixelwise.engine.trainer import Trainer
from pixelwise.methods.segmentation import TrainConfig, segmentation_trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CAMVID,
    ROOT,
    camvid_recipe,
    parse_overrides,
    provenance,
    result_record,
    write_result,
)


def recipe(arch: str, seed: int, epochs: int, output: Path, extra: dict) -> TrainConfig:
    values = camvid_recipe(output, seed, arch=arch, epochs=epochs, eval_every=max(1, epochs // 4), amp=True)
    return TrainConfig(**{**values, **extra})


MULTI_SCALE = (0.5, 0.75)  # test-time scales of the full-resolution frame, each with its horizontal flip


def run_folder(tag: str) -> Path:
    return ROOT / "runs" / "bench" / "camvid_fcn" / tag


def run_one(arch: str, seed: int, args: argparse.Namespace, extra: dict) -> dict:
    tag = f"{args.tag}{arch}_seed{seed}"
    result_path = ROOT / "benchmarks" / "results" / "camvid_fcn" / f"{tag}.json"
    output = run_folder(tag)
    done = json.loads(result_path.read_text()) if result_path.exists() else None
    if done is not None and ("val_ms_flip_tta" in done or not (output / "last.safetensors").exists()):
        print(f"{tag}: done already ({result_path})")
        return done
    config = recipe(arch, seed, args.epochs, output, extra)
    started = time.time()
    trainer = segmentation_trainer(config)
    scores = trainer.fit()  # a finished run only validates
    minutes = (time.time() - started) / 60
    flip_scores = tta_evaluation(trainer, (trainer.config.eval_scale,))
    multi_scale = tta_evaluation(trainer, MULTI_SCALE)
    if done is not None:  # an older result without the multi-scale score: add it, keep the rest
        result = {**done, "val_ms_flip_tta": multi_scale, "val_ms_flip_tta_added": provenance()}
    else:
        result = result_record(
            "camvid_fcn",
            tag,
            config,
            minutes,
            val={k: v for k, v in scores.items() if k != "per_class_acc"},
            val_flip_tta=flip_scores,
            val_ms_flip_tta=multi_scale,
        )
    write_result(result_path, result)
    print(
        f"{tag}: val mIoU {scores['mean_iou']:.4f} (flip TTA {flip_scores['mean_iou']:.4f}, scales "
        f"{'+'.join(map(str, MULTI_SCALE))} with flips {multi_scale['mean_iou']:.4f}) in {minutes:.1f} min"
    )
    return result


STAGES = ("fcn32s", "fcn16s", "fcn8s")


def run_staged(seed: int, args: argparse.Namespace, extra: dict) -> None:
    """Long §3.3.4: 32s, then 16s initialised from it (new skip scorer at zero, lr / 100), then 8s from the 16s.

    ``--staged E32 E16 E8`` gives each stage's epochs; compare with one FCN-8s of E32 + E16 + E8 epochs.
    """
    prefix = f"{args.tag}staged{'-'.join(map(str, args.staged))}_"
    parent: Path | None = None
    for arch, epochs in zip(STAGES, args.staged):
        stage = argparse.Namespace(**{**vars(args), "epochs": epochs, "tag": prefix})
        run_one(arch, seed, stage, {**extra, **({"init_from": str(parent)} if parent else {})})
        parent = run_folder(f"{prefix}{arch}_seed{seed}") / "last.safetensors"


def tta_evaluation(trainer: Trainer, scales: tuple[float, ...]) -> dict:
    """The trained checkpoint scored with test-time augmentation (flips, and ``scales`` of the full frame);
    reported next to the plain single-scale score, never instead of it."""
    from pixelwise.engine.evaluate import EvalOptions, evaluate

    info = trainer.task.info
    scores, _, _ = evaluate(
        trainer.model,
        trainer.val_loader,
        info.num_classes,
        trainer.device,
        info.ignore_index,
        EvalOptions(scales=scales, flip=True),
        info.class_names,
    )
    return {k: v for k, v in scores.items() if k != "per_class_acc"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", nargs="+", default=["fcn8s"], help="architectures to train")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds")
    parser.add_argument("--epochs", type=int, default=110, help="training epochs per run")
    parser.add_argument("--tag", default="", help="prefix for result names (to keep recipe variants apart)")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="override recipe fields (YAML values)"
    )
    parser.add_argument(
        "--staged",
        nargs=3,
        type=int,
        metavar=("E32", "E16", "E8"),
        help="staged training instead of --arch: 32s, then 16s from it, then 8s from that (epochs per stage)",
    )
    args = parser.parse_args()
    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}; this benchmark needs ../shared/data/camvid")
    extra = parse_overrides(args.set)
    if args.staged:
        for seed in args.seeds:
            run_staged(seed, args, extra)
        return
    for seed in args.seeds:
        for arch in args.arch:
            run_one(arch, seed, args, extra)


if __name__ == "__main__":
    main()
