"""Keypoints from frozen conv features (Long thesis Ch. 2, §2.2-2.4; spec correspondence-keypoints.md P4-P6).

P4, intraclass keypoint transfer (Table 2.2): each held-out instance's box + 10% margin is warped to 96x96;
its 25 nearest training instances of the same category by deepest-stage (layer4 mean-cell) cosine are aligned to
it by conv flow (L2 data term, quadratic smoothness, min-sum BP), sorted by deformation energy, and every keypoint
is the coordinate-wise median of the top 5. Baselines on the same neighbours: SIFT flow (same MRF, upright SIFT at
the same grid points) and NN transfer (median of the top-5 neighbours' box-normalised keypoints, no warp). PCK at
alpha 0.1 / 0.05 / 0.025 of max(h, w) of the GT box, mean over types, then over categories.

P5, keypoint classification (Table 2.3): per category, which keypoint type sits at a (frame, location)? Features
of each stage at the cell whose true rf centre is nearest the keypoint (layer1..layer4), or SIFT at radii
4/8/16/32/64 px (frames at 180x240); one-vs-rest linear SVMs with C by 5-fold CV on train, folds grouped by
instance. Sub-stride test (Fig. 2.5): on a subset of held-out frames, 1-px score maps by shift-and-stitch, the
argmax in a 21x21 window around the GT (border argmaxes dropped), and the fraction within +-s/4 px of the GT.

P6, keypoint prediction (Table 2.4): synthetic boxes (+10% margin, then jittered) rescaled to S = 128, layer3
cells in 3x3 blocks, per-type linear SVMs with hard negatives, a Gaussian prior (sigma = 0.044 S) at the keypoint
of the nearest training instance by layer4 cosine, f = s^(1-eta) p^eta with (C, eta) by 5-fold CV on train;
PCK@0.1 with eta = 0 (detector only) and the CV eta (+ prior). Baseline: dense SIFT on a stride-8 grid (bin 8 px),
with and without the same prior.

Data. Synthetic: SyntheticScenes at 180x240, vehicles and people with analytic keypoints; training instances from
split "train", held-out ones from split "val" (independent scenes). An instance is kept if it is not cut by the
image border, shows >= 100 px in the instance map (CamVid's 400 px at full resolution, at 180x240) and has >= 2
visible keypoints. CamVid: car and pedestrian components (>= 400 px at the native 360x480, not cut by the border)
with 4 extreme points + centroid; train frames are the database / training set, val frames are reported. P4
crops CamVid components from the native frames; P5 works on 180x240 frames (the spec's SIFT radii), with the
same components rescaled.

Arms (--runs): ``random`` (random-init ResNet-18, the control), run folders whose frozen backbone gives the
features (e.g. runs/bench/colorization/geo_hue-chroma_e30, runs/bench/camvid_fcn/geo_e110_fcn8s_seed0), and, for
P5 only, ``sift``. In P4 and P6 the SIFT baselines run inside every backbone arm, because they need that arm's
neighbours (P4, thesis: "every feature type uses the same NN") or its prior descriptor (P6, thesis: pool5 cosine).

Decisions (where the spec leaves a choice):

- P4 stage: layer2 (stride 8, rf 99 px). On a 96 px crop it gives a 12x12 grid with an rf about the crop's size,
  the closest match to the thesis' conv4 on a 227 px box (13x13 cells, rf 131). layer3 (6x6 cells, rf 211 > the
  crop) is reported as a second conv-flow arm on the same neighbours and beta sweep.
- P4 boxes are jittered (+-10% shift, x[0.9, 1.1] scale, jitter_boxes' defaults, after the 10% margin;
  database and queries alike). Analytic synthetic keypoints sit at fixed fractions of their exact box, and
  CamVid's extreme points on its edges, so an exact box alone gives the answer: a smoke run on exact boxes (80 /
  30 synthetic scenes, random backbone) gave NN transfer 100% PCK@0.1 at 0.4 px mean error. A jittered box, as a
  detector's would be, keeps transfer an alignment task. A neighbour keypoint that its jittered crop cuts off
  counts as absent (skipped, for every method).
- P4 search radius: 6 cells (+-48 px, half the crop) at layer2 instead of the whole grid (11 cells), which costs
  5x more BP time per pair. The JSON records the fraction of training (query, neighbour) keypoint displacements
  beyond it (before the runs, with the random backbone's neighbours: 0% synthetic, ~4% CamVid; +-32 px would
  leave 15% of CamVid's out). layer3 uses the whole grid (5 cells).
- P4 SIFT radius 8 px: the thesis' radius 20 on ~227 px boxes, scaled to 96.
- P4 beta: per feature type, backbone and dataset, the best of a log sweep on training pairs only: a training
  query (its own instance excluded from the database) and one of its 25 NN drawn at random; the score is the PCK of
  that neighbour's keypoints moved by the single flow, averaged over the three alphas and two categories. A pair
  proxy, because the full 25-neighbour pipeline per beta would cost as much as the test itself.
- P5 accuracy is the fraction of held-out keypoints classified right per category (Table 2.3), then the mean over
  categories; the per-type mean is recorded too. C from 1e-4..1e3 (the library's grid) by grouped 5-fold CV.
- P5 sub-stride: layer1..layer3 (layer4 would need 1024 shifted passes per frame) on 8 held-out frames per
  dataset holding scored keypoints, evenly spaced over the split; a hit is |drow| <= s/4 and |dcol| <= s/4.
  Two reference rates: the spec's uniform rate over the 19x19 window interior, and the stricter rate of an
  argmax uniform over the +-s/2 square (a classifier that knows only which cell holds the keypoint). The
  ``sift`` arm scores SIFT (best CV radius) at every pixel of the window with the same tolerances.
- P6 boxes get the 10% margin before jitter: the offset-0 layer3 grid of a 128 crop spans pixels 0..112, so
  keypoints on the box's right / bottom edge (extreme points) would sit 15 px from the nearest cell, beyond
  PCK@0.1 (12.8 px), on a margin-free crop. Jitter: +-10% shift, x[0.9, 1.1] scale (jitter_boxes' defaults).
  PCK is scored in the image against max(h, w) of the GT box; the eta CV (library) scores against the crop box,
  so it runs at alpha 0.1 / 1.2 (the margin) to match the test criterion.
- P6 C: {0.1, 1, 10} x eta in {0, 0.05, ..., 1} by 5-fold CV on train PCK; the detector with the CV eta = 0 PCK
  is the "detector only" arm. SIFT: radius 16 (4x4 bins of 8 px), positives: the 12 nearest cells (= pi (2 bin)^2 /
  stride^2, the thesis' "within twice the bin size"), negatives beyond 4 bins (32 px), no 3x3 blocks.
- 95% intervals: 1000 bootstrap resamples of held-out instances, stratified by category (seeded); differences
  between methods are paired (same resamples). CamVid val is one clip, so neighbouring frames show the same
  objects: its intervals are optimistic.

Each (part, arm) writes benchmarks/results/correspondence/<part>_<arm>.json; reruns skip finished ones. Runs
single-threaded. Usage:

    python benchmarks/correspondence_keypoints.py --part p4 --runs random \
        runs/bench/colorization/geo_hue-chroma_e30 runs/bench/camvid_fcn/geo_e110_fcn8s_seed0
    python benchmarks/correspondence_keypoints.py --part p5 --runs sift random ...
    python benchmarks/correspondence_keypoints.py --part p6 --runs random ...
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixelwise.data.camvid import camvid_dataset
from pixelwise.data.keypoints import COMPONENT_KEYPOINTS, camvid_keypoint_images
from pixelwise.data.scene import KEYPOINT_NAMES, PERSON, VEHICLE
from pixelwise.data.synthetic import SyntheticScenes
from pixelwise.methods.correspondence import (
    FeatureGrid,
    conv_flow,
    cosine_neighbours,
    dense_features,
    feature_extractor,
    global_descriptors,
    nn_transfer,
    sift_descriptors,
    transfer_keypoints,
    transfer_points,
)
from pixelwise.methods.correspondence.keypoints import (
    DEFAULT_ETAS,
    BoxSet,
    DetectorConfig,
    KeypointPredictor,
    box_set,
    crop_boxes,
    cross_validate_c,
    cross_validate_eta,
    default_sigma,
    expand_boxes,
    features_at,
    fit_svm,
    from_box_frame,
    jitter_boxes,
    keypoint_samples,
    shift_and_stitch,
    sift_at,
    to_box_frame,
    train_detector,
    window_argmax,
)
from pixelwise.metrics.correspondence import pck, pck_thresholds
from pixelwise.models.receptive_field import Grid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAMVID, ROOT, machine, provenance, write_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "correspondence"
SIZE = (180, 240)  # synthetic frames; CamVid frames in P5
MIN_PIXELS = 100  # synthetic: CamVid's 400-px component rule at 180x240
MIN_VISIBLE = 2
ALPHAS = (0.1, 0.05, 0.025)
PIXEL_THRESHOLDS = (2, 4, 8)
RESAMPLES = 1000
STAGES = ("layer1", "layer2", "layer3", "layer4")
DEEPEST = "layer4"
# P4
CROP, MARGIN, NEIGHBOURS, TOP = 96, 0.1, 25, 5
P4_STAGES = {"layer2": 6, "layer3": 5}  # stage -> search radius (cells)
P4_SIFT_RADIUS = 8.0
P4_SIFT_STAGE = "layer2"  # SIFT flow runs on this stage's grid
BETAS = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
# P5
SIFT_RADII = (4, 8, 16, 32, 64)
SUBSTRIDE_STAGES = ("layer1", "layer2", "layer3")
WINDOW = 21
# P6
BOX_SIZE, P6_STAGE, BLOCK = 128, "layer3", 3
P6_CS = (0.1, 1.0, 10.0)
SIFT_BIN, SIFT_STRIDE = 8, 8
P6_SIFT_POSITIVES = 12  # stride-8 cells within 2 bins (16 px): pi * 2^2 ~ 12.6
FOLDS = 5


# ------------------------------------------------------------------------------------------------- data


@dataclass
class Category:
    """The kept instances of one category in one split: image [3, H, W] uint8 per frame, and per instance its
    frame index, GT box [4] (top, left, bottom, right; pixel edges), keypoints [K, 2] (row, col; NaN where not
    visible) and visibility [K]."""

    names: tuple[str, ...]
    images: list[torch.Tensor]
    image_index: torch.Tensor
    boxes: torch.Tensor
    keypoints: torch.Tensor
    visible: torch.Tensor

    def __len__(self) -> int:
        return len(self.image_index)

    def subset(self, index: torch.Tensor) -> Category:
        return Category(
            self.names,
            self.images,
            self.image_index[index],
            self.boxes[index],
            self.keypoints[index],
            self.visible[index],
        )

    def box_sizes(self) -> torch.Tensor:
        return self.boxes[:, 2:] - self.boxes[:, :2]


Split = dict[str, Category]


def _category(names, images, rows) -> Category:
    if not rows:
        raise SystemExit("no instance passed the filters; render more scenes")
    index, boxes, points, visible = zip(*rows)
    points = torch.stack(points).float()
    visible = torch.stack(visible).bool()
    points[~visible] = math.nan
    return Category(tuple(names), images, torch.tensor(index), torch.tensor(boxes).float(), points, visible)


def synthetic_split(split: str, scenes: int) -> Split:
    """Vehicles and people of ``scenes`` SyntheticScenes frames (180x240) of ``split``, filtered (docstring)."""
    data = SyntheticScenes(scenes, size=SIZE, seed=0, split=split, cache=False)
    images: list[torch.Tensor] = []
    rows: dict[int, list] = {VEHICLE: [], PERSON: []}
    for i in range(scenes):
        scene = data.scene(i)
        images.append(torch.from_numpy(scene.image).permute(2, 0, 1).contiguous())
        for obj in scene.keypoints((VEHICLE, PERSON)):
            if obj.truncated or obj.pixels < MIN_PIXELS or int(obj.visible.sum()) < MIN_VISIBLE:
                continue
            rows[obj.cls].append(
                (i, obj.box, torch.from_numpy(obj.points.copy()), torch.from_numpy(obj.visible.copy()))
            )
    return {
        "vehicle": _category(KEYPOINT_NAMES[VEHICLE], images, rows[VEHICLE]),
        "person": _category(KEYPOINT_NAMES[PERSON], images, rows[PERSON]),
    }


def camvid_split(split: str, size: tuple[int, int] | None) -> Split:
    """Car and pedestrian components of a CamVid split (found at the native resolution), in frames of
    ``size`` (None: native)."""
    native = camvid_dataset(CAMVID, split)
    annotated = camvid_keypoint_images(native)
    frames = native if size is None else camvid_dataset(CAMVID, split, size=size)
    images = [frames.load_uint8(i)[0] for i in range(len(frames))]
    rows: dict[str, list] = {"car": [], "pedestrian": []}
    for i, item in enumerate(annotated):
        item = item if size is None else item.rescaled(size)
        for obj in item.objects:
            points, visible = obj.arrays(COMPONENT_KEYPOINTS)
            rows[obj.category].append((i, obj.box, points, visible))
    return {name: _category(COMPONENT_KEYPOINTS, images, r) for name, r in rows.items()}


def load_data(
    dataset: str, args: argparse.Namespace, size_for_camvid: tuple[int, int] | None
) -> tuple[Split, Split]:
    if dataset == "synthetic":
        return synthetic_split("train", args.train_scenes), synthetic_split("val", args.test_scenes)
    return camvid_split("train", size_for_camvid), camvid_split("val", size_for_camvid)


def float_images(images: list[torch.Tensor], index: list[int]) -> torch.Tensor:
    return torch.stack([images[i] for i in index]).float() / 255


def evenly(n: int, cap: int | None) -> torch.Tensor:
    """At most ``cap`` of ``n`` indices, evenly spaced (all if cap is None or >= n)."""
    if cap is None or cap >= n:
        return torch.arange(n)
    return torch.linspace(0, n - 1, cap).round().long().unique()


# -------------------------------------------------------------------------------------------- bootstrap


def resample_indices(sizes: dict[str, int], seed: int = 0) -> dict[str, torch.Tensor]:
    """Per category, RESAMPLES bootstrap draws [B, n] of its instances (shared by every method: paired)."""
    rng = np.random.default_rng(seed)
    return {c: torch.from_numpy(rng.integers(0, n, (RESAMPLES, n))) for c, n in sizes.items()}


def _type_means(hits: torch.Tensor, scored: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Mean over types of per-type accuracy, for each row of ``index`` [B, n] -> [B] (types never scored in a
    resample are skipped)."""
    correct = hits.double()[index].sum(dim=1)  # [B, K]
    counts = scored.double()[index].sum(dim=1)
    per_type = torch.where(
        counts > 0, correct / counts.clamp(min=1), torch.tensor(math.nan, dtype=torch.float64)
    )
    return per_type.nanmean(dim=1)


