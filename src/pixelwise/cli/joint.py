"""``pixelwise joint``: the two-part joint depth + segmentation model (Mostajabi thesis §5.5.2). Work in progress."""

from __future__ import annotations

import argparse


def register_joint(sub: argparse._SubParsersAction) -> None:
    """Add ``joint`` to the ``pixelwise`` subcommands."""
    parser = sub.add_parser(
        "joint",
        help="train the two-part joint depth + segmentation model",
        description="The two-part joint depth + segmentation model (Mostajabi thesis §5.5.2): not built yet.",
    )
    parser.set_defaults(run=lambda args: parser.error("pixelwise joint is not built yet"))
