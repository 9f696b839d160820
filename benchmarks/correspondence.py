"""Correspondence from frozen convnet features on CamVid (Long thesis Ch. 2; spec correspondence-keypoints.md).

P3, real-motion label transfer: CamVid's 101 val frames are one 15 Hz clip. For frame gaps k in {1, 2, 4, 8}
the labels of frame t are carried to frame t+k by a flow from t+k to t and scored (mean IoU, summed confusion
over all pairs) against t+k's own labels. Arms: copy (zero flow); conv flow (§2.2: layer2 cells at their rf
centres, L2 data term, quadratic smoothness beta, min-sum BP) on the frozen backbone of each run in --runs
(random init as the control); grey-patch flow on the same grid and MRF; Farneback pixel flow (OpenCV). Frames at
180x240. beta is chosen per backbone on consecutive **train** frames (1 s apart: the spec's hard set), never on
the val clip. 95% intervals: bootstrap over pairs (1000 resamples of the summed confusion).

P1, locality (§2.1): every cell of the train frames is a database; each of 20 val frames is rebuilt from its
cells' nearest database cells (k = 1), pasting each neighbour's stride-sized patch, against the uniform-rf control
(a random patch inside the neighbour's receptive field); PSNR per stage and backbone.

Each (part, backbone) writes benchmarks/results/correspondence/<part>_<backbone>.json; reruns skip finished ones.
Runs single-threaded (conv flow's small kernels lose to thread overhead on a busy machine). Usage:

    python benchmarks/correspondence.py --part p3 --runs random runs/bench/colorization/geo_hue-chroma_e30 \
        runs/bench/camvid_fcn/geo_e110_fcn8s_seed0
    python benchmarks/correspondence.py --part p1 --runs random runs/bench/colorization/geo_hue-chroma_e30
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixelwise.data import build_dataset, eval_transforms
from pixelwise.methods.correspondence import conv_flow, dense_features, feature_extractor
from pixelwise.methods.correspondence.descriptors import grey_patch_descriptors
from pixelwise.methods.correspondence.features import FeatureGrid
from pixelwise.methods.correspondence.warp import warp_labels
from pixelwise.metrics import confusion_matrix, segmentation_scores

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAMVID, ROOT, machine, provenance, write_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "correspondence"
SIZE = (180, 240)
GAPS = (1, 2, 4, 8)
BETAS = (0.0, 0.01, 0.03, 0.1, 0.3)
STAGE, RADIUS = "layer2", 4  # stride 8: 4 cells = 32 px at 180x240, more than the clip moves in 8 frames
CLASSES, IGNORE = 11, 255


def clip(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [N, 3, H, W], labels [N, H, W]) of a CamVid split at 180x240, in temporal order."""
    data = build_dataset(f"camvid:{CAMVID}", split, size=SIZE, transform=eval_transforms())
    order = sorted(range(len(data)), key=lambda i: data.names[i])  # 0016E5_07959 ...: name order = time
    items = [data[i] for i in order]
    return torch.stack([im for im, _ in items]), torch.stack(
        [t["seg"].as_subclass(torch.Tensor) for _, t in items]
    )


def feature_grids(run: str, images: torch.Tensor) -> FeatureGrid:
    extractor = feature_extractor(None if run == "random" else str(ROOT / run), (STAGE,))
    grids = [dense_features(extractor, images[i : i + 16])[STAGE] for i in range(0, len(images), 16)]
    first = grids[0]
    return FeatureGrid(torch.cat([g.features for g in grids]), first.grid, first.image_size)


def patch_grids(images: torch.Tensor, like: FeatureGrid) -> FeatureGrid:
    return grey_patch_descriptors(images, like, size=like.grid.stride * 2)


def transfer_confusion(flow_of, labels: torch.Tensor, gap: int) -> list[torch.Tensor]:
    """Per pair (t, t+gap): the confusion of t's labels carried to t+gap against t+gap's labels."""
    out = []
    for t in range(len(labels) - gap):
        dense = flow_of(t + gap, t)  # [2, H, W] pixel flow from frame t+gap to frame t
        carried = warp_labels(labels[t], dense, IGNORE)
        # A pixel that received no label is an error of its true class: an extra "none" column, never a target
        # class, so mean IoU leaves it out (as metrics.correspondence.label_transfer_scores does).
        carried = torch.where(carried == IGNORE, torch.full_like(carried, CLASSES), carried)
        out.append(confusion_matrix(carried, labels[t + gap], CLASSES + 1, IGNORE))
    return out