def ci(samples: torch.Tensor) -> list[float]:
    low, high = np.nanpercentile(samples.numpy(), [2.5, 97.5])
    return [float(low), float(high)]


def score_summary(
    hits: dict[str, torch.Tensor],
    scored: dict[str, torch.Tensor],
    draws: dict[str, torch.Tensor],
    names: dict[str, tuple[str, ...]],
) -> tuple[dict[str, Any], torch.Tensor]:
    """Mean over types then categories of per-type accuracy (hits / scored, both [n, K] per category), with
    bootstrap intervals; also returns the bootstrap samples [B] of the overall mean, for paired differences."""
    per_category, samples = {}, []
    for c in hits:
        full = torch.arange(len(hits[c]))[None]
        point = float(_type_means(hits[c], scored[c], full)[0])
        boot = _type_means(hits[c], scored[c], draws[c])
        samples.append(boot)
        counts = scored[c].sum(dim=0)
        per_type = (hits[c].sum(dim=0).double() / counts.clamp(min=1)).tolist()
        per_category[c] = {
            "mean": point,
            "ci95": ci(boot),
            "per_type": {n: (v if k > 0 else None) for n, v, k in zip(names[c], per_type, counts.tolist())},
            "scored": dict(zip(names[c], counts.tolist())),
            "instances": len(hits[c]),
        }
    overall = torch.stack(samples).mean(dim=0)
    mean = float(np.mean([v["mean"] for v in per_category.values()]))
    return {
        "mean": mean,
        "ci95": ci(overall),
        "per_category": per_category,
        "bootstrap": rounded(overall),
    }, overall


