"""``pixelwise tune``: tuning between pretraining and fine-tuning (Mix-and-Match, Zhan et al. 2018).

``pixelwise tune --method mixmatch --init-from PRETRAINED --data D`` trains; ``pixelwise tune diagnose
--checkpoint RUN --data D`` scores patch features before and after tuning.
"""

from __future__ import annotations

import argparse
import json

from pixelwise.cli.options import add_dataclass_arguments, build_config
from pixelwise.methods.mixmatch.config import TuneConfig


def register_tune(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "tune",
        help="Mix-and-Match tuning of a pretrained backbone on the labelled target set",
        description="Mix-and-Match (Zhan et al. 2018): between self-supervised pretraining and segmentation "
        "fine-tuning, tune the backbone with a triplet loss on patches of the labelled training images. Each "
        "iteration samples --patches-per-image square patches per image (label: the centre pixel's class), pools "
        "the patches of the --batch-size images into one class-wise connected graph, takes one triplet per node "
        "and minimises the hinge loss of Eq. 1 on L2-normalised pool5 features (--margin 2.1). --init-from loads "
        "the backbone of any checkpoint (e.g. `pixelwise pretrain` colorization; grey input is inferred). "
        "Validation reports the nearest-class-centroid accuracy of val patch features. Fine-tune the result with "
        "`pixelwise train --init-from RUN` (--in-channels 1 for a grey backbone). `pixelwise tune diagnose` "
        "compares patch features before and after tuning.",
    )
    parser.add_argument("--config", help="YAML file of options (flags override it)")
    add_dataclass_arguments(parser, TuneConfig)
    parser.set_defaults(run=run_tune)
    tools = parser.add_subparsers(
        dest="tool", metavar="TOOL", help="optional tool instead of training: diagnose (feature diagnostic)"
    )
    diagnose = tools.add_parser(
        "diagnose",
        help="nearest-class-centroid accuracy of patch features, before vs after tuning",
        description="Sample patches of a labelled split (the 'mix' sampler with a fixed seed, so every checkpoint "
        "sees the same patches), embed them with each checkpoint's backbone (normalised pool5 / last-stage "
        "features) and report the nearest-class-centroid accuracy and the intra/inter-class distance ratio. An M&M "
        "checkpoint is compared with what it started from (its --init-from, or a random init). Writes JSON.",
    )
    from pixelwise.methods.mixmatch.config import DiagnoseConfig

    add_dataclass_arguments(diagnose, DiagnoseConfig)
    diagnose.set_defaults(run=run_diagnose)


def run_tune(args: argparse.Namespace) -> int:
    from pixelwise.engine.trainer import train
    from pixelwise.methods.mixmatch import MixMatchTask

    config = build_config(TuneConfig, args)
    scores = train(config, MixMatchTask(config))
    print(json.dumps({k: v for k, v in scores.items() if isinstance(v, (int, float))}, indent=2))
    return 0


def run_diagnose(args: argparse.Namespace) -> int:
    from pixelwise.methods.mixmatch.diagnose import DiagnoseConfig, diagnose

    config = build_config(DiagnoseConfig, args)
    diagnose(config)
    print(f"wrote {config.output}")
    return 0
