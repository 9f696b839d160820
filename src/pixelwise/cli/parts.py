"""``pixelwise parts``: stacked Bernoulli mixture models of parts (Larsson thesis Ch. 1). Work in progress."""

from __future__ import annotations

import argparse


def register_parts(sub: argparse._SubParsersAction) -> None:
    """Add ``parts`` to the ``pixelwise`` subcommands."""
    parser = sub.add_parser(
        "parts",
        help="fit and evaluate stacked Bernoulli mixture models of parts",
        description="Stacked Bernoulli mixture models with latent transformations (Larsson thesis Ch. 1): not "
        "built yet.",
    )
    parser.set_defaults(run=lambda args: parser.error("pixelwise parts is not built yet"))