def rounded(samples: torch.Tensor) -> list[float]:
    """Bootstrap samples of a mean, kept for paired differences across arms: every arm draws the same
    resamples (same seed, same held-out instances)."""
    return [round(float(v), 5) for v in samples]


def difference(a: torch.Tensor, b: torch.Tensor, point_a: float, point_b: float) -> dict[str, Any]:
    return {"mean": point_a - point_b, "ci95": ci(a - b)}


# ------------------------------------------------------------------------------------------ features


def extractor_for(run: str, stages: tuple[str, ...], seed: int = 0):
    """The frozen backbone of ``run``, or the random-init control drawn from ``seed``: the same network in every
    part and for any set of taps (the taps do not change what is built)."""
    if run == "random":
        torch.manual_seed(seed)
        return feature_extractor(None, stages)
    return feature_extractor(str(ROOT / run), stages)


def grids_of(extractor, images: torch.Tensor, batch: int = 32) -> dict[str, FeatureGrid]:
    """dense_features of ``images`` [N, 3, H, W] in [0, 1], in batches, concatenated per stage."""
    parts = [dense_features(extractor, images[i : i + batch]) for i in range(0, len(images), batch)]
    return {
        s: FeatureGrid(torch.cat([p[s].features for p in parts]), parts[0][s].grid, parts[0][s].image_size)
        for s in parts[0]
    }


# --------------------------------------------------------------------------------------------------- P4


@dataclass
class Crops:
    """A category's instances in the 96x96 box frame: crops [N, 3, S, S], crop-frame keypoints [N, K, 2] (NaN
    where not visible), the expanded boxes, and the feature grids (conv stages, SIFT)."""

    category: Category
    crops: torch.Tensor
    keypoints: torch.Tensor
    boxes: torch.Tensor
    grids: dict[str, FeatureGrid]
    descriptors: torch.Tensor


def make_crops(category: Category, extractor, stages: tuple[str, ...], seed: int) -> Crops:
    boxes = jitter_boxes(expand_boxes(category.boxes, MARGIN), generator=torch.Generator().manual_seed(seed))
    crops = crop_boxes(category.images, category.image_index, boxes, CROP) / 255
    keypoints = to_box_frame(category.keypoints, boxes, CROP)
    # A jittered box can cut a keypoint off: a neighbour then lacks it (NaN, skipped by every method).
    outside = ((keypoints < 0) | (keypoints > CROP - 1)).any(dim=-1)
    keypoints[outside] = math.nan
    grids = grids_of(extractor, crops)
    out = {s: grids[s] for s in stages}
    out["sift"] = sift_descriptors(crops, grids[P4_SIFT_STAGE], P4_SIFT_RADIUS)
    return Crops(category, crops, keypoints, boxes, out, global_descriptors(grids[DEEPEST]))


def to_image(crops: Crops, index: torch.Tensor, crop_points: torch.Tensor) -> torch.Tensor:
    return from_box_frame(crop_points, crops.boxes[index], CROP)


def hits_at(pred: torch.Tensor, category: Category, alpha: float) -> torch.Tensor:
    threshold = pck_thresholds(category.box_sizes(), alpha)
    return pck(pred, category.keypoints.nan_to_num(0.0), category.visible, threshold)["correct"]


