"""Segmentation from image-level tags on CamVid (Mostajabi thesis Ch. 4 at CPU scale): how far do tags alone go?

Per seed, three ordinary pixelwise runs:
1. `pixelwise weak localise`: zoom-out localiser (head width 256) on the frozen colorization backbone (grey input,
   runs/bench/colorization/hue-chroma_e30: no label was used to learn it), trained on the 367 train frames with their
   image-level tags only (read off the label maps) for 9 epochs (405 steps) with the CamVid recipe; scored by the
   precision of the diverse points it samples on the val frames (at 1/4 resolution, like training).
2. `pixelwise weak points`: 20 diverse points per tagged class on every train frame -> sparse label maps.
3. `pixelwise train` on those points: grey FCN-8s from the same colorization backbone, fine-tuned exactly like the
   transfer study's 100%-label arm (315 steps, AdamW 2e-3, poly), scored on val mean IoU at full label resolution.

The fully supervised reference is the transfer study's colorization -> FT at 100% labels (same steps). CamVid
frames nearly all contain most classes, so their tags say little: expect weak localisation, reported as measured.
Each seed writes benchmarks/results/weak_tags/colorization_seed<S>.json; finished stages are reused. Usage:

    python benchmarks/weak_tags.py --seeds 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pixelwise.data import build_dataset, eval_transforms
from pixelwise.engine.trainer import Trainer
from pixelwise.methods.segmentation import TrainConfig
from pixelwise.methods.weak import TagLocalisationTask, write_point_labels
from pixelwise.methods.weak.config import WeakLocaliseConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAMVID, ROOT, camvid_recipe, fit_and_record  # noqa: E402

COLORIZATION = ROOT / "runs" / "bench" / "colorization" / "hue-chroma_e30" / "last.safetensors"
RESULTS = ROOT / "benchmarks" / "results" / "weak_tags"
RUNS = ROOT / "runs" / "bench" / "weak_tags"


def localise(seed: int) -> tuple[Trainer, dict]:
    output = RUNS / f"localise_seed{seed}"
    values = camvid_recipe(output, seed, arch="zoomout", head_width=256, in_channels=1, init_from=str(COLORIZATION),
                           freeze="backbone", epochs=9, eval_every=0, eval_scale=0.25, amp=True)  # fmt: skip
    config = WeakLocaliseConfig(**values)
    trainer = Trainer(config, TagLocalisationTask(config))
    return trainer, trainer.fit()


def run_seed(seed: int) -> None:
    tag = f"colorization_seed{seed}"
    result_path = RESULTS / f"{tag}.json"
    if result_path.exists():
        print(f"{tag}: done already")
        return
    started = time.time()
    localiser, localisation = localise(seed)
    points = RUNS / f"points_seed{seed}"
    if not (points / "summary.json").exists():
        images = build_dataset(f"camvid:{CAMVID}", "train", size=(180, 240), transform=eval_transforms())
        summary = write_point_labels(localiser.model.to("cpu"), images, points, 20, -1)
        (points / "summary.json").write_text(json.dumps(summary))
    summary = json.loads((points / "summary.json").read_text())
    output = RUNS / f"segmentation_seed{seed}"
    values = camvid_recipe(output, seed, data=str(points / "train.txt"), val_data=f"camvid:{CAMVID}",
                           in_channels=1, init_from=str(COLORIZATION), epochs=7, eval_every=0, amp=True)  # fmt: skip
    fit_and_record(
        "weak_tags",
        tag,
        TrainConfig(**values),
        result_path,
        seed=seed,
        localiser_val=localisation,
        train_points=summary,
        minutes_all_stages=round((time.time() - started) / 60, 2),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0], help="seeds (localiser, points, training)"
    )
    args = parser.parse_args()
    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}; this benchmark needs ../shared/data/camvid")
    if not COLORIZATION.exists():
        sys.exit(f"{COLORIZATION} missing: run benchmarks/colorization_pretrain.py first")
    for seed in args.seeds:
        run_seed(seed)


if __name__ == "__main__":
    main()
