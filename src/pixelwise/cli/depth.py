"""``pixelwise depth``: monocular depth (Mostajabi thesis §5.5)."""

from __future__ import annotations

import argparse
import json

from pixelwise.cli.commands import add_config_command
from pixelwise.cli.options import build_config
from pixelwise.methods.depth import DepthConfig


def register_depth(sub: argparse._SubParsersAction) -> None:
    """Add ``depth`` to the ``pixelwise`` subcommands (flags generated from :class:`DepthConfig`)."""
    add_config_command(
        sub,
        "depth",
        "train a monocular depth model",
        "Depth from RGB (Mostajabi thesis §5.5): any --arch / --backbone with one output read as log depth, L1 "
        "loss in metres on the pixels with known depth; validation prints RMSE, RMSE(log), AbsRel, SqRel and "
        "delta < 1.25^k. --input seg / seg+rgb reads the ground-truth labels (one binary mask per class) "
        "instead of or besides RGB, pred-seg / pred-seg+rgb a segmentation run's class probabilities "
        "(--seg-from; Table 5.5). Needs data with depth (the synthetic scenes, rgbd:LIST_FILE).",
        DepthConfig,
        run_depth,
    )


def run_depth(args: argparse.Namespace) -> int:
    from pixelwise.engine.trainer import train
    from pixelwise.methods.depth import DepthTask

    config = build_config(DepthConfig, args)
    print(json.dumps(train(config, DepthTask(config)), indent=2))
    return 0
