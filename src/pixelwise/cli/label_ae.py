"""``pixelwise label-ae``: tools for a trained label autoencoder (Mostajabi 2018); ``neighbours`` for now (§4.3)."""

from __future__ import annotations

import argparse
import json

from pixelwise.cli.options import add_dataclass_arguments, build_config
from pixelwise.methods.label_ae.config import NeighboursConfig


def register_label_ae(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "label-ae",
        help="inspect a label autoencoder (nearest neighbours in code space)",
        description="Tools for a label autoencoder trained with `pixelwise pretrain --method label-ae` "
        "(Mostajabi 2018 §3.1). Use it as a regulariser with `pixelwise train --regularizer label-ae "
        "--label-ae RUN`.",
    )
    tools = parser.add_subparsers(
        dest="tool", required=True, metavar="TOOL", help="what to do with the model"
    )
    neighbours = tools.add_parser(
        "neighbours",
        help="nearest label maps in code space",
        description="Encode the label maps of two splits and, for evenly spaced query maps (default: val), draw "
        "the k nearest maps of the database split (default: train) by Euclidean distance between flattened "
        "bottleneck codes (§4.3). Writes OUTPUT/neighbours.png, one panel per query and neighbours.json.",
    )
    add_dataclass_arguments(neighbours, NeighboursConfig)
    neighbours.set_defaults(run=run_neighbours)


def run_neighbours(args: argparse.Namespace) -> int:
    from pixelwise.methods.label_ae.neighbours import retrieve_neighbours

    record = retrieve_neighbours(build_config(NeighboursConfig, args))
    print(json.dumps(record["queries"], indent=2))
    print(f"wrote {record['grid']}")
    return 0