def scores(confusions: list[torch.Tensor], generator: np.random.Generator) -> dict[str, float]:
    total = torch.stack(confusions).sum(0)
    miou = float(segmentation_scores(total)["mean_iou"])
    stacked = torch.stack(confusions).double()
    samples = []
    for _ in range(1000):
        pick = torch.from_numpy(generator.integers(0, len(confusions), len(confusions)))
        samples.append(float(segmentation_scores(stacked[pick].sum(0))["mean_iou"]))
    low, high = np.percentile(samples, [2.5, 97.5])
    return {"mean_iou": miou, "ci95": [float(low), float(high)], "pairs": len(confusions)}


def mrf_flow(grids: FeatureGrid, beta: float):
    def flow_of(source: int, target: int) -> torch.Tensor:
        return conv_flow(grids.image(source), grids.image(target), beta, RADIUS).dense()

    return flow_of


def choose_beta(grids: FeatureGrid, labels: torch.Tensor) -> tuple[float, dict[str, float]]:
    """beta with the best label transfer between consecutive train frames (the first 40 pairs)."""
    found = {}
    for beta in BETAS:
        confusions = transfer_confusion(mrf_flow(grids, beta), labels[:41], 1)
        found[str(beta)] = float(segmentation_scores(torch.stack(confusions).sum(0))["mean_iou"])
    return float(max(found, key=found.get)), found


def part3(run: str, name: str) -> dict[str, Any]:
    train_images, train_labels = clip("train")
    val_images, val_labels = clip("val")
    generator = np.random.default_rng(0)
    record: dict[str, Any] = {"stage": STAGE, "radius_cells": RADIUS, "size": list(SIZE)}
    if run == "copy":
        record["gaps"] = {str(k): scores(transfer_confusion(
            lambda s, t: zero_flow_dense(s), val_labels, k), generator) for k in GAPS}  # fmt: skip
        return record
    if run == "farneback":
        from pixelwise.data.flow import farneback_flow

        def flow_of(source: int, target: int) -> torch.Tensor:  # OpenCV's (dx, dy) -> the warp's (rows, cols)
            return farneback_flow(val_images[source], val_images[target]).flip(0)

        record["gaps"] = {str(k): scores(transfer_confusion(flow_of, val_labels, k), generator) for k in GAPS}
        return record
    if run == "grey-patch":
        like_train = feature_grids("random", train_images[:41])
        train_grids = patch_grids(train_images[:41], like_train)
        val_grids = patch_grids(val_images, feature_grids("random", val_images))
    else:
        train_grids = feature_grids(run, train_images[:41])
        val_grids = feature_grids(run, val_images)
    beta, sweep = choose_beta(train_grids, train_labels)
    record |= {"beta": beta, "beta_sweep_train": sweep}
    record["gaps"] = {str(k): scores(transfer_confusion(mrf_flow(val_grids, beta), val_labels, k), generator)
                      for k in GAPS}  # fmt: skip
    return record


def zero_flow_dense(source: int) -> torch.Tensor:
    return torch.zeros(2, *SIZE)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", default="p3", choices=("p3",), help="protocol (P1 to come)")
    parser.add_argument(
        "--runs", nargs="+", default=["copy", "farneback", "grey-patch", "random"],
        help="arms: copy, farneback, grey-patch, random, or run folders (relative to the repo) whose frozen "
        "backbone gives the features",
    )  # fmt: skip
    args = parser.parse_args()
    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}; this benchmark needs ../shared/data/camvid")
    torch.set_num_threads(1)
    for run in args.runs:
        name = Path(run).name if "/" in run else run
        path = RESULTS / f"{args.part}_{name}.json"
        if path.exists():
            print(f"{args.part} {name}: done already")
            continue
        started = time.time()
        record = part3(run, name)
        minutes = (time.time() - started) / 60
        write_result(path, {"benchmark": "correspondence", "tag": f"{args.part}_{name}", **provenance(),
                            "machine": machine(), "minutes": round(minutes, 2), "run": run, **record})  # fmt: skip
        shown = ", ".join(f"k={k}: {100 * v['mean_iou']:.1f}" for k, v in record["gaps"].items())
        print(f"{args.part} {name}: {shown} ({minutes:.1f} min)")


if __name__ == "__main__":
    main()
