"""Zoom-out vs FCN-8s on CamVid (Mostajabi thesis §3.5 at CPU scale): does reading every stage help?

Both arms train the same from-scratch ResNet-18 with the project's CamVid recipe (benchmarks/common.py: frames
cached at 180x240, scale jitter 0.75-1.5, flips, AdamW 2e-3 + poly, batch 8, bf16 autocast), for the same number of
optimiser steps (default 405 = 9 epochs), and are scored on val mean IoU at half the full resolution. Arms:

    fcn8s          FCN-8s: per-layer class scores of layer4/3/2, summed coarse to fine (Long §3.3.3)
    zoomout_w256   zoom-out: layer1-4 + the scene level on the stride-4 grid, 1x1-conv classifier 256-256-K
    zoomout_w1000  the same with the thesis's 1000 hidden units (about 3x the cost per step of w256 on a CPU)

and the superpixel classifier of §3.3-3.4 (`pixelwise zoomout`) on a *frozen* backbone, as in the thesis (500 SLIC
superpixels per 180x240 frame, every stage + sub-scene + scene, mirror-max, MLP 1024-1024 with dropout, the
rebalanced loss, 5 epochs over the ~180k training superpixels; val frames at 1/4 resolution, i.e. 180x240 like
training, scored at full label resolution with the superpixel oracle beside it):

    superpixel_colorization   the colorization backbone (grey input; runs/bench/colorization/hue-chroma_e30), to
                              set against the frozen-backbone FCN-8s head of the transfer study
    superpixel_fcn8s          the backbone of the 110-epoch FCN-8s run (runs/bench/camvid_fcn/bf16e110_fcn8s_seed0)

The thesis claims zoom-out matches dilation at lower cost (Cityscapes ResNet-101+PPM: 76.6 vs 76.5) and a large
gain of the full zoom-out descriptor over its deepest level alone (Table 3.1); here the question is whether it beats
FCN-8s's skip fusion at equal steps, and at what cost per step (minutes are recorded per arm).

Each arm writes benchmarks/results/zoomout/<arm>_seed<S>.json and is skipped when it exists; an interrupted arm
resumes from runs/bench/zoomout/<tag>/last.safetensors. Usage:

    python benchmarks/zoomout.py                                   # fcn8s and zoomout_w256, seeds 0 1 2
    python benchmarks/zoomout.py --arms zoomout_w1000 --seeds 0
    python benchmarks/zoomout.py --arms superpixel_colorization superpixel_fcn8s --seeds 0
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from pixelwise.methods.segmentation import SegmentationTask, TrainConfig
from pixelwise.methods.zoomout import ZoomOutTask
from pixelwise.methods.zoomout.config import ZoomOutConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAMVID, ROOT, camvid_recipe, fit_and_record, parse_overrides  # noqa: E402

ARMS = {
    "fcn8s": dict(arch="fcn8s"),
    "zoomout_w256": dict(arch="zoomout", head_width=256),
    "zoomout_w1000": dict(arch="zoomout", head_width=1000),
}
SUPERPIXEL_ARMS = {  # arm: (frozen backbone's run, input channels)
    "superpixel_colorization": (
        ROOT / "runs" / "bench" / "colorization" / "hue-chroma_e30" / "last.safetensors",
        1,
    ),
    "superpixel_fcn8s": (
        ROOT / "runs" / "bench" / "camvid_fcn" / "bf16e110_fcn8s_seed0" / "last.safetensors",
        3,
    ),
}
TRAIN_IMAGES = 367  # CamVid train


def superpixel_config(arm: str, seed: int, output: Path) -> ZoomOutConfig:
    backbone, channels = SUPERPIXEL_ARMS[arm]
    if not backbone.exists():
        sys.exit(f"{arm}: {backbone} does not exist; run the benchmark that trains it first")
    return ZoomOutConfig(
        data=f"camvid:{CAMVID}",
        output=str(output),
        init_from=str(backbone),
        in_channels=channels,
        base_size=[180, 240],
        eval_scale=0.25,
        epochs=5,
        eval_every=0,
        num_examples=2,
        amp=True,
        seed=seed,
        resume=(output / "last.safetensors").exists(),
    )


def run_arm(arm: str, seed: int, args: argparse.Namespace) -> None:
    tag = f"{arm}_seed{seed}"
    result_path = args.results / f"{tag}.json"
    if result_path.exists():
        print(f"{tag}: done already")
        return
    if arm in SUPERPIXEL_ARMS:
        config: TrainConfig = superpixel_config(arm, seed, args.runs / tag)
        task: SegmentationTask = ZoomOutTask(config)
    else:
        epochs = math.ceil(args.steps / (TRAIN_IMAGES // 8))
        values = camvid_recipe(args.runs / tag, seed, epochs=epochs, eval_every=0, num_examples=2, amp=True)
        config = TrainConfig(**{**values, **ARMS[arm]})
        task = SegmentationTask(config)
    for key, value in args.overrides.items():
        setattr(config, key, value)
    # The heads draw different amounts of random numbers at init: reseed so both arms of a seed see the same
    # crops and flips, not only the same image order.
    fit_and_record("zoomout", tag, config, result_path, task, reseed=seed + 10_000, arm=arm, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--arms", nargs="+", default=["fcn8s", "zoomout_w256"], choices=[*ARMS, *SUPERPIXEL_ARMS], help="arms"
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (init, data order, crops)"
    )
    parser.add_argument(
        "--steps", type=int, default=405, help="optimiser steps per arm (rounded up to epochs)"
    )
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override recipe fields")
    parser.add_argument(
        "--results", type=Path, default=ROOT / "benchmarks" / "results" / "zoomout", help="result JSON folder"
    )
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench" / "zoomout", help="run folders")
    args = parser.parse_args()
    args.overrides = parse_overrides(args.set)
    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}; this benchmark needs ../shared/data/camvid")
    for seed in args.seeds:  # seed-major, so an interrupted study has balanced arms
        for arm in args.arms:
            run_arm(arm, seed, args)


if __name__ == "__main__":
    main()
