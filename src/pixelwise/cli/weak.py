"""``pixelwise weak``: segmentation from image-level tags (Mostajabi thesis Ch. 4): ``localise``, then ``points``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pixelwise.cli.options import add_dataclass_arguments, build_config
from pixelwise.methods.weak.config import WeakLocaliseConfig, WeakPointsConfig


def register_weak(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "weak",
        help="learn segmentation from image-level tags",
        description="Weak supervision from image tags (Mostajabi thesis Ch. 4), in three runs: `weak localise` "
        "trains class localisers from the images' tags alone (the label maps only say which classes occur); "
        "`weak points` samples diverse points from their score maps and writes them as sparse label maps; "
        "`pixelwise train --data POINTS/train.txt --val-data DATA` trains a segmentation model on the points.",
    )
    tools = parser.add_subparsers(dest="tool", required=True, metavar="STEP", help="which step")
    localise = tools.add_parser(
        "localise",
        help="train the tag localiser",
        description="Zoom-out features (the end-to-end head, 2 scores per class and location) trained with the "
        "global-softmax image-level log-loss (Eq. 4.3.2): tagged classes are positives, as many random untagged "
        "classes negatives. Validated by the precision of the diverse points it samples on the val images. "
        "--init-from gives it a pretrained backbone (e.g. a colorization run, with --in-channels 1).",
    )
    localise.add_argument("--config", help="YAML file of options (flags override it)")
    add_dataclass_arguments(localise, WeakLocaliseConfig)
    localise.set_defaults(run=run_localise)
    points = tools.add_parser(
        "points",
        help="write diverse point labels",
        description="For every image of --data, sample --points-per-class diverse points per tagged class from "
        "the localiser's scores (Eq. 4.3.3-4.3.5) and write the image, a label map that is void except at the "
        "points (each labels its 4x4 cell), train.txt and classes.txt. Prints the points' pixel precision "
        "against the true labels (for information; training never sees them).",
    )
    add_dataclass_arguments(points, WeakPointsConfig)
    points.set_defaults(run=run_points)


def run_localise(args: argparse.Namespace) -> int:
    from pixelwise.engine.trainer import train
    from pixelwise.methods.weak import TagLocalisationTask

    config = build_config(WeakLocaliseConfig, args)
    scores = train(config, TagLocalisationTask(config))
    print(json.dumps(scores, indent=2))
    return 0


def run_points(args: argparse.Namespace) -> int:
    from pixelwise.data import build_dataset, eval_transforms
    from pixelwise.engine.distributed import resolve_device
    from pixelwise.methods.kinds import build_model_from_checkpoint
    from pixelwise.methods.weak import write_point_labels

    config = build_config(WeakPointsConfig, args)
    if not config.checkpoint or not config.data:
        raise ValueError("weak points needs --checkpoint and --data")
    model, _ = build_model_from_checkpoint(config.checkpoint, expect="tag-localiser")
    model.to(resolve_device(config.device))
    size = tuple(config.base_size) if config.base_size else None
    dataset = build_dataset(config.data, config.split, size=size, transform=eval_transforms())
    record = write_point_labels(
        model,
        dataset,
        Path(config.output),
        config.points_per_class,
        config.background_class,
        strategy=config.strategy,
        crops=config.crops,
        crop_size=tuple(config.crop_size),
        seed=config.seed,
    )
    print(json.dumps(record, indent=2))
    print(
        f"wrote {Path(config.output) / 'train.txt'}; next: pixelwise train --data {config.output}/train.txt ..."
    )
    return 0
