"""Segmentation from image-level tags on CamVid (Mostajabi thesis Ch. 4 at CPU scale): how far do tags alone go?

Per seed and protocol, ordinary pixelwise runs:
1. `pixelwise weak localise`: zoom-out localiser (head width 256) on the frozen colorization backbone (grey input,
   runs/bench/colorization/<pretrain-tag>hue-chroma_e30: no label was used to learn it), trained on the 367 train
   frames with image-level tags only (read off the label maps of each training crop) for 9 epochs (405 steps)
   with the CamVid recipe; its val point precision (from pixel labels) is a diagnostic, never used to choose.
2. `pixelwise weak points --strategy S`: 20 points per tagged class with S in {diverse (§4.3.2), top-k, dense}
   (Table 4.3's comparison) -> sparse label maps.
3. `pixelwise train` on those points: grey FCN-8s from the same colorization backbone, 315 steps (as the transfer
   study's 100%-label arm: AdamW 2e-3, poly), scored on val mean IoU at full label resolution (the last model).

Protocols: ``frames`` tags whole frames (every CamVid val frame holds all 11 classes, a train frame misses ~1.4:
its tags say little); ``crops`` trains the localiser on 90x120 crops of the 180x240 frames (each crop's tags are
the classes inside it) and treats 4 seeded random crops per train frame as the weakly labelled images of steps
2-3 (their points sampled within them, the FCN trained on the crops). Nothing is chosen on val: fixed recipes, the
last checkpoints. The fully supervised reference is colorization_transfer's colorization -> FT at 100% labels.

Each arm writes benchmarks/results/weak_tags/<pretrain-tag><protocol>_<strategy>_seed<S>.json; finished stages
are reused (the localiser and point sets are shared by the arms that need them). Usage:

    python benchmarks/weak_tags.py --seeds 0
    python benchmarks/weak_tags.py --pretrain-tag geo_ --protocol crops --strategies diverse top-k dense
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from pixelwise.data import build_dataset, eval_transforms
from pixelwise.engine.trainer import Trainer
from pixelwise.methods.kinds import build_model_from_checkpoint
from pixelwise.methods.segmentation import TrainConfig
from pixelwise.methods.weak import TagLocalisationTask, write_point_labels
from pixelwise.methods.weak.config import WeakLocaliseConfig
from pixelwise.methods.weak.task import STRATEGIES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAMVID, ROOT, camvid_recipe, fit_and_record  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "weak_tags"
RUNS = ROOT / "runs" / "bench" / "weak_tags"
CROP = (90, 120)  # a quarter of the 180x240 frame
CROPS_PER_FRAME = 4
SEGMENTATION_STEPS = 315


def colorization(pretrain_tag: str) -> Path:
    return ROOT / "runs" / "bench" / "colorization" / f"{pretrain_tag}hue-chroma_e30" / "last.safetensors"


def localise(seed: int, prefix: str, pretrained: Path, protocol: str) -> tuple[torch.nn.Module, dict]:
    output = RUNS / f"{prefix}localise_seed{seed}"
    crop = dict(crop=list(CROP)) if protocol == "crops" else {}
    values = camvid_recipe(output, seed, arch="zoomout", head_width=256, in_channels=1, init_from=str(pretrained),
                           freeze="backbone", epochs=9, eval_every=0, eval_scale=0.25, amp=True, **crop)  # fmt: skip
    if (output / "metrics.json").exists():  # finished: the model from its last checkpoint
        model, _ = build_model_from_checkpoint(output / "last.safetensors", expect="tag-localiser")
        return model, json.loads((output / "metrics.json").read_text())
    config = WeakLocaliseConfig(**values)
    trainer = Trainer(config, TagLocalisationTask(config))
    scores = trainer.fit()
    return trainer.model, scores


def point_labels(
    localiser: torch.nn.Module, seed: int, prefix: str, strategy: str, protocol: str
) -> tuple[Path, dict]:
    points = RUNS / f"{prefix}points_{strategy}_seed{seed}"
    if not (points / "summary.json").exists():
        images = build_dataset(f"camvid:{CAMVID}", "train", size=(180, 240), transform=eval_transforms())
        crops = CROPS_PER_FRAME if protocol == "crops" else 0
        summary = write_point_labels(localiser.to("cpu"), images, points, 20, -1, strategy=strategy,
                                     crops=crops, crop_size=CROP, seed=seed)  # fmt: skip
        (points / "summary.json").write_text(json.dumps(summary))
    return points, json.loads((points / "summary.json").read_text())


def run_seed(seed: int, args: argparse.Namespace) -> None:
    prefix = f"{args.pretrain_tag}{args.protocol}_" if args.pretrain_tag or args.protocol != "frames" else ""
    pretrained = colorization(args.pretrain_tag)
    localiser, localisation = None, None
    for strategy in args.strategies:
        tag = (
            f"{prefix}{strategy}_seed{seed}" if prefix else f"colorization_seed{seed}"
        )  # the first study's name
        result_path = RESULTS / f"{tag}.json"
        if result_path.exists():
            print(f"{tag}: done already")
            continue
        started = time.time()
        if localiser is None:
            localiser, localisation = localise(seed, prefix, pretrained, args.protocol)
        points, summary = point_labels(localiser, seed, prefix, strategy, args.protocol)
        # Crops stay at the frames' scale (no resize at load), so the FCN sees objects as large as at val.
        crop = dict(crop=list(CROP), base_size=None) if args.protocol == "crops" else {}
        epochs = math.ceil(SEGMENTATION_STEPS / (summary["images"] // 8))
        values = camvid_recipe(RUNS / f"{prefix}segmentation_{strategy}_seed{seed}", seed,
                               data=str(points / "train.txt"), val_data=f"camvid:{CAMVID}", in_channels=1,
                               init_from=str(pretrained), epochs=epochs, eval_every=0, amp=True, **crop)  # fmt: skip
        fit_and_record(
            "weak_tags",
            tag,
            TrainConfig(**values),
            result_path,
            seed=seed,
            protocol=args.protocol,
            strategy=strategy,
            pretrained=str(pretrained.relative_to(ROOT)),
            localiser_val=localisation,
            train_points=summary,
            minutes_all_stages=round((time.time() - started) / 60, 2),
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0], help="seeds (localiser, crops, points, training)"
    )
    parser.add_argument(
        "--protocol", default="frames", choices=("frames", "crops"), help="tags of whole frames or of crops"
    )
    parser.add_argument(
        "--strategies", nargs="+", default=["diverse"], choices=STRATEGIES, help="point sampling (Table 4.3)"
    )
    parser.add_argument(
        "--pretrain-tag", default="", help="prefix of the colorization run (colorization_pretrain.py --tag)"
    )
    args = parser.parse_args()
    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}; this benchmark needs ../shared/data/camvid")
    if not colorization(args.pretrain_tag).exists():
        sys.exit(f"{colorization(args.pretrain_tag)} missing: run benchmarks/colorization_pretrain.py first")
    for seed in args.seeds:
        run_seed(seed, args)


if __name__ == "__main__":
    main()
