"""Correspondence from frozen convnet features on CamVid (Long thesis Ch. 2; spec correspondence-keypoints.md).

P3, real-motion label transfer: CamVid's 101 val frames are one 15 Hz clip. For frame gaps k in {1, 2, 4, 8}
the labels of frame t are carried to frame t+k by a flow from t+k to t and scored (mean IoU, summed confusion
over all pairs) against t+k's own labels. Arms: copy (zero flow); conv flow (§2.2: layer2 cells at their rf
centres, L2 data term, quadratic smoothness beta, min-sum BP) on the frozen backbone of each run in --runs
(random init as the control); grey-patch flow on the same grid and MRF; Farneback pixel flow (OpenCV). Frames at
180x240. beta is chosen per backbone on consecutive **train** frames (1 s apart: the spec's hard set), never on
the val clip. 95% intervals: bootstrap over pairs (1000 resamples of the summed confusion).

P1, locality (§2.1): every cell of the 367 train frames is a database; each of 20 val frames is rebuilt from its
cells' k nearest database cells (k = 1, 5; cosine), pasting each neighbour's stride-sized patch, against the
uniform-rf control (the same neighbours' patches at a uniformly random offset inside a conv3-sized rf: ResNet-18
layer2's 99 px, which is AlexNet conv3's); PSNR per stage and backbone, intervals by bootstrap over the queries.

P2, synthetic warps (substitute for §2.2's intraclass pairs; exact GT): 40 val frames A, each warped to
B(x) = A(x + u(x)) by a random affine map (scale 0.9-1.1, +-10 deg, +-10% shift) plus an elastic field (<= 8 px)
and photometric jitter (methods/correspondence/synthetic_warps.py). Flow B -> A from conv features at layer2 and
layer3 (NN flow = beta 0, and the MRF with beta chosen on 12 warped **train** frames by end-point error), against
zero flow, grey-patch flow and SIFT flow (radius 20 px) on the same grids and MRF. Metrics: EPE (px), flow PCK at
4/8/16 px and at alpha 0.1/0.05/0.025 of max(H, W), label-transfer mean IoU (A's labels read through the flow,
scored against B's warped labels); bootstrap over pairs.

Each (part, backbone) writes benchmarks/results/correspondence/<part>_<backbone>.json; reruns skip finished ones.
Runs single-threaded (conv flow's small kernels lose to thread overhead on a busy machine). Usage:

    python benchmarks/correspondence.py --part p3 --runs random runs/bench/colorization/geo_hue-chroma_e30 \
        runs/bench/camvid_fcn/geo_e110_fcn8s_seed0
    python benchmarks/correspondence.py --part p1 --runs random runs/bench/colorization/geo_hue-chroma_e30 \
        runs/bench/camvid_fcn/geo_e110_fcn8s_seed0
    python benchmarks/correspondence.py --part p2 --runs zero grey-patch sift random \
        runs/bench/colorization/geo_hue-chroma_e30 runs/bench/camvid_fcn/geo_e110_fcn8s_seed0
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
from pixelwise.methods.correspondence import conv_flow, dense_features, feature_extractor, stage_rf_sizes
from pixelwise.methods.correspondence.descriptors import grey_patch_descriptors, sift_descriptors
from pixelwise.methods.correspondence.features import FeatureGrid
from pixelwise.methods.correspondence.reconstruction import build_database, nearest_cells, reconstruct
from pixelwise.methods.correspondence.synthetic_warps import WarpPair, warp_pair
from pixelwise.methods.correspondence.warp import warp_labels
from pixelwise.metrics import confusion_matrix, segmentation_scores
from pixelwise.metrics.correspondence import endpoint_error, flow_pck, psnr

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


def extractor_of(run: str, stages: tuple[str, ...]):
    """The frozen backbone of ``run``; "random" is one fixed (seeded) random init, so every call that builds it
    (source and target frames alike) reads the same features."""
    if run == "random":
        torch.manual_seed(0)
    return feature_extractor(None if run == "random" else str(ROOT / run), stages)


def feature_grids(run: str, images: torch.Tensor, stage: str = STAGE) -> FeatureGrid:
    extractor = extractor_of(run, (stage,))
    grids = [dense_features(extractor, images[i : i + 16])[stage] for i in range(0, len(images), 16)]
    first = grids[0]
    return FeatureGrid(torch.cat([g.features for g in grids]), first.grid, first.image_size)


def patch_grids(images: torch.Tensor, like: FeatureGrid) -> FeatureGrid:
    return grey_patch_descriptors(images, like, size=like.grid.stride * 2)


def transfer_confusion(flow_of, labels: torch.Tensor, gap: int) -> list[torch.Tensor]:
    """Per pair (t, t+gap): the confusion of t's labels carried to t+gap against t+gap's labels."""
    out = []
    for t in range(len(labels) - gap):
        dense = flow_of(t + gap, t)  # [2, H, W] pixel flow from frame t+gap to frame t
        carried = none_as_error(warp_labels(labels[t], dense, IGNORE))
        out.append(confusion_matrix(carried, labels[t + gap], CLASSES + 1, IGNORE))
    return out


def bootstrap(statistic, count: int, generator: np.random.Generator) -> list[float]:
    """95% interval of ``statistic(indices)`` over 1000 resamples (with replacement) of ``count`` items."""
    samples = [statistic(torch.from_numpy(generator.integers(0, count, count))) for _ in range(1000)]
    low, high = np.percentile(samples, [2.5, 97.5])
    return [float(low), float(high)]


def scores(confusions: list[torch.Tensor], generator: np.random.Generator) -> dict[str, float]:
    total = torch.stack(confusions).sum(0)
    miou = float(segmentation_scores(total)["mean_iou"])
    stacked = torch.stack(confusions).double()
    interval = bootstrap(
        lambda pick: float(segmentation_scores(stacked[pick].sum(0))["mean_iou"]), len(confusions), generator
    )
    return {"mean_iou": miou, "ci95": interval, "pairs": len(confusions)}


def mean_with_interval(values: list[float], generator: np.random.Generator) -> dict[str, Any]:
    stacked = torch.tensor(values, dtype=torch.float64)
    interval = bootstrap(lambda pick: float(stacked[pick].mean()), len(values), generator)
    return {"mean": float(stacked.mean()), "ci95": interval, "n": len(values)}


def none_as_error(carried: torch.Tensor) -> torch.Tensor:
    """A pixel that received no label is an error of its true class: an extra "none" column, never a target
    class, so mean IoU leaves it out (as metrics.correspondence.label_transfer_scores does)."""
    return torch.where(carried == IGNORE, torch.full_like(carried, CLASSES), carried)


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


def part3(run: str) -> dict[str, Any]:
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


# --- P1: locality (§2.1) -------------------------------------------------------------------------------------

P1_STAGES = ("layer1", "layer2", "layer3", "layer4")
P1_QUERIES, P1_KS = 20, (1, 5)


def part1(run: str) -> dict[str, Any]:
    """NN reconstruction vs the uniform-rf control, per stage and k, PSNR over 20 val queries."""
    train_images, _ = clip("train")
    val_images, _ = clip("val")
    queries = val_images[torch.linspace(0, len(val_images) - 1, P1_QUERIES).round().long()]
    extractor = extractor_of(run, P1_STAGES)
    uniform_rf = stage_rf_sizes(extractor.backbone)["layer2"]  # conv3-sized: AlexNet conv3's 99 px
    generator = np.random.default_rng(0)
    record: dict[str, Any] = {"queries": P1_QUERIES, "database_frames": len(train_images),
                              "uniform_rf_px": uniform_rf, "stages": {}}  # fmt: skip
    for stage in P1_STAGES:
        database = build_database(extractor, list(train_images), stage)
        found: dict[str, list[float]] = {f"{arm}_k{k}": [] for k in P1_KS for arm in ("nn", "uniform")}
        for index, query in enumerate(queries):
            grid = dense_features(extractor, query[None])[stage]
            neighbours = nearest_cells(grid.features[0].flatten(1).T, database.features, max(P1_KS))
            for k in P1_KS:
                jitter = torch.Generator().manual_seed(index)
                for arm, rf in (("nn", None), ("uniform", uniform_rf)):
                    rebuilt = reconstruct(grid, database, k, rf, jitter, neighbours)
                    found[f"{arm}_k{k}"].append(psnr(rebuilt.image.clamp(0, 1), query, rebuilt.mask))
        entry = {name: mean_with_interval(values, generator) for name, values in found.items()}
        for k in P1_KS:
            gaps = [a - b for a, b in zip(found[f"nn_k{k}"], found[f"uniform_k{k}"])]
            entry[f"gap_k{k}"] = mean_with_interval(gaps, generator)
        entry["database_cells"] = int(database.features.shape[0])
        record["stages"][stage] = entry
        print(
            f"  {stage}: NN {entry['nn_k1']['mean']:.2f} dB vs uniform-rf {entry['uniform_k1']['mean']:.2f} (k=1)"
        )
    return record


# --- P2: synthetic warps with exact flow ----------------------------------------------------------------------

P2_STAGES = ("layer2", "layer3")
P2_PAIRS, P2_TRAIN_PAIRS = 40, 12
P2_BETAS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
REACH_PX = (
    64  # search window: more than the largest displacement of the warps (shift + rotation + scale + elastic)
)
PCK_PX, PCK_ALPHAS = (4.0, 8.0, 16.0), (0.1, 0.05, 0.025)
SIFT_RADIUS = 20.0  # px: §2.2's SIFT flow radius
BASELINES = ("zero", "grey-patch", "sift")


def warped_pairs(split: str, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[WarpPair]]:
    """``count`` evenly spaced frames A of ``split`` (images, labels) and their random warps B."""
    images, labels = clip(split)
    pick = torch.linspace(0, len(images) - 1, count).round().long()
    images, labels = images[pick], labels[pick]
    pairs = [
        warp_pair(images[n], labels[n], generator=torch.Generator().manual_seed(seed + n))
        for n in range(count)
    ]
    return images, labels, pairs


def descriptor_grids(arm: str, images: torch.Tensor, stage: str) -> FeatureGrid:
    """The cells of ``arm`` (a baseline or a backbone) for ``images`` on ``stage``'s grid of rf centres."""
    if arm not in BASELINES:
        return feature_grids(arm, images, stage)
    like = feature_grids("random", images, stage)
    if arm == "grey-patch":
        return patch_grids(images, like)
    if arm == "sift":
        return sift_descriptors(images, like, SIFT_RADIUS)
    return like


