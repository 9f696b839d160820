"""Colorization pretraining on CamVid frames (Larsson Ch. 3 at CPU scale): train + val images, labels unused.

Recipe: ResNet-18 with grey input, hypercolumn of every stage -> FC 1024 -> 32-bin hue and chroma histograms,
128 sparse points per image, 7x7 target windows, AdamW + poly decay (the thesis: dropping the LR matters),
bf16 autocast, 180x240 crops of half-resolution frames. Validation colorizes the full-resolution val frames
(network at half resolution, colour upsampled) and reports PSNR against the grey baseline and RMSE ab.

Each loss variant writes benchmarks/results/colorization_pretrain/<tag>.json and keeps its run folder
runs/bench/colorization/<tag> (whose last.safetensors the transfer study loads); reruns skip finished runs and
resume interrupted ones. Usage:

    python benchmarks/colorization_pretrain.py                      # hue/chroma histograms, 30 epochs
    python benchmarks/colorization_pretrain.py --loss l2            # the L2 regression ablation
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pixelwise.engine.trainer import Trainer
from pixelwise.methods.colorization import ColorizationTask
from pixelwise.methods.pretrain import PretrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAMVID, ROOT, parse_overrides, result_record, write_result  # noqa: E402


def recipe(loss: str, epochs: int, output: Path, extra: dict) -> PretrainConfig:
    values = dict(
        data=f"camvid:{CAMVID}",
        splits=["train", "val"],
        output=str(output),
        backbone="resnet18",
        loss=loss,
        epochs=epochs,
        batch_size=8,
        base_size=[180, 240],
        crop=[180, 240],
        scale=[1.0, 1.5],
        optimizer="adamw",
        lr=2e-3,
        weight_decay=1e-4,
        schedule="poly",
        samples=128,
        window=7,
        amp=True,
        eval_every=max(1, epochs // 3),
        eval_scale=0.5,
        seed=0,
        resume=(output / "last.safetensors").exists(),
    )
    values.update(extra)
    return PretrainConfig(**values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loss", nargs="+", default=["hue-chroma"], help="pretraining targets to run")
    parser.add_argument("--epochs", type=int, default=30, help="pretraining epochs")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override recipe fields")
    parser.add_argument("--tag", default="", help="prefix of the result / run names (e.g. geo_ for a rerun)")
    args = parser.parse_args()
    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}; this benchmark needs ../shared/data/camvid")
    for loss in args.loss:
        tag = f"{args.tag}{loss}_e{args.epochs}"
        result_path = ROOT / "benchmarks" / "results" / "colorization_pretrain" / f"{tag}.json"
        if result_path.exists():
            print(f"{tag}: done already ({result_path})")
            continue
        config = recipe(
            loss, args.epochs, ROOT / "runs" / "bench" / "colorization" / tag, parse_overrides(args.set)
        )
        started = time.time()
        scores = Trainer(config, ColorizationTask(config)).fit()
        minutes = (time.time() - started) / 60
        write_result(result_path, result_record("colorization_pretrain", tag, config, minutes, val=scores))
        print(
            f"{tag}: val PSNR {scores['psnr']:.2f} dB vs grey {scores['grey_psnr']:.2f} dB in {minutes:.1f} min"
        )


if __name__ == "__main__":
    main()
