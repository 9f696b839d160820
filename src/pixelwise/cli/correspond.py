"""``pixelwise correspond``: correspondence and keypoints from frozen convnet features (Long thesis Ch. 2).

Four tools, each a dataclass config (:mod:`pixelwise.methods.correspondence.config`) with JSON + PNG output:
``visualise`` (§2.1 nonparametric reconstruction), ``align`` (§2.2 conv flow), ``transfer`` (§2.2 keypoint
transfer) and ``keypoints`` (§2.4 keypoint prediction). This module builds their parsers; the work
(:mod:`pixelwise.cli.correspond_jobs`, on :mod:`pixelwise.methods.correspondence`) is imported when a tool runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pixelwise.cli.options import add_dataclass_arguments, deferred
from pixelwise.methods.correspondence.config import (
    AlignConfig,
    KeypointsConfig,
    TransferConfig,
    VisualiseConfig,
)

JOBS = "pixelwise.cli.correspond_jobs"  # imported when a tool runs: --help needs no torch


def register_correspond(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "correspond",
        help="correspondence and keypoints from frozen convnet features",
        description="Correspondence from the frozen features of any run, or of a random backbone (Long thesis "
        "Ch. 2; nothing is fine-tuned). Tools: `visualise` (§2.1: rebuild images from their cells' nearest "
        "neighbours, against the uniform-rf control), `align` (§2.2 conv flow between two images), `transfer` "
        "(§2.2: keypoints moved from retrieved training objects by conv flow) and `keypoints` (§2.4: per-type "
        "linear SVM detectors with a nearest-neighbour prior). Keypoint files use the pixelwise-keypoints JSON "
        "format (pixelwise.data.keypoints).",
    )
    tools = parser.add_subparsers(dest="tool", required=True, metavar="TOOL", help="which tool")
    visualise = _tool(
        tools,
        "visualise",
        VisualiseConfig,
        deferred(JOBS, "run_visualise"),
        "nearest-neighbour patch reconstruction of images from their cells (§2.1)",
        "Every --stage cell of each QUERY image is replaced by the mean of the centre patches (stride x "
        "stride, at the rf centre) of its --k nearest --database cells by cosine (thesis Fig. 2.1), and, as the "
        "control, by the same neighbours' patches taken at random offsets inside a --uniform-rf rf: what "
        "features with no spatial information inside their rf could give. Writes OUTPUT/panel_<name>.png "
        "(query | NN reconstruction | uniform-rf control) and reconstruction.json (PSNR per query and mean, NN "
        "vs uniform-rf).",
    )
    visualise.add_argument("queries", nargs="+", metavar="QUERY", help="image(s) to reconstruct")
    align = _tool(
        tools,
        "align",
        AlignConfig,
        deferred(JOBS, "run_align"),
        "conv flow between two images (§2.2)",
        "Conv flow from SOURCE to TARGET on one stage's cells (each at its receptive-field centre): L2 data "
        "term, quadratic smoothness, min-sum belief propagation. Writes OUTPUT/panel.png (source | target | "
        "target warped to source | flow magnitude) and flow.json (energy, mean displacement, PSNR of the warp "
        "and of plain copying).",
    )
    align.add_argument("source", help="image whose cells are matched")
    align.add_argument("target", help="image they are matched in")
    transfer = _tool(
        tools,
        "transfer",
        TransferConfig,
        deferred(JOBS, "run_transfer"),
        "keypoint transfer by conv flow from retrieved training objects (§2.2, Table 2.2)",
        "For each object of QUERIES (its box given), retrieve the --neighbours training objects of its "
        "category by global-descriptor cosine, warp every box (plus --margin) to a --box-size square, align "
        "each neighbour to the query by conv flow, sort them by deformation energy and predict each keypoint "
        "as the median of the first --top transferred ones. Writes OUTPUT/predictions.json (keypoint format), "
        "transfer.json (PCK at each --alphas and pixel error, conv flow vs the NN-transfer baseline, when "
        "QUERIES has keypoints) and panel_<image>_<object>.png (o truth, x prediction).",
    )
    _keypoint_files(transfer)
    keypoints = _tool(
        tools,
        "keypoints",
        KeypointsConfig,
        deferred(JOBS, "run_keypoints"),
        "keypoint prediction: linear SVM detectors + nearest-neighbour prior (§2.4, Table 2.4)",
        "Rescale every box to --box-size, describe each cell by its --block x --block block of --stage cells, "
        "train one linear SVM per keypoint type on TRAIN (the --positives nearest cells, hard-mined negatives, "
        "Platt-calibrated), add a Gaussian prior at the keypoint of the nearest training object by descriptor "
        "cosine, combine as s^(1-eta) p^eta (eta by cross-validation unless given) and take the best cell. "
        "Writes OUTPUT/predictions.json (keypoint format), keypoints.json (PCK with and without the prior, when "
        "QUERIES has keypoints) and panel_<image>_<object>.png (o truth, x prediction).",
    )
    _keypoint_files(keypoints)


def _tool(
    tools: argparse._SubParsersAction,
    name: str,
    config: type,
    run: Callable[[argparse.Namespace], int],
    summary: str,
    description: str,
) -> argparse.ArgumentParser:
    parser = tools.add_parser(name, help=summary, description=description)
    add_dataclass_arguments(parser, config)
    parser.set_defaults(run=run)
    return parser


def _keypoint_files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("train", metavar="TRAIN", help="keypoint JSON of the training objects (the database)")
    parser.add_argument(
        "queries", metavar="QUERIES", help="keypoint JSON of the query objects (boxes; keypoints to score)"
    )
