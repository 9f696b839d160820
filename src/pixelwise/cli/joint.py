"""``pixelwise joint``: the two-part joint depth + segmentation model (Mostajabi thesis §5.5.2, Table 5.6)."""

from __future__ import annotations

import argparse
import json

from pixelwise.cli.commands import add_config_command
from pixelwise.cli.options import build_config
from pixelwise.methods.joint.config import JointConfig


def register_joint(sub: argparse._SubParsersAction) -> None:
    """Add ``joint`` to the ``pixelwise`` subcommands (flags generated from :class:`JointConfig`)."""
    add_config_command(
        sub,
        "joint",
        "train the two-part joint depth + segmentation model",
        "The two-part model (Mostajabi thesis §5.5.2): part 1 predicts depth and segmentation from RGB, part 2 "
        "from RGB + part 1's depth and class probabilities; four losses (L1 depth, cross-entropy, both parts) "
        "weighted to contribute equally after --balance-epochs. A seeded --labels-fraction of the images keep "
        "their labels, the rest train as depth-only images (seg heads frozen on them); every batch holds a "
        "labelled image. --arm picks Table 5.6's ablations; --phase2-epochs adds the second phase on the "
        "labelled images at lr x --phase2-lr-scale (OUTPUT/phase1, OUTPUT/phase2). Needs data with depth "
        "(synthetic scenes, 'synthetic:N:HxW:hard', or rgbd:LIST_FILE).",
        JointConfig,
        run_joint_command,
    )


def run_joint_command(args: argparse.Namespace) -> int:
    from pixelwise.methods.joint.task import run_joint

    config = build_config(JointConfig, args)
    print(json.dumps(run_joint(config), indent=2))
    return 0