def pixel_errors(pred: torch.Tensor, category: Category) -> dict[str, Any]:
    error = (pred.double() - category.keypoints.double()).norm(dim=-1)[category.visible]
    found = error[~torch.isnan(error)]
    return {
        "mean_error_px": float(found.mean()) if len(found) else None,
        "median_error_px": float(found.median()) if len(found) else None,
        "missing": int(torch.isnan(error).sum()),
        "pck_px": {str(t): float((error < t).double().mean()) for t in PIXEL_THRESHOLDS},
    }


def neighbours_of(query: torch.Tensor, database: torch.Tensor, exclude: int | None = None) -> torch.Tensor:
    if exclude is None:
        return cosine_neighbours(query, database, NEIGHBOURS)
    found = cosine_neighbours(query, database, NEIGHBOURS + 1)
    return found[found != exclude][:NEIGHBOURS]


def sweep_pairs(train: Crops, generator: torch.Generator, count: int) -> list[tuple[int, int]]:
    """``count`` (query, neighbour) training pairs: a random query, one of its 25 NN at random (itself
    excluded from the database)."""
    n = len(train.crops)
    queries = torch.randperm(n, generator=generator)[: min(count, n)]
    pairs = []
    for q in queries.tolist():
        found = neighbours_of(train.descriptors[q], train.descriptors, exclude=q)
        pairs.append((q, int(found[torch.randint(len(found), (1,), generator=generator)])))
    return pairs


def pair_transfer(train: Crops, feature: str, pairs, beta: float, radius: int | None) -> torch.Tensor:
    """Each pair's neighbour keypoints moved into its query's crop frame by one flow -> [P, K, 2]."""
    out = []
    for q, n in pairs:
        grids = train.grids[feature]
        flow = conv_flow(grids.image(q), grids.image(n), beta, radius)
        out.append(transfer_points(flow.dense(), train.keypoints[n]))
    return torch.stack(out)


def choose_beta(
    train: dict[str, Crops], feature: str, radius: int | None, seed: int, count: int
) -> tuple[float, dict]:
    """The beta of BETAS whose single-pair transfer on training pairs has the best PCK (mean of the three
    alphas and the categories)."""
    pairs = {c: sweep_pairs(t, torch.Generator().manual_seed(seed), count) for c, t in train.items()}
    sweep = {}
    for beta in BETAS:
        values = []
        for c, t in train.items():
            q = torch.tensor([p[0] for p in pairs[c]])
            n = torch.tensor([p[1] for p in pairs[c]])
            moved = to_image(t, q, pair_transfer(t, feature, pairs[c], beta, radius))
            gt = t.category.subset(q)
            visible = gt.visible & ~torch.isnan(t.keypoints[n]).any(
                dim=-1
            )  # the neighbour has it in its crop
            for alpha in ALPHAS:
                threshold = pck_thresholds(gt.box_sizes(), alpha)
                values.append(pck(moved, gt.keypoints.nan_to_num(0.0), visible, threshold)["mean"])
        sweep[str(beta)] = float(np.mean(values))
    return float(max(sweep, key=sweep.get)), sweep


def displacement_beyond(train: dict[str, Crops], radius_px: float, seed: int, count: int) -> float:
    """Fraction of crop-frame displacements of a keypoint between training sweep pairs beyond ``radius_px``
    on either axis (what a +-radius search window cannot reach in one step)."""
    beyond, total = 0, 0
    for t in train.values():
        for q, n in sweep_pairs(t, torch.Generator().manual_seed(seed), count):
            d = (t.keypoints[q] - t.keypoints[n]).abs().amax(dim=-1)
            d = d[~torch.isnan(d)]
            beyond, total = beyond + int((d > radius_px).sum()), total + len(d)
    return beyond / max(total, 1)


def part4_dataset(dataset: str, run: str, args) -> dict[str, Any]:
    train_split, test_split = load_data(dataset, args, None)
    conv_stages = tuple(args.p4_stages)
    extractor = extractor_for(run, tuple(dict.fromkeys((DEEPEST, *conv_stages, P4_SIFT_STAGE))))
    train = {c: make_crops(v, extractor, conv_stages, args.seed + 1) for c, v in train_split.items()}
    picked = {c: evenly(len(v), args.queries) for c, v in test_split.items()}
    test = {
        c: make_crops(v.subset(picked[c]), extractor, conv_stages, args.seed + 2)
        for c, v in test_split.items()
    }
    features = {f"conv_flow_{s}": (s, P4_STAGES[s]) for s in conv_stages} | {
        "sift_flow": ("sift", P4_STAGES[P4_SIFT_STAGE])
    }
    record: dict[str, Any] = {
        "counts": {
            "train": {c: len(v) for c, v in train_split.items()},
            "test_available": {c: len(v) for c, v in test_split.items()},
            "test": {c: len(v.crops) for c, v in test.items()},
        },
        "displacement_beyond_radius_train": {
            s: displacement_beyond(
                train, P4_STAGES[s] * extractor.grids[s].stride, args.seed, args.sweep_queries
            )
            for s in conv_stages
        },
    }
    betas, sweeps = {}, {}
    for name, (feature, radius) in features.items():
        started = time.time()
        betas[name], sweeps[name] = choose_beta(train, feature, radius, args.seed, args.sweep_queries)
        print(
            f"  {dataset} {name}: beta {betas[name]} ({(time.time() - started) / 60:.1f} min sweep)",
            flush=True,
        )
    record |= {"beta": betas, "beta_sweep_train": sweeps}

    predictions: dict[str, dict[str, torch.Tensor]] = {m: {} for m in (*features, "nn_transfer")}
    for c, t in test.items():
        started = time.time()
        db = train[c]
        for m in predictions:
            predictions[m][c] = torch.full_like(t.keypoints, math.nan)
        for q in range(len(t.crops)):
            found = neighbours_of(t.descriptors[q], db.descriptors)
            points = db.keypoints[found]
            predictions["nn_transfer"][c][q] = nn_transfer(points, TOP)
            for name, (feature, radius) in features.items():
                result = transfer_keypoints(
                    t.grids[feature].image(q),
                    [db.grids[feature].image(int(n)) for n in found],
                    points,
                    betas[name],
                    radius,
                    top=TOP,
                )
                predictions[name][c][q] = result.keypoints
        for m in predictions:
            predictions[m][c] = to_image(t, torch.arange(len(t.crops)), predictions[m][c])
        print(f"  {dataset} {c}: {len(t.crops)} queries ({(time.time() - started) / 60:.1f} min)", flush=True)

    categories = {c: t.category for c, t in test.items()}
    draws = resample_indices({c: len(v) for c, v in categories.items()}, args.seed)
    names = {c: v.names for c, v in categories.items()}
    scored = {c: v.visible for c, v in categories.items()}
    methods, samples = {}, {}
    for m, preds in predictions.items():
        methods[m] = {"pck": {}, "pixels": {c: pixel_errors(preds[c], categories[c]) for c in categories}}
        for alpha in ALPHAS:
            hits = {c: hits_at(preds[c], categories[c], alpha) for c in categories}
            methods[m]["pck"][str(alpha)], samples[m, alpha] = score_summary(hits, scored, draws, names)
    main = f"conv_flow_{conv_stages[0]}"
    pairs = [(main, "sift_flow"), (main, "nn_transfer"), ("sift_flow", "nn_transfer")]
    pairs += [(f"conv_flow_{s}", main) for s in conv_stages[1:]]
    record["methods"] = methods
    record["differences"] = {
        f"{a} - {b}": {
            str(alpha): difference(
                samples[a, alpha],
                samples[b, alpha],
                methods[a]["pck"][str(alpha)]["mean"],
                methods[b]["pck"][str(alpha)]["mean"],
            )
            for alpha in ALPHAS
        }
        for a, b in pairs
    }
    return record