def warped_grids(
    arm: str, images: torch.Tensor, pairs: list[WarpPair], stage: str
) -> tuple[FeatureGrid, FeatureGrid]:
    """(cells of every B, cells of every A) on ``stage``'s grid, computed once for all betas."""
    return descriptor_grids(arm, torch.stack([pair.warped for pair in pairs]), stage), descriptor_grids(
        arm, images, stage
    )


def pair_flows(
    grids: tuple[FeatureGrid, FeatureGrid] | None, pairs: list[WarpPair], beta: float
) -> list[torch.Tensor]:
    """Dense flow B -> A of every pair; ``grids`` None is the zero-flow (copy) arm."""
    if grids is None:
        return [torch.zeros_like(pair.flow) for pair in pairs]
    source, target = grids
    radius = -(-REACH_PX // source.grid.stride)
    return [conv_flow(source.image(n), target.image(n), beta, radius).dense() for n in range(len(pairs))]


def mean_epe(flows: list[torch.Tensor], pairs: list[WarpPair]) -> float:
    return float(np.mean([endpoint_error(f, p.flow, p.valid) for f, p in zip(flows, pairs)]))


def flow_scores(flows: list[torch.Tensor], labels: torch.Tensor, pairs: list[WarpPair]) -> dict[str, Any]:
    """EPE, flow PCK and label transfer of ``flows`` against the pairs' exact flows, bootstrap over pairs."""
    generator = np.random.default_rng(0)
    size = max(pairs[0].flow.shape[1:])
    thresholds = {f"{t:g}px": t for t in PCK_PX} | {f"alpha{a:g}": a * size for a in PCK_ALPHAS}
    epe, pck_values = [], {name: [] for name in thresholds}
    confusions = []
    for flow, pair, label in zip(flows, pairs, labels):
        epe.append(endpoint_error(flow, pair.flow, pair.valid))
        found = flow_pck(flow, pair.flow, thresholds.values(), pair.valid)
        for name, threshold in thresholds.items():
            pck_values[name].append(found[float(threshold)])
        carried = none_as_error(warp_labels(label, flow, IGNORE))
        confusions.append(confusion_matrix(carried, pair.labels, CLASSES + 1, IGNORE))
    return {
        "epe": mean_with_interval(epe, generator),
        "pck": {name: mean_with_interval(values, generator) for name, values in pck_values.items()},
        "label_transfer": scores(confusions, generator),
    }


def part2(run: str) -> dict[str, Any]:
    """NN flow and the MRF (beta chosen on warped train frames) on warped val frames, per stage."""
    images, labels, pairs = warped_pairs("val", P2_PAIRS, seed=0)
    record: dict[str, Any] = {
        "pairs": P2_PAIRS,
        "train_pairs": P2_TRAIN_PAIRS,
        "reach_px": REACH_PX,
        "stages": {},
    }
    if run == "zero":  # no grid, no beta
        record["stages"]["none"] = {"zero": flow_scores(pair_flows(None, pairs, 0.0), labels, pairs)}
        return record
    train_images, _, train_pairs = warped_pairs("train", P2_TRAIN_PAIRS, seed=10_000)
    for stage in P2_STAGES:
        train_grids = warped_grids(run, train_images, train_pairs, stage)
        sweep = {str(b): mean_epe(pair_flows(train_grids, train_pairs, b), train_pairs) for b in P2_BETAS}
        beta = float(min(sweep, key=sweep.get))
        grids = warped_grids(run, images, pairs, stage)
        entry = {"beta": beta, "beta_sweep_train_epe": sweep}
        entry["nn"] = flow_scores(pair_flows(grids, pairs, 0.0), labels, pairs)
        entry["mrf"] = flow_scores(pair_flows(grids, pairs, beta), labels, pairs)
        record["stages"][stage] = entry
        print(f"  {stage}: EPE NN {entry['nn']['epe']['mean']:.2f} px, MRF (beta {beta:g}) "
              f"{entry['mrf']['epe']['mean']:.2f} px")  # fmt: skip
    return record


def zero_flow_dense(source: int) -> torch.Tensor:
    return torch.zeros(2, *SIZE)


PARTS = {"p1": part1, "p2": part2, "p3": part3}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", default="p3", choices=tuple(PARTS),
                        help="protocol: p1 locality, p2 synthetic warps, p3 real-motion label transfer "
                        "(p4-p6: benchmarks/correspondence_keypoints.py)")  # fmt: skip
    parser.add_argument(
        "--runs", nargs="+", default=["copy", "farneback", "grey-patch", "random"],
        help="arms: random, or run folders (relative to the repo) whose frozen backbone gives the features; "
        "baselines: copy, farneback, grey-patch (p3); zero, grey-patch, sift (p2)",
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
        print(f"{args.part} {name} ...")
        record = PARTS[args.part](run)
        minutes = (time.time() - started) / 60
        write_result(path, {"benchmark": "correspondence", "tag": f"{args.part}_{name}", **provenance(),
                            "machine": machine(), "minutes": round(minutes, 2), "run": run, **record})  # fmt: skip
        if "gaps" in record:
            shown = ", ".join(f"k={k}: {100 * v['mean_iou']:.1f}" for k, v in record["gaps"].items())
            print(f"{args.part} {name}: {shown}")
        print(f"{args.part} {name}: {minutes:.1f} min")


if __name__ == "__main__":
    main()
