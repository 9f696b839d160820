"""``pixelwise distill``: task-agnostic distillation of frozen teacher runs into one student (Larsson §4.3)."""

from __future__ import annotations

import argparse
import json

from pixelwise.cli.options import add_dataclass_arguments, build_config
from pixelwise.methods.distill.config import DistillConfig

DESCRIPTION = (
    "Distil one or more frozen teacher runs (any pixelwise run with a backbone: colorization, segmentation, depth, "
    "...) into a student backbone at the top non-task layer, before its ReLU (Larsson thesis §4.3.1). Every "
    "feature-map position of the same augmented images is a sample. Loss: the AB divergence on features "
    "pre-normalised by the teachers' s_c = sqrt(E[y_c^2]) (Eq. 4.4-4.7; default (alpha, beta) = (1/4, 0), the new "
    "loss at T = 4), squared L2, or the classic KL (Eq. 4.1). M teachers give M F features for the student's F: a "
    "fixed random subset (stored in the checkpoint) or a training-only auxiliary layer (§4.3.4). s is measured in "
    "one pass over the distillation images before training. Writes OUTPUT/config.yaml, log.jsonl, last.safetensors "
    "(resumable) and best.safetensors (lowest val distillation loss; the student without any auxiliary layer). "
    "Use the student with `pixelwise train --init-from OUTPUT` (its backbone, a new head)."
)


def register_distill(sub: argparse._SubParsersAction) -> None:
    """Add ``distill`` to the ``pixelwise`` subcommands (flags generated from :class:`DistillConfig`)."""
    parser = sub.add_parser(
        "distill", help="distil teacher runs' top features into one student backbone", description=DESCRIPTION
    )
    parser.add_argument("--config", help="YAML file of options (flags override it)")
    add_dataclass_arguments(parser, DistillConfig)
    parser.set_defaults(run=run_distill)


def run_distill(args: argparse.Namespace) -> int:
    from pixelwise.engine.trainer import train
    from pixelwise.methods.distill.task import DistillationTask

    config = build_config(DistillConfig, args)
    scores = train(config, DistillationTask(config))
    print(json.dumps({k: scores[k] for k in ("loss", "l2", "images") if k in scores}, indent=2))
    return 0