def part4(run: str, args) -> dict[str, Any]:
    if run == "sift":
        raise SystemExit("P4: SIFT flow runs inside every backbone arm (it needs that arm's neighbours)")
    record: dict[str, Any] = {
        "crop": CROP,
        "margin": MARGIN,
        "neighbours": NEIGHBOURS,
        "top": TOP,
        "order": "deformation",
        "retrieval": f"{DEEPEST} mean-cell cosine",
        "stages": list(args.p4_stages),
        "radius_cells": {s: P4_STAGES[s] for s in args.p4_stages},
        "sift_radius_px": P4_SIFT_RADIUS,
        "sift_grid": P4_SIFT_STAGE,
        "alphas": list(ALPHAS),
        "betas_swept": list(BETAS),
        "datasets": {},
    }
    for dataset in args.data:
        record["datasets"][dataset] = part4_dataset(dataset, run, args)
    return record


# --------------------------------------------------------------------------------------------------- P5


def samples_of(split: Split):
    return {
        c: keypoint_samples(v.keypoints.nan_to_num(0.0), v.visible, v.image_index) for c, v in split.items()
    }


def conv_keypoint_features(
    extractor, split: Split, samples, batch: int = 16
) -> dict[str, dict[str, torch.Tensor]]:
    """Per category and stage, the features [P, C] of every sample at its nearest-rf-centre cell."""
    images = next(iter(split.values())).images
    out = {c: {s: [None] * len(samples[c].labels) for s in STAGES} for c in split}
    for start in range(0, len(images), batch):
        frames = list(range(start, min(start + batch, len(images))))
        if not any(bool(((s.images >= start) & (s.images <= frames[-1])).any()) for s in samples.values()):
            continue
        grids = dense_features(extractor, float_images(images, frames))
        for c, sample in samples.items():
            rows = torch.nonzero((sample.images >= start) & (sample.images < frames[-1] + 1)).flatten()
            if not len(rows):
                continue
            for s in STAGES:
                values = features_at(grids[s], sample.images[rows] - start, sample.points[rows])
                for r, v in zip(rows.tolist(), values):
                    out[c][s][r] = v
    return {c: {s: torch.stack(v) for s, v in stages.items()} for c, stages in out.items()}


def sift_keypoint_features(split: Split, samples, batch: int = 64) -> dict[str, dict[str, torch.Tensor]]:
    """Per category and radius, SIFT [P, 128] at every sample's keypoint."""
    images = next(iter(split.values())).images
    out = {c: {f"sift_r{r}": torch.zeros(len(s.labels), 128) for r in SIFT_RADII} for c, s in samples.items()}
    for start in range(0, len(images), batch):
        stop = min(start + batch, len(images))
        stack = float_images(images, list(range(start, stop)))
        for c, sample in samples.items():
            rows = torch.nonzero((sample.images >= start) & (sample.images < stop)).flatten()
            if len(rows):
                for r in SIFT_RADII:
                    out[c][f"sift_r{r}"][rows] = sift_at(
                        stack, sample.images[rows] - start, sample.points[rows], r
                    )
    return out


def accuracy_summary(correct, labels, names, draws) -> tuple[dict[str, Any], dict[str, Any]]:
    """Plain accuracy and per-type-mean accuracy over held-out samples, with instance-bootstrap intervals."""
    plain, balanced = {}, {}
    plain_samples, balanced_samples = [], []
    for c in correct:
        # Per instance and type: hit / present, so resampling instances keeps each one's keypoints together.
        hits, present = correct[c], labels[c]
        boot_plain = hits.double()[draws[c]].sum(dim=(1, 2)) / present.double()[draws[c]].sum(dim=(1, 2))
        boot_balanced = _type_means(hits, present, draws[c])
        plain_samples.append(boot_plain)
        balanced_samples.append(boot_balanced)
        counts = present.sum(dim=0)
        plain[c] = {
            "accuracy": float(hits.sum() / present.sum()),
            "ci95": ci(boot_plain),
            "per_type": {
                n: (float(h / k) if k > 0 else None) for n, h, k in zip(names[c], hits.sum(0), counts)
            },
            "samples": int(present.sum()),
            "instances": len(hits),
        }
        balanced[c] = {
            "mean": float(_type_means(hits, present, torch.arange(len(hits))[None])[0]),
            "ci95": ci(boot_balanced),
        }
    overall_plain = torch.stack(plain_samples).mean(0)
    overall_balanced = torch.stack(balanced_samples).mean(0)
    return (
        {"mean": float(np.mean([v["accuracy"] for v in plain.values()])), "ci95": ci(overall_plain),
         "per_category": plain, "bootstrap": rounded(overall_plain), "_samples": overall_plain},
        {"mean": float(np.mean([v["mean"] for v in balanced.values()])), "ci95": ci(overall_balanced),
         "per_category": balanced},
    )  # fmt: skip


def classify(train_x, train_s, test_x, test_s, kinds: int, args):
    """C by grouped CV on train, SVM on all train, predictions on test."""
    cv = cross_validate_c(
        train_x, train_s.labels, kinds, folds=FOLDS, groups=train_s.instances, seed=args.seed
    )
    svm = fit_svm(train_x, train_s.labels, kinds, cv.best)
    predicted = svm.predict(test_x)
    return svm, cv, predicted


def per_instance(sample, values: torch.Tensor, n: int, kinds: int) -> torch.Tensor:
    """Scatter per-sample values [P] into [n instances, K types]."""
    out = torch.zeros(n, kinds, dtype=values.dtype)
    out[sample.instances, sample.labels] = values
    return out


