"""Colorization as pretraining for CamVid segmentation (Larsson Ch. 3 at CPU scale): random vs colorization init.

Every arm fine-tunes the same grey-input FCN-8s / ResNet-18 for the same number of optimiser steps (default 300,
batch 8, AdamW + poly, bf16) on a seeded fraction of the CamVid train labels, and is scored on val (mean IoU).
Arms: init in {random, colorization (hue/chroma histograms), colorization-l2 (L2 regression pretraining)},
freeze in {none, backbone (only the FCN head learns: frozen features)}, labels fraction, seed. With
``--set recalibrate_bn=true`` a frozen arm is its own "+recalibrated-bn" arm: the frozen BatchNorm statistics are
re-estimated on the labelled images before training (a random backbone's defaults normalise nothing).

Pretrained backbones come from benchmarks/colorization_pretrain.py (runs/bench/colorization/<loss>_e<E>/last).
Each arm writes benchmarks/results/colorization_transfer/<arm>.json; reruns skip finished arms and arms whose
pretrained checkpoint does not exist yet. Usage:

    python benchmarks/colorization_transfer.py                         # the main grid, seeds 0 1 2
    python benchmarks/colorization_transfer.py --freeze backbone --fractions 1.0
    python benchmarks/colorization_transfer.py --freeze backbone --fractions 1.0 --set recalibrate_bn=true
    python benchmarks/colorization_transfer.py --inits colorization-l2 --fractions 0.1
    python benchmarks/colorization_transfer.py --tag geo_ --fractions 0.1 1.0   # loads geo_hue-chroma_e30
    python benchmarks/colorization_transfer.py --inits random-rgb proxy-C proxy-CJV-normsgd --fractions 0.1 0.25
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from pixelwise.data import build_dataset
from pixelwise.methods.segmentation import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAMVID, ROOT, camvid_recipe, fit_and_record, parse_overrides  # noqa: E402

PRETRAINED = {
    "random": None,
    "colorization": "hue-chroma",
    "colorization-l2": "l2",
}
# Multi-proxy arms (benchmarks/multiproxy_camvid.py) have a 3-channel conv1: they fine-tune on RGB, and so does
# their random baseline.
PROXY_ARMS = ("C", "J", "V", "CJ-sgd", "CJ-normsgd", "CJV-normsgd")
RGB_INITS = ("random-rgb", *(f"proxy-{arm}" for arm in PROXY_ARMS))


def pretrained_checkpoint(init: str, pretrain_epochs: int, tag: str = "") -> Path | None:
    if init.startswith("proxy-"):
        return (
            ROOT
            / "runs"
            / "bench"
            / "multiproxy"
            / f"{tag}{init.removeprefix('proxy-')}"
            / "last.safetensors"
        )
    loss = PRETRAINED.get(init)
    return (
        None
        if loss is None
        else ROOT / "runs" / "bench" / "colorization" / f"{tag}{loss}_e{pretrain_epochs}" / "last.safetensors"
    )


def epochs_for(steps: int, fraction: float, batch: int) -> int:
    """Epochs that give at least ``steps`` optimiser steps on the labelled subset (drop_last batches)."""
    images = max(1, round(len(build_dataset(f"camvid:{CAMVID}", "train")) * fraction))
    return math.ceil(steps / max(1, images // batch))


def recipe(
    init_from: Path | None,
    freeze: str,
    fraction: float,
    seed: int,
    epochs: int,
    output: Path,
    in_channels: int = 1,
) -> TrainConfig:
    values = camvid_recipe(
        output,
        seed,
        in_channels=in_channels,  # grey: the thesis fine-tunes on grey input (colour back: 56.0 vs 55.9)
        init_from=str(init_from) if init_from else None,
        freeze=freeze,
        labels_fraction=fraction,
        epochs=epochs,
        amp=True,
        eval_every=0,
    )
    return TrainConfig(**values)


def run_arm(init: str, freeze: str, fraction: float, seed: int, args: argparse.Namespace) -> None:
    config_freeze = freeze
    if freeze != "none" and args.overrides.get("recalibrate_bn"):  # its own arm: BatchNorm re-estimated first
        freeze = f"{freeze}+recalibrated-bn"
    tag = f"{args.tag}{init}_{freeze}_f{fraction:g}_seed{seed}"
    result_path = ROOT / "benchmarks" / "results" / "colorization_transfer" / f"{tag}.json"
    if result_path.exists():
        print(f"{tag}: done already")
        return
    checkpoint = pretrained_checkpoint(init, args.pretrain_epochs, args.tag)
    if checkpoint is not None and not checkpoint.exists():
        print(f"{tag}: skipped, {checkpoint} does not exist yet (run benchmarks/colorization_pretrain.py)")
        return
    output = ROOT / "runs" / "bench" / "colorization_transfer" / tag
    channels = 3 if init in RGB_INITS else 1
    config = recipe(
        checkpoint, config_freeze, fraction, seed, epochs_for(args.steps, fraction, 8), output, channels
    )
    for key, value in args.overrides.items():
        setattr(config, key, value)
    fit_and_record(
        "colorization_transfer",
        tag,
        config,
        result_path,
        init=init,
        freeze=freeze,
        labels_fraction=fraction,
        seed=seed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--inits", nargs="+", default=["random", "colorization"], choices=[*PRETRAINED, *RGB_INITS],
        help="initialisations: grey-input ones, or random-rgb / proxy-ARM (multi-proxy arms, RGB input)",
    )  # fmt: skip
    parser.add_argument("--freeze", nargs="+", default=["none"], help="none, backbone, or a stage name")
    parser.add_argument(
        "--fractions", nargs="+", type=float, default=[0.1, 0.25, 1.0], help="labelled fractions"
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (subset, init, data order)"
    )
    parser.add_argument(
        "--steps", type=int, default=300, help="fine-tuning optimiser steps per arm (same for all)"
    )
    parser.add_argument("--pretrain-epochs", type=int, default=30, help="which pretraining run to load")
    parser.add_argument(
        "--tag",
        default="",
        help="prefix of the result / run names and of the pretraining run to load (e.g. geo_ for a rerun)",
    )
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override recipe fields")
    args = parser.parse_args()
    args.overrides = parse_overrides(args.set)
    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}; this benchmark needs ../shared/data/camvid")
    for seed in args.seeds:  # seed-major, so an interrupted study has balanced arms
        for fraction in args.fractions:
            for freeze in args.freeze:
                for init in args.inits:
                    run_arm(init, freeze, fraction, seed, args)


if __name__ == "__main__":
    main()