def part5_dataset(dataset: str, run: str, args) -> dict[str, Any]:
    train, test = load_data(dataset, args, SIZE)
    train = {c: v.subset(evenly(len(v), args.p5_train)) for c, v in train.items()}
    train_s, test_s = samples_of(train), samples_of(test)
    if run == "sift":
        train_x, test_x = sift_keypoint_features(train, train_s), sift_keypoint_features(test, test_s)
        extractor = None
    else:
        extractor = extractor_for(run, tuple(reversed(STAGES)))
        train_x = conv_keypoint_features(extractor, train, train_s)
        test_x = conv_keypoint_features(extractor, test, test_s)
    feature_names = list(next(iter(train_x.values())))
    draws = resample_indices({c: len(v) for c, v in test.items()}, args.seed)
    names = {c: v.names for c, v in test.items()}
    record: dict[str, Any] = {
        "counts": {
            "train_instances": {c: len(v) for c, v in train.items()},
            "train_samples": {c: len(s.labels) for c, s in train_s.items()},
            "test_instances": {c: len(v) for c, v in test.items()},
            "test_samples": {c: len(s.labels) for c, s in test_s.items()},
        },
        "features": {},
    }
    svms: dict[str, dict[str, Any]] = {f: {} for f in feature_names}
    samples = {}
    for f in feature_names:
        started = time.time()
        correct, present, chosen = {}, {}, {}
        for c in train:
            kinds = len(train[c].names)
            svm, cv, predicted = classify(train_x[c][f], train_s[c], test_x[c][f], test_s[c], kinds, args)
            svms[f][c] = svm
            hit = (predicted == test_s[c].labels).long()
            correct[c] = per_instance(test_s[c], hit, len(test[c]), kinds)
            present[c] = per_instance(test_s[c], torch.ones_like(hit), len(test[c]), kinds)
            chosen[c] = {"C": cv.best, "cv_accuracy": {str(k): v for k, v in cv.scores.items()}}
        plain, balanced = accuracy_summary(correct, present, names, draws)
        samples[f] = plain.pop("_samples")
        record["features"][f] = {"accuracy": plain, "per_type_mean": balanced, "svm": chosen}
        print(
            f"  {dataset} {f}: {100 * plain['mean']:.1f} ({(time.time() - started) / 60:.1f} min)", flush=True
        )
    best = max(feature_names, key=lambda f: record["features"][f]["accuracy"]["mean"])
    record["best_feature"] = best
    record["differences"] = {
        f"{f} - {best}": difference(samples[f], samples[best], record["features"][f]["accuracy"]["mean"],
                                    record["features"][best]["accuracy"]["mean"])
        for f in feature_names if f != best
    }  # fmt: skip
    started = time.time()
    if run == "sift":
        cv_best = max(
            (f for f in feature_names),
            key=lambda f: np.mean(
                [max(record["features"][f]["svm"][c]["cv_accuracy"].values()) for c in train]
            ),
        )
        record["substride"] = {"feature": cv_best} | sift_substride(
            test, test_s, svms[cv_best], cv_best, args
        )
    else:
        record["substride"] = conv_substride(run, test, test_s, svms, args)
    print(f"  {dataset} sub-stride ({(time.time() - started) / 60:.1f} min)", flush=True)
    return record


def substride_frames(test: Split, test_s, cap: int) -> list[int]:
    """``cap`` held-out frames holding a scored keypoint, evenly spaced over the split (CamVid val is one clip:
    neighbouring frames show the same objects); windows leaving the frame are dropped."""
    frames = sorted(set().union(*(set(s.images.tolist()) for s in test_s.values())))
    return [frames[i] for i in evenly(len(frames), cap).tolist()]


def uniform_rates(stride: int) -> dict[str, float]:
    tolerance = stride // 4
    inner = WINDOW - 2  # argmaxes on the window border are dropped
    hit = 2 * tolerance + 1
    return {
        "uniform_rate": (hit / inner) ** 2,
        "within_cell_uniform_rate": (hit / (2 * (stride // 2) + 1)) ** 2,
    }


def hit_summary(
    offsets: list[tuple[int, int, int]], stride: int, dropped: int, scored: int, seed: int
) -> dict:
    """offsets: (instance key, drow, dcol); a hit is within +-stride/4 on both axes; bootstrap over keys."""
    tolerance = stride // 4
    hits = np.array([abs(r) <= tolerance and abs(c) <= tolerance for _, r, c in offsets], dtype=float)
    keys = np.array([k for k, _, _ in offsets])
    out: dict[str, Any] = {"stride": stride, "tolerance_px": tolerance, "scored": scored, "dropped": dropped,
                           "argmaxes": len(offsets)} | uniform_rates(stride)  # fmt: skip
    if not len(offsets):
        return out | {"fraction": None, "ci95": None}
    rng = np.random.default_rng(seed)
    unique = np.unique(keys)
    groups = [hits[keys == k] for k in unique]
    boots = []
    for _ in range(RESAMPLES):
        pick = rng.integers(0, len(groups), len(groups))
        boots.append(np.concatenate([groups[i] for i in pick]).mean())
    low, high = np.percentile(boots, [2.5, 97.5])
    histogram = np.zeros((WINDOW, WINDOW), dtype=int)
    for _, r, c in offsets:
        histogram[r + WINDOW // 2, c + WINDOW // 2] += 1
    return out | {"fraction": float(hits.mean()), "ci95": [float(low), float(high)],
                  "histogram": histogram.tolist()}  # fmt: skip


def conv_substride(run: str, test: Split, test_s, svms, args) -> dict[str, Any]:
    """Per stage, 1-px score maps of every category's SVMs by shift-and-stitch on the first held-out frames
    (an extractor tapping that stage alone: the backbone runs only that far, same features)."""
    images = next(iter(test.values())).images
    frames = substride_frames(test, test_s, args.substride_frames)
    out = {}
    categories = list(test)
    offsets_at = [0]  # first score channel of each category's SVM
    for c in categories:
        offsets_at.append(offsets_at[-1] + len(test[c].names))
    for stage in SUBSTRIDE_STAGES:
        extractor = extractor_for(run, (stage,))
        stride = extractor.grids[stage].stride

        def score(features: torch.Tensor, stage: str = stage) -> torch.Tensor:
            n, d, h, w = features.shape
            flat = features[0].permute(1, 2, 0).reshape(-1, d)
            with torch.no_grad():
                values = torch.cat([svms[stage][c](flat) for c in categories], dim=1)
            return values.T.reshape(-1, h, w)

        offsets, dropped, scored = [], 0, 0
        for frame in frames:
            maps = shift_and_stitch(extractor, stage, images[frame].float() / 255, score)
            for ci_, c in enumerate(categories):
                sample = test_s[c]
                for r in torch.nonzero(sample.images == frame).flatten().tolist():
                    scored += 1
                    channel = offsets_at[ci_] + int(sample.labels[r])
                    found = window_argmax(maps.features[0, channel], maps.grid, sample.points[r], WINDOW)
                    if found is None:
                        dropped += 1
                    else:
                        offsets.append((ci_ * 10**6 + int(sample.instances[r]), *found))
        out[stage] = hit_summary(offsets, stride, dropped, scored, args.seed) | {"frames": len(frames)}
    return out


def sift_substride(test: Split, test_s, svms, feature: str, args) -> dict[str, Any]:
    """SIFT is computed at every pixel of each window (it has no stride); scored with the same tolerances."""
    radius = float(feature.removeprefix("sift_r"))
    images = next(iter(test.values())).images
    frames = substride_frames(test, test_s, args.substride_frames)
    half = WINDOW // 2
    steps = torch.arange(-half, half + 1, dtype=torch.float32)
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    window = torch.stack([dy, dx], dim=-1).reshape(-1, 2)
    offsets, dropped, scored = [], 0, 0
    for frame in frames:
        image = images[frame].float()[None] / 255
        h, w = image.shape[-2:]
        for ci_, c in enumerate(test):
            sample = test_s[c]
            for r in torch.nonzero(sample.images == frame).flatten().tolist():
                scored += 1
                centre = sample.points[r].round()
                points = centre + window
                if bool((points[:, 0] < 0).any() or (points[:, 0] > h - 1).any() or (points[:, 1] < 0).any()
                        or (points[:, 1] > w - 1).any()):  # fmt: skip
                    dropped += 1
                    continue
                x = sift_at(image, torch.zeros(len(points), dtype=torch.long), points, radius)
                with torch.no_grad():
                    values = svms[c](x)[:, int(sample.labels[r])].reshape(WINDOW, WINDOW)
                best = int(values.argmax())
                found = (best // WINDOW - half, best % WINDOW - half)
                if max(abs(found[0]), abs(found[1])) == half:
                    dropped += 1
                else:
                    offsets.append((ci_ * 10**6 + int(sample.instances[r]), *found))
    return {
        f"tolerance_of_stride_{s}": hit_summary(offsets, s, dropped, scored, args.seed)
        | {"frames": len(frames)}
        for s in (4, 8, 16)
    }


def part5(run: str, args) -> dict[str, Any]:
    record: dict[str, Any] = {
        "frame_size": list(SIZE),
        "features": list(STAGES) if run != "sift" else [f"sift_r{r}" for r in SIFT_RADII],
        "folds": FOLDS,
        "window": WINDOW,
        "substride_stages": list(SUBSTRIDE_STAGES) if run != "sift" else None,
        "datasets": {},
    }
    for dataset in args.data:
        record["datasets"][dataset] = part5_dataset(dataset, run, args)
    return record


# --------------------------------------------------------------------------------------------------- P6


def p6_boxes(category: Category, seed: int) -> torch.Tensor:
    return jitter_boxes(expand_boxes(category.boxes, MARGIN), generator=torch.Generator().manual_seed(seed))


def p6_sets(extractor, category: Category, seed: int) -> tuple[BoxSet, BoxSet]:
    """(conv, SIFT) BoxSets of a category's jittered boxes at S = 128; both carry the conv prior descriptor."""
    boxes = p6_boxes(category, seed)
    crops = crop_boxes(category.images, category.image_index, boxes, BOX_SIZE) / 255
    keypoints = to_box_frame(category.keypoints, boxes, BOX_SIZE)
    conv = box_set(extractor, crops, keypoints, category.visible, P6_STAGE, DEEPEST, BLOCK, boxes)
    reference = FeatureGrid(torch.zeros(1, 1, BOX_SIZE // SIFT_STRIDE, BOX_SIZE // SIFT_STRIDE),
                            Grid(SIFT_STRIDE), (BOX_SIZE, BOX_SIZE))  # fmt: skip
    sift = sift_descriptors(crops, reference, radius=2 * SIFT_BIN)
    return conv, BoxSet(sift, keypoints.float(), category.visible, conv.descriptors, BOX_SIZE, boxes)


def p6_configs(kind: str) -> dict[float, DetectorConfig]:
    if kind == "sift":
        return {
            c: DetectorConfig(c=c, positives=P6_SIFT_POSITIVES, negative_distance=4.0 * SIFT_BIN)
            for c in P6_CS
        }
    return {c: DetectorConfig(c=c) for c in P6_CS}


def p6_fit(
    train: BoxSet, kind: str, seed: int
) -> tuple[tuple[KeypointPredictor, KeypointPredictor], dict[str, Any]]:
    """(C, eta) by 5-fold CV PCK on train (alpha 0.1 of the GT box ~ 0.1 / 1.2 of the crop box); returns the
    predictor with them and the detector-only one (the C best at eta = 0)."""
    sigma = default_sigma(BOX_SIZE)
    found, best = {}, None
    for c, config in p6_configs(kind).items():
        started = time.time()
        cv = cross_validate_eta(
            train, config, DEFAULT_ETAS, FOLDS, sigma, alpha=0.1 / (1 + 2 * MARGIN), seed=seed
        )
        found[str(c)] = {str(k): v for k, v in cv.scores.items()}
        if best is None or cv.scores[cv.best] > best[2]:
            best = (c, cv.best, cv.scores[cv.best], cv.scores[0.0])
        print(f"    {kind} C={c}: eta {cv.best} cv {cv.scores[cv.best]:.3f} ({(time.time() - started) / 60:.1f} min)",
              flush=True)  # fmt: skip
    c, eta, _, _ = best
    # The detector-only arm gets the C that is best at eta = 0.
    c0 = max(P6_CS, key=lambda v: found[str(v)]["0.0"])
    configs = p6_configs(kind)
    predictor = KeypointPredictor(train_detector(train, configs[c]), train, sigma, eta)
    detector_only = (
        predictor if c0 == c else KeypointPredictor(train_detector(train, configs[c0]), train, sigma, 0.0)
    )
    return (predictor, detector_only), {"C": c, "eta": eta, "C_detector_only": c0, "cv_pck_train": found}


def p6_hits(pred_crop: torch.Tensor, test: BoxSet, category: Category) -> torch.Tensor:
    pred = from_box_frame(pred_crop, test.boxes, BOX_SIZE)
    return hits_at(pred, category, 0.1)


def part6(run: str, args) -> dict[str, Any]:
    if run == "sift":
        raise SystemExit("P6: the SIFT baseline runs inside every backbone arm (it needs that arm's prior)")
    train_split, test_split = load_data("synthetic", args, None)
    extractor = extractor_for(run, (DEEPEST, P6_STAGE))
    record: dict[str, Any] = {
        "dataset": "synthetic",
        "box_size": BOX_SIZE,
        "margin": MARGIN,
        "jitter": {"shift": 0.1, "scale": 0.1},
        "stage": P6_STAGE,
        "block": BLOCK,
        "sigma_px": default_sigma(BOX_SIZE),
        "prior_descriptor": f"{DEEPEST} mean-cell cosine",
        "sift": {
            "stride": SIFT_STRIDE,
            "bin": SIFT_BIN,
            "radius_px": 2 * SIFT_BIN,
            "positives": P6_SIFT_POSITIVES,
            "negative_distance_px": 4 * SIFT_BIN,
        },  # fmt: skip
        "cs_swept": list(P6_CS),
        "etas_swept": list(DEFAULT_ETAS),
        "alpha": 0.1,
        "counts": {"train": {}, "test": {}},
        "chosen": {"conv": {}, "sift": {}},
    }
    hits: dict[str, dict[str, torch.Tensor]] = {}
    categories = {}
    for c in train_split:
        started = time.time()
        train_category = train_split[c].subset(evenly(len(train_split[c]), args.p6_train))
        test_category = test_split[c].subset(evenly(len(test_split[c]), args.queries))
        categories[c] = test_category
        record["counts"]["train"][c], record["counts"]["test"][c] = len(train_category), len(test_category)
        train_sets = p6_sets(extractor, train_category, args.seed + 1)
        test_sets = p6_sets(extractor, test_category, args.seed + 2)
        for kind, train_set, test_set in zip(("conv", "sift"), train_sets, test_sets):
            (predictor, detector_only), chosen = p6_fit(train_set, kind, args.seed)
            record["chosen"][kind][c] = chosen
            arms = {
                f"{kind}": detector_only.predict(test_set, eta=0.0),
                f"{kind}+prior": predictor.predict(test_set),
                f"{kind}_prior_only": predictor.predict(test_set, eta=1.0),
            }
            for name, pred in arms.items():
                hits.setdefault(name, {})[c] = p6_hits(pred, test_set, test_category)
        print(f"  p6 {c}: {len(test_category)} test ({(time.time() - started) / 60:.1f} min)", flush=True)
    draws = resample_indices({c: len(v) for c, v in categories.items()}, args.seed)
    names = {c: v.names for c, v in categories.items()}
    scored = {c: v.visible for c, v in categories.items()}
    methods, samples = {}, {}
    for name, h in hits.items():
        summary, samples[name] = score_summary(h, scored, draws, names)
        methods[name] = {"pck": {"0.1": summary}}
    record["methods"] = methods
    pairs = [("conv+prior", "conv"), ("sift+prior", "sift"), ("conv", "sift"), ("conv+prior", "sift+prior")]
    record["differences"] = {
        f"{a} - {b}": {"0.1": difference(samples[a], samples[b], methods[a]["pck"]["0.1"]["mean"],
                                         methods[b]["pck"]["0.1"]["mean"])}
        for a, b in pairs
    }  # fmt: skip
    return record


# ------------------------------------------------------------------------------------------------- main


def headline(part: str, record: dict[str, Any]) -> str:
    def fmt(v: dict) -> str:
        return f"{100 * v['mean']:.1f} [{100 * v['ci95'][0]:.1f}, {100 * v['ci95'][1]:.1f}]"

    if part == "p4":
        return "; ".join(
            f"{d}: " + ", ".join(f"{m} {fmt(r['pck']['0.1'])}" for m, r in v["methods"].items())
            for d, v in record["datasets"].items()
        )
    if part == "p5":
        return "; ".join(
            f"{d}: " + ", ".join(f"{f} {fmt(r['accuracy'])}" for f, r in v["features"].items())
            for d, v in record["datasets"].items()
        )
    return ", ".join(f"{m} {fmt(r['pck']['0.1'])}" for m, r in record["methods"].items())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", default="p4", choices=("p4", "p5", "p6"), help="protocol")
    parser.add_argument(
        "--runs", nargs="+", default=["random"],
        help="arms: random, sift (P5), or run folders (relative to the repo) whose frozen backbone gives the "
        "features",
    )  # fmt: skip
    parser.add_argument("--data", nargs="+", default=["synthetic", "camvid"], choices=("synthetic", "camvid"),
                        help="datasets for P4 / P5 (P6 is synthetic only)")  # fmt: skip
    parser.add_argument("--train-scenes", type=int, default=800, help="synthetic training frames")
    parser.add_argument("--test-scenes", type=int, default=300, help="synthetic held-out frames")
    parser.add_argument("--queries", type=int, default=40,
                        help="P4 / P6: at most this many held-out instances per category (evenly spaced)")  # fmt: skip
    parser.add_argument("--p4-stages", nargs="+", default=["layer2", "layer3"], choices=tuple(P4_STAGES),
                        help="P4 conv-flow stages; the first is the main one, compared with SIFT flow")  # fmt: skip
    parser.add_argument("--sweep-queries", type=int, default=30,
                        help="P4: training pairs per category in the beta sweep")  # fmt: skip
    parser.add_argument("--p5-train", type=int, default=300,
                        help="P5: at most this many training instances per category (evenly spaced)")  # fmt: skip
    parser.add_argument("--substride-frames", type=int, default=8, help="P5: held-out frames per dataset")
    parser.add_argument("--p6-train", type=int, default=150,
                        help="P6: at most this many training boxes per category (evenly spaced)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the result JSONs")
    args = parser.parse_args()
    needs_camvid = args.part in ("p4", "p5") and "camvid" in args.data
    if needs_camvid and not CAMVID.is_dir():
        sys.exit(
            f"CamVid not found at {CAMVID}; this benchmark needs ../shared/data/camvid (or --data synthetic)"
        )
    torch.set_num_threads(1)
    for run in args.runs:
        name = Path(run).name if "/" in run else run
        path = args.results / f"{args.part}_{name}.json"
        if path.exists():
            print(f"{args.part} {name}: done already")
            continue
        if run not in ("random", "sift") and not (ROOT / run).exists():
            sys.exit(f"run folder {ROOT / run} not found")
        started = time.time()
        record = {"p4": part4, "p5": part5, "p6": part6}[args.part](run, args)
        minutes = (time.time() - started) / 60
        write_result(path, {"benchmark": "correspondence_keypoints", "tag": f"{args.part}_{name}", **provenance(),
                            "machine": machine(), "minutes": round(minutes, 2), "run": run, **record})  # fmt: skip
        print(f"{args.part} {name}: {headline(args.part, record)} ({minutes:.1f} min)")


if __name__ == "__main__":
    main()
