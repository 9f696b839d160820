"""Keypoint classification (thesis §2.3) and keypoint prediction (§2.4) on frozen features.

**Classification** (§2.3, Table 2.3): given an image and a keypoint's location, say which keypoint type it
is. Each stage's feature is the column whose rf centre is nearest the keypoint (:func:`features_at`, on the
true centres of :class:`~pixelwise.models.receptive_field.Grid`); one-vs-rest linear SVMs
(:class:`LinearSVM`) are trained on them with C chosen by k-fold cross-validation over training *instances*
(:func:`cross_validate_c`; the thesis' C = 1e-6 is in liblinear units of CaffeNet features and does not
transfer). :func:`sift_at` gives the SIFT baseline at the same points and :func:`shift_and_stitch` the 1-px
score maps of the sub-stride test (Fig. 2.5).

**Prediction** (§2.4, Table 2.4): the ground-truth box is given and rescaled to S x S (:func:`crop_boxes`;
the thesis' 500, spec P6 S = 128). Cells of one stage are concatenated in 3 x 3 blocks
(:func:`block_features`); per keypoint type a linear SVM is trained with the 10 cells nearest the keypoint as
positives and hard-mined negatives (:func:`train_detector`). The prior is a Gaussian (sigma = 0.044 S, the
thesis' 22 px of 500) at the keypoint of the nearest training instance by global-descriptor cosine
(:func:`prior_means`, :func:`log_prior`). The scores combine as f = s^(1-eta) p^eta (:func:`combine`) with
eta by cross-validation (:func:`cross_validate_eta`); the prediction is the argmax cell.

Decisions (spec "Errata and gaps"):

- The SVM minimises liblinear's primal 1/2 ||w||^2 + C sum_i loss_i with full-batch L-BFGS. The default loss
  is the squared hinge (liblinear's default "L2-loss" SVM): L-BFGS needs a differentiable objective, and the
  plain hinge (``loss="hinge"``) only converges approximately. The bias is not regularised.
- SVM scores are signed, so s^(1-eta) is undefined for s < 0: s goes through a Platt sigmoid fitted on the
  training cells, and log f = (1 - eta) log sigmoid(a s + b) + eta log p. With a > 0, eta = 0 ranks cells as
  the raw detector does and eta = 1 as the prior does.
- Negatives are cells whose centre lies more than ``negative_distance`` px (default 2 strides) from the
  keypoint, not "cells whose rf does not contain it": a ResNet layer3 rf covers the whole box (spec).
- Blocks at the grid border are zero-padded, so every cell is a candidate, as in "all feature locations".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from pixelwise.methods.correspondence.features import FeatureGrid, FrozenFeatures, dense_features
from pixelwise.metrics.correspondence import pck
from pixelwise.models.receptive_field import Grid

LOSSES = ("squared_hinge", "hinge")
PRIOR_SIGMA = 0.044  # of the box side S: the thesis' 22 px of 500 (§2.4)
DEFAULT_CS = tuple(10.0**e for e in range(-4, 4))
DEFAULT_ETAS = tuple(i / 20 for i in range(21))

# --------------------------------------------------------------------------------------------- the linear SVM


class LinearSVM(nn.Module):
    """K one-vs-rest linear SVMs on D-dimensional features: ``scores = x @ weight.T + bias`` [N, K].

    :meth:`fit` minimises, per output k, liblinear's primal 1/2 ||w_k||^2 + C sum_i m_ik loss(t_ik s_ik) with
    targets t in {-1, +1} and sample weights m >= 0 (0 leaves a sample out of output k), by full-batch L-BFGS.
    """

    def __init__(self, dim: int, outputs: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(outputs, dim))
        self.bias = nn.Parameter(torch.zeros(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.weight.dtype) @ self.weight.T + self.bias

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The class of each row of ``x`` [N, D]: the output with the highest score (one-vs-rest)."""
        return self(x).argmax(dim=1)

    def objective(
        self,
        x: torch.Tensor,
        targets: torch.Tensor,
        weights: torch.Tensor,
        c: float,
        loss: str = "squared_hinge",
    ) -> torch.Tensor:
        """The primal objective summed over outputs, divided by C * N (the same minimiser, a tamer scale)."""
        margins = (1 - targets * self(x)).clamp(min=0)
        losses = margins.pow(2) if loss == "squared_hinge" else margins
        n = x.shape[0]
        return 0.5 * self.weight.pow(2).sum() / (c * n) + (weights * losses).sum() / n

    def fit(
        self,
        x: torch.Tensor,
        targets: torch.Tensor,
        c: float,
        weights: torch.Tensor | None = None,
        loss: str = "squared_hinge",
        max_iter: int = 500,
        tolerance: float = 1e-7,
    ) -> LinearSVM:
        """Train on ``x`` [N, D] with ``targets`` [N, K] in {-1, +1} (and ``weights`` [N, K], default 1)."""
        if c <= 0 or not math.isfinite(c):
            raise ValueError(f"the SVM's C must be a positive number, got {c}")
        if loss not in LOSSES:
            raise ValueError(f"unknown SVM loss {loss!r}; choose from {', '.join(LOSSES)}")
        if targets.shape != (x.shape[0], self.weight.shape[0]):
            raise ValueError(
                f"targets must be [{x.shape[0]}, {self.weight.shape[0]}], got {tuple(targets.shape)}"
            )
        x = x.to(self.weight.dtype)
        targets = targets.to(self.weight.dtype)
        weights = torch.ones_like(targets) if weights is None else weights.to(self.weight.dtype)
        optimiser = torch.optim.LBFGS(
            self.parameters(),
            lr=1.0,
            max_iter=max_iter,
            tolerance_grad=tolerance,
            tolerance_change=1e-12,
            history_size=20,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            value = self.objective(x, targets, weights, c, loss)
            value.backward()
            return value

        with torch.enable_grad():
            optimiser.step(closure)
        return self


def one_vs_rest_targets(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """+1 for each sample's own class and -1 for the others [N, classes] (one-vs-all, §2.3)."""
    return F.one_hot(labels.long(), classes).to(torch.float32) * 2 - 1


def fit_svm(
    x: torch.Tensor,
    labels: torch.Tensor,
    classes: int,
    c: float,
    loss: str = "squared_hinge",
    max_iter: int = 500,
) -> LinearSVM:
    """One-vs-rest linear SVMs for ``labels`` [N] in [0, classes) on features ``x`` [N, D] (§2.3)."""
    svm = LinearSVM(x.shape[1], classes).to(x.dtype if x.is_floating_point() else torch.float32)
    return svm.fit(x, one_vs_rest_targets(labels, classes), c, loss=loss, max_iter=max_iter)


def kfold(n: int, folds: int, groups: torch.Tensor | None = None, seed: int = 0) -> list[torch.Tensor]:
    """Held-out sample indices of each of ``folds`` folds: whole ``groups`` [n] (e.g. instances, so that one
    object's keypoints never sit on both sides) go to one fold, in a seeded random order, round robin."""
    groups = torch.arange(n) if groups is None else torch.as_tensor(groups)
    unique = groups.unique()
    if not 2 <= folds <= len(unique):
        raise ValueError(f"{folds} folds need 2 <= folds <= the {len(unique)} groups (instances)")
    order = unique[torch.randperm(len(unique), generator=torch.Generator().manual_seed(seed))]
    fold_of_group = {int(g): i % folds for i, g in enumerate(order)}
    fold = torch.tensor([fold_of_group[int(g)] for g in groups])
    return [torch.nonzero(fold == f).flatten() for f in range(folds)]


def _complement(held_out: torch.Tensor, n: int) -> torch.Tensor:
    keep = torch.ones(n, dtype=torch.bool)
    keep[held_out] = False
    return torch.nonzero(keep).flatten()


@dataclass(frozen=True)
class CrossValidation:
    """The chosen value and the mean held-out score of every candidate (Fig. 2.7)."""

    best: float
    scores: dict[float, float]


def _choose(scores: dict[float, float]) -> float:
    """The best-scoring candidate; ties go to the first listed (the smallest C / eta when sorted)."""
    return max(scores, key=lambda v: (scores[v], -list(scores).index(v)))


def cross_validate_c(
    x: torch.Tensor,
    labels: torch.Tensor,
    classes: int,
    cs: Sequence[float] = DEFAULT_CS,
    folds: int = 5,
    groups: torch.Tensor | None = None,
    seed: int = 0,
    loss: str = "squared_hinge",
    max_iter: int = 500,
) -> CrossValidation:
    """C for :func:`fit_svm` by ``folds``-fold cross-validation on the training set (§2.3, Fig. 2.7): the mean
    held-out accuracy of each candidate, folds split by ``groups`` (instances)."""
    splits = kfold(len(labels), folds, groups, seed)
    scores = {}
    for c in sorted(cs):
        correct = 0
        for held_out in splits:
            train = _complement(held_out, len(labels))
            svm = fit_svm(x[train], labels[train], classes, c, loss, max_iter)
            correct += int((svm.predict(x[held_out]) == labels[held_out].to(torch.long)).sum())
        scores[float(c)] = correct / len(labels)
    return CrossValidation(_choose(scores), scores)


# --------------------------------------------------------------------------- §2.3: features at keypoints


def nearest_cells(features: FeatureGrid, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, col) cell indices [P] whose rf centre (``grid.position``) is nearest each point [P, 2] (§2.3:
    "the column of each convnet layer whose rf center lies closest to the keypoint"), clamped to the grid."""
    h, w = features.shape
    rows = torch.round(features.grid.cell(points[:, 0].double())).long().clamp(0, h - 1)
    cols = torch.round(features.grid.cell(points[:, 1].double())).long().clamp(0, w - 1)
    return rows, cols


def features_at(features: FeatureGrid, images: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """The cell nearest each point [P, 2] of image ``images`` [P] (indices into ``features``) -> [P, C]."""
    if points.dim() != 2 or points.shape[1] != 2 or len(images) != len(points):
        raise ValueError(
            f"need points [P, 2] and image indices [P], got {tuple(points.shape)}, {len(images)}"
        )
    if bool(torch.isnan(points).any()):
        raise ValueError("a keypoint to classify is NaN; keep only the visible ones (keypoint_samples)")
    rows, cols = nearest_cells(features, points)
    return features.features[images.long(), :, rows, cols]


@dataclass(frozen=True)
class KeypointSamples:
    """Visible keypoints as classification samples: image index, (row, col), keypoint type and instance."""

    images: torch.Tensor
    points: torch.Tensor
    labels: torch.Tensor
    instances: torch.Tensor


def keypoint_samples(
    keypoints: torch.Tensor, visible: torch.Tensor, images: torch.Tensor | None = None
) -> KeypointSamples:
    """One sample per visible keypoint of ``keypoints`` [N, K, 2] / ``visible`` [N, K]: its type k is its
    label, its instance n its CV group; ``images`` [N] maps instances to images (default: instance n is
    image n)."""
    if keypoints.dim() != 3 or visible.shape != keypoints.shape[:2]:
        raise ValueError(f"need keypoints [N, K, 2] and visible [N, K], got {tuple(keypoints.shape)}")
    instance, kind = torch.nonzero(visible.bool(), as_tuple=True)
    images = torch.arange(len(keypoints)) if images is None else torch.as_tensor(images)
    return KeypointSamples(images[instance], keypoints[instance, kind].float(), kind, instance)


def sift_at(
    images: torch.Tensor, image_index: torch.Tensor, points: torch.Tensor, radius: float
) -> torch.Tensor:
    """Upright SIFT [P, 128] (L2-normalised) at points [P, 2] of ``images`` [N, 1 or 3, H, W] in [0, 1], the
    §2.3 baseline at SIFT radius ``radius`` px (OpenCV size = radius / 3, as :mod:`.descriptors`)."""
    if radius <= 0:
        raise ValueError(f"SIFT radius must be positive, got {radius}")
    sift, out = cv2.SIFT_create(), torch.zeros(len(points), 128)
    for index in image_index.unique().tolist():
        rows = torch.nonzero(image_index == index).flatten()
        grey = (images[index].float().mean(dim=0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        kept_points = [cv2.KeyPoint(float(c), float(r), radius / 3) for r, c in points[rows].tolist()]
        kept, descriptors = sift.compute(grey, kept_points)
        if descriptors is None or len(kept) != len(kept_points):  # never misalign samples and descriptors
            raise ValueError(
                f"OpenCV SIFT kept {0 if descriptors is None else len(kept)} of {len(rows)} points"
            )
        out[rows] = torch.from_numpy(np.ascontiguousarray(descriptors))
    return F.normalize(out, dim=1)


def shift_and_stitch(
    extractor: FrozenFeatures,
    stage: str,
    image: torch.Tensor,
    score: Callable[[torch.Tensor], torch.Tensor],
) -> FeatureGrid:
    """1-px-stride scores of ``stage`` on ``image`` [C, H, W] (Fig. 2.5; shift-and-stitch, §3.2.2): the input
    is shifted by every (dy, dx) in 0..s-1 and the cells of each shift are interleaved, not interpolated.

    ``score`` maps stage features [1, C, h, w] (L2-normalised, as :func:`dense_features`) to scores [K, h, w].
    The result's ``features`` [1, K, h', w'] sit on ``Grid(1, offset)``: value (m, n) is the score of a cell
    centred on pixel (offset + m, offset + n). Needs an integer grid offset (ResNets: 0).
    """
    grid = extractor.grids[stage]
    if grid.offset != int(grid.offset):
        raise ValueError(f"shift-and-stitch needs an integer grid offset, {stage} has {grid.offset}")
    stride, height, width = grid.stride, *image.shape[-2:]
    pieces: dict[tuple[int, int], torch.Tensor] = {}
    for dy in range(stride):
        for dx in range(stride):
            # Cropping dy rows moves content pixel r to r - dy: cell i centres on content pixel o + s i + dy.
            shifted = image[None, :, dy:, dx:]
            pieces[dy, dx] = score(dense_features(extractor, shifted)[stage].features)
    rows = min(p.shape[-2] for p in pieces.values()) * stride
    cols = min(p.shape[-1] for p in pieces.values()) * stride
    out = torch.full((pieces[0, 0].shape[0], rows, cols), math.nan)
    for (dy, dx), piece in pieces.items():
        out[:, dy::stride, dx::stride] = piece[:, : rows // stride, : cols // stride]
    return FeatureGrid(out[None], Grid(1, grid.offset), (int(height), int(width)))


def window_argmax(
    scores: torch.Tensor, grid: Grid, point: torch.Tensor, window: int = 21
) -> tuple[int, int] | None:
    """Offset (drow, dcol) of the best score [H', W'] (on 1-px ``grid``) in a ``window`` x ``window`` square
    centred on ``point`` (row, col), or None if it lies on the square's border (dropped, Fig. 2.5) or the
    square leaves the map."""
    half = window // 2
    row, col = (int(round(grid.cell(float(v)))) for v in point)
    if row - half < 0 or col - half < 0 or row + half >= scores.shape[0] or col + half >= scores.shape[1]:
        return None
    patch = scores[row - half : row + half + 1, col - half : col + half + 1]
    best = int(torch.argmax(torch.nan_to_num(patch, nan=-math.inf)))
    dr, dc = best // window - half, best % window - half
    return None if max(abs(dr), abs(dc)) == half else (dr, dc)


# ------------------------------------------------------------------------------- §2.4: boxes and blocks


def to_box_frame(points: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Image points [N, K, 2] (row, col) in the frame of their box [N, 4] (top, left, bottom, right; pixel
    edges) rescaled to ``size`` x ``size``: crop pixel j's centre is image point top + (j + 1/2) h / S."""
    origin, extent = boxes[:, None, :2], (boxes[:, 2:] - boxes[:, :2])[:, None]
    return (points - origin) * size / extent - 0.5


def from_box_frame(points: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """The inverse of :func:`to_box_frame`: crop-frame points [N, K, 2] back into image pixels."""
    origin, extent = boxes[:, None, :2], (boxes[:, 2:] - boxes[:, :2])[:, None]
    return origin + (points + 0.5) * extent / size


def expand_boxes(boxes: torch.Tensor, margin: float) -> torch.Tensor:
    """Boxes [N, 4] grown by ``margin`` of their height / width on every side (spec P4: box + 10% margin)."""
    extent = boxes[:, 2:] - boxes[:, :2]
    return torch.cat([boxes[:, :2] - margin * extent, boxes[:, 2:] + margin * extent], dim=1)


def jitter_boxes(
    boxes: torch.Tensor, shift: float = 0.1, scale: float = 0.1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Boxes [N, 4] moved by up to ``shift`` of their size and resized by a factor in [1 - scale, 1 + scale],
    per axis. Analytic synthetic keypoints sit at fixed fractions of their exact box, which would hand the
    prior the answer; a jittered box (as a detector's would be) keeps §2.4's localisation a real task."""
    extent = boxes[:, 2:] - boxes[:, :2]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    draw = torch.rand(len(boxes), 4, generator=generator, dtype=boxes.dtype) * 2 - 1  # U(-1, 1)
    centre = centre + draw[:, :2] * shift * extent
    half = extent * (1 + draw[:, 2:] * scale) / 2
    return torch.cat([centre - half, centre + half], dim=1)


def crop_boxes(
    images: Sequence[torch.Tensor], image_index: torch.Tensor, boxes: torch.Tensor, size: int
) -> torch.Tensor:
    """Each box [N, 4] of image ``images[image_index[n]]`` ([C, H, W]) rescaled to [N, C, size, size] (§2.4).

    ``roi_align`` (aligned) averages ceil(box / size) samples per crop pixel, so shrinking a box does not
    alias; beyond the image it reads zeros. The crop frame is :func:`to_box_frame`'s.
    """
    if boxes.dim() != 2 or boxes.shape[1] != 4 or len(image_index) != len(boxes):
        raise ValueError(
            f"need boxes [N, 4] and image indices [N], got {tuple(boxes.shape)}, {len(image_index)}"
        )
    if bool(((boxes[:, 2:] - boxes[:, :2]) <= 0).any()):
        raise ValueError("a box is empty (bottom <= top or right <= left)")
    crops = torch.zeros(len(boxes), images[0].shape[0], size, size)
    for index in image_index.unique().tolist():
        rows = torch.nonzero(image_index == index).flatten()
        top, left, bottom, right = (boxes[rows].double() + 0.5).unbind(1)  # pixel edges -> roi_align's frame
        rois = torch.stack([torch.zeros_like(top), left, top, right, bottom], dim=1)
        image = images[index][None].double()
        crops[rows] = roi_align(image, rois, (size, size), 1.0, -1, aligned=True).float()
    return crops


def block_features(features: FeatureGrid, block: int = 3) -> FeatureGrid:
    """Each cell's ``block`` x ``block`` neighbourhood concatenated [N, block^2 C, h, w] (§2.4: 3 x 3 conv5
    cells, 2304-d, rf 195), zero-padded at the border so every cell stays a candidate; same grid."""
    if block < 1 or block % 2 == 0:
        raise ValueError(f"block must be an odd size >= 1, got {block}")
    n, c, h, w = features.features.shape
    blocks = F.unfold(features.features, block, padding=block // 2).reshape(n, c * block * block, h, w)
    return replace(features, features=blocks)


@dataclass(frozen=True)
class BoxSet:
    """Instances in their S x S box frame, what §2.4 trains and predicts on.

    ``features``: block features of the crops [N, D, h, w]; ``keypoints`` [N, K, 2] in the crop frame (NaN
    where absent) and ``visible`` [N, K]; ``descriptors`` [N, G] for the nearest-neighbour prior (the thesis:
    pool5 cosine); ``boxes`` [N, 4] in image pixels, to score PCK in the image (else in the crop frame).
    """

    features: FeatureGrid
    keypoints: torch.Tensor
    visible: torch.Tensor
    descriptors: torch.Tensor
    size: int
    boxes: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.features.features.shape[0]
        if self.keypoints.shape[:1] != (n,) or self.visible.shape != self.keypoints.shape[:2]:
            raise ValueError(
                f"{n} instances but keypoints {tuple(self.keypoints.shape)}, visible "
                f"{tuple(self.visible.shape)}"
            )
        if len(self.descriptors) != n or (self.boxes is not None and len(self.boxes) != n):
            raise ValueError(f"{n} instances need {n} descriptors (and boxes)")

    def __len__(self) -> int:
        return int(self.features.features.shape[0])

    def subset(self, index: torch.Tensor) -> BoxSet:
        return BoxSet(
            replace(self.features, features=self.features.features[index]),
            self.keypoints[index],
            self.visible[index],
            self.descriptors[index],
            self.size,
            None if self.boxes is None else self.boxes[index],
        )

    def centres(self) -> torch.Tensor:
        """Crop-frame pixel centres of the cells [h, w, 2] (the candidates of the argmax)."""
        return self.features.centres()


def cell_distances(centres: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """Distances (px) of cell centres [h, w, 2] to keypoints [N, K, 2]: [N, K, h*w], NaN where absent."""
    return torch.cdist(keypoints.reshape(-1, 2).double(), centres.reshape(-1, 2).double()).reshape(
        *keypoints.shape[:2], -1
    )


# ---------------------------------------------------------------------------------- §2.4: the detector


@dataclass(frozen=True)
class DetectorConfig:
    """§2.4's detector training: the ``positives`` cells nearest each keypoint, negatives farther than
    ``negative_distance`` px (None: 2 strides), ``rounds`` of hard-negative mining from ``initial_negatives``
    random negatives per instance and type, an SVM with ``c``."""

    c: float = 1.0
    positives: int = 10
    negative_distance: float | None = None
    rounds: int = 3
    initial_negatives: int = 8
    max_negatives: int = 20000  # per type: a cap on the mined working set
    loss: str = "squared_hinge"
    max_iter: int = 300
    seed: int = 0


@dataclass
class KeypointDetector:
    """Per-type linear detectors (``svm``: one output per keypoint type) and their Platt sigmoids a s + b."""

    svm: LinearSVM
    platt: torch.Tensor  # [K, 2] (a, b)

    @torch.no_grad()
    def scores(self, features: FeatureGrid) -> torch.Tensor:
        """Raw SVM scores s of every cell [N, K, h, w]."""
        n, d, h, w = features.features.shape
        flat = features.features.permute(0, 2, 3, 1).reshape(-1, d)
        return self.svm(flat).reshape(n, h, w, -1).permute(0, 3, 1, 2)

    def log_scores(self, scores: torch.Tensor) -> torch.Tensor:
        """log sigmoid(a s + b) [N, K, h, w] of raw scores: the detector's log s in f = s^(1-eta) p^eta."""
        a, b = self.platt[:, 0].view(1, -1, 1, 1), self.platt[:, 1].view(1, -1, 1, 1)
        return F.logsigmoid(a * scores.double() + b)


def training_masks(train: BoxSet, config: DetectorConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive, negative) masks [N, h*w, K] of every cell and type: the ``positives`` cells nearest each
    visible keypoint, and the cells beyond ``negative_distance`` (an instance without the keypoint gives
    neither: its cells are not known to be background)."""
    stride = train.features.grid.stride
    far = 2.0 * stride if config.negative_distance is None else config.negative_distance
    distance = cell_distances(train.centres(), train.keypoints)  # [N, K, h*w]
    visible = train.visible.bool()[..., None]
    nearest = distance.nan_to_num(math.inf).argsort(dim=-1)[..., : config.positives]
    positive = torch.zeros_like(distance, dtype=torch.bool).scatter_(-1, nearest, True) & visible
    # Near a corner the nearest cells can reach past ``far``: a cell is never both.
    negative = (distance > far) & visible & ~positive
    return positive.transpose(1, 2), negative.transpose(1, 2)


def _platt(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(a, b) minimising the logistic loss of sigmoid(a s + b) against soft ``targets`` (L-BFGS)."""
    params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([params], max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        value = F.binary_cross_entropy_with_logits(params[0] * scores + params[1], targets)
        value.backward()
        return value

    with torch.enable_grad():
        optimiser.step(closure)
    return params.detach().clone()


def fit_platt(scores: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Platt's sigmoid (a, b) [K, 2] on training scores [M, K] of positives / negatives [M, K]: the
    calibration that makes s^(1-eta) defined (spec erratum). Platt's smoothed targets (N+ + 1) / (N+ + 2) and
    1 / (N- + 2) keep a and b finite when the training cells are separable."""
    out = []
    for k in range(scores.shape[1]):
        pos, neg = scores[positive[:, k], k].double(), scores[negative[:, k], k].double()
        targets = torch.cat(
            [torch.full_like(pos, (len(pos) + 1) / (len(pos) + 2)), torch.full_like(neg, 1 / (len(neg) + 2))]
        )
        out.append(_platt(torch.cat([pos, neg]), targets))
    return torch.stack(out)


def train_detector(train: BoxSet, config: DetectorConfig = DetectorConfig()) -> KeypointDetector:
    """§2.4's per-keypoint linear SVMs with hard-negative mining, then their Platt sigmoids.

    Each round trains on the positives and the working set of negatives, then adds every negative that scores
    above -1 (inside the margin: the hard ones) to the working set, up to ``max_negatives``; it stops early
    when no negative is hard.
    """
    n, d, h, w = train.features.features.shape
    x = train.features.features.permute(0, 2, 3, 1).reshape(-1, d)
    positive, negative = (m.reshape(n * h * w, -1) for m in training_masks(train, config))
    kinds = positive.shape[1]
    missing = [k for k in range(kinds) if not bool(positive[:, k].any())]
    if missing:  # an SVM with no positive would learn "never", and its Platt fit would be meaningless
        raise ValueError(
            f"keypoint type(s) {missing} are visible on none of the {n} training instances; drop those types "
            f"or add instances that show them"
        )
    generator = torch.Generator().manual_seed(config.seed)
    # Working set: a few random negatives per instance and type (random keys, the smallest per instance win).
    keys = torch.rand(n, h * w, kinds, generator=generator).masked_fill(
        ~negative.reshape(n, h * w, kinds), 2.0
    )
    start = min(config.initial_negatives, h * w)
    threshold = keys.sort(dim=1).values[:, start - 1 : start]
    active = ((keys <= threshold) & (keys < 2.0)).reshape(n * h * w, kinds)
    svm = LinearSVM(d, kinds).to(x.dtype)
    targets = positive.to(x.dtype) * 2 - 1
    for _ in range(max(1, config.rounds)):
        use = positive | active
        rows = use.any(dim=1)
        svm.fit(x[rows], targets[rows], config.c, use[rows].to(x.dtype), config.loss, config.max_iter)
        with torch.no_grad():
            hard = negative & ~active & (svm(x) > -1)
        room = config.max_negatives - active.sum(dim=0)
        if not bool(hard.any()) or bool((room <= 0).all()):
            break
        for k in range(kinds):  # the hardest first, within each type's room
            candidates = torch.nonzero(hard[:, k]).flatten()
            if len(candidates) and room[k] > 0:
                with torch.no_grad():
                    ranked = candidates[svm(x[candidates])[:, k].argsort(descending=True)]
                active[ranked[: int(room[k])], k] = True
    with torch.no_grad():
        scores = svm(x)
    return KeypointDetector(svm, fit_platt(scores, positive, negative))


# ------------------------------------------------------------------------------------ §2.4: the prior


def prior_means(
    query: torch.Tensor,
    train_descriptors: torch.Tensor,
    train_keypoints: torch.Tensor,
    train_visible: torch.Tensor,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """The Gaussian prior's means [Q, K, 2]: per query descriptor [Q, G] and keypoint type, that keypoint of
    the most cosine-similar training instance [M, G] that has it visible (a nearer one lacking it is
    skipped); NaN if none has it. ``exclude`` [Q] (a training index or -1) leaves a query's own instance
    out."""
    # Cosine similarity [Q, M].
    similarity = F.normalize(query.double(), dim=1) @ F.normalize(train_descriptors.double(), dim=1).T
    if exclude is not None:
        rows = torch.nonzero(exclude >= 0).flatten()
        similarity[rows, exclude[rows]] = -math.inf
    visible = train_visible.bool()  # [M, K]
    masked = similarity[:, None, :].masked_fill(~visible.T[None], -math.inf)  # [Q, K, M]
    best = masked.argmax(dim=-1)  # [Q, K]
    means = train_keypoints.double()[best, torch.arange(visible.shape[1])[None]]  # [Q, K, 2]
    has = torch.isfinite(masked.amax(dim=-1))
    return torch.where(has[..., None], means, torch.tensor(math.nan, dtype=torch.float64))


def log_prior(means: torch.Tensor, centres: torch.Tensor, sigma: float) -> torch.Tensor:
    """log p of a spherical Gaussian (std ``sigma`` px) at ``means`` [Q, K, 2], at cell centres [h, w, 2]
    -> [Q, K, h, w], up to a constant (it shifts every cell alike, so no argmax moves); 0 (uniform) where the
    mean is NaN."""
    if sigma <= 0:
        raise ValueError(f"the prior's sigma must be positive, got {sigma}")
    squared = (centres.double()[None, None] - means[:, :, None, None, :]).pow(2).sum(-1)
    return torch.nan_to_num(-squared / (2 * sigma**2), nan=0.0)


def combine(log_detector: torch.Tensor, log_prior_: torch.Tensor, eta: float) -> torch.Tensor:
    """log f = (1 - eta) log s + eta log p (§2.4, f = s^(1-eta) p^eta with s the Platt-calibrated score)."""
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    return (1 - eta) * log_detector + eta * log_prior_


def argmax_cells(scores: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """The centre [N, K, 2] of each map's best cell (scores [N, K, h, w]): "the highest scoring candidate"."""
    best = scores.flatten(2).argmax(dim=-1)
    return centres.reshape(-1, 2)[best].float()


# ---------------------------------------------------------------------- §2.4: predicting and choosing eta


def prediction_pck(pred: torch.Tensor, data: BoxSet, alpha: float = 0.1) -> float:
    """Mean PCK over keypoint types (§2.2) of crop-frame predictions [N, K, 2], at ``alpha`` of max(h, w) of
    the image box (``data.boxes``), or of the crop side S without boxes."""
    if data.boxes is None:
        gt, threshold = data.keypoints, torch.tensor(alpha * data.size)
    else:
        pred, gt = (
            from_box_frame(pred, data.boxes, data.size),
            from_box_frame(data.keypoints, data.boxes, data.size),
        )
        threshold = alpha * (data.boxes[:, 2:] - data.boxes[:, :2]).amax(dim=1)
    return pck(pred, gt, data.visible, threshold.double())["mean"]


@dataclass
class KeypointPredictor:
    """A trained detector, the training instances the prior reads, and sigma / eta (§2.4)."""

    detector: KeypointDetector
    train: BoxSet
    sigma: float
    eta: float

    def log_maps(
        self, query: BoxSet, exclude: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(log s, log p) [Q, K, h, w] of every query cell."""
        log_s = self.detector.log_scores(self.detector.scores(query.features))
        means = prior_means(
            query.descriptors, self.train.descriptors, self.train.keypoints, self.train.visible, exclude
        )
        return log_s, log_prior(means, query.centres(), self.sigma)

    def predict(self, query: BoxSet, eta: float | None = None) -> torch.Tensor:
        """Crop-frame keypoints [Q, K, 2]: the argmax of s^(1-eta) p^eta (``eta`` default: the fitted one)."""
        log_s, log_p = self.log_maps(query)
        return argmax_cells(combine(log_s, log_p, self.eta if eta is None else eta), query.centres())


def default_sigma(size: int) -> float:
    """The prior's std: 0.044 S px (the thesis' 22 px of 500, §2.4)."""
    return PRIOR_SIGMA * size


def cross_validate_eta(
    train: BoxSet,
    config: DetectorConfig = DetectorConfig(),
    etas: Sequence[float] = DEFAULT_ETAS,
    folds: int = 5,
    sigma: float | None = None,
    alpha: float = 0.1,
    seed: int = 0,
) -> CrossValidation:
    """eta by ``folds``-fold cross-validation on the training instances (§2.4: "eta = 0.1 by cross
    validation"): per fold, detectors and the prior come from the other folds; the score is held-out PCK."""
    sigma = default_sigma(train.size) if sigma is None else sigma
    totals = dict.fromkeys((float(e) for e in sorted(etas)), 0.0)
    for held_out in kfold(len(train), folds, seed=seed):
        fit_part, test_part = train.subset(_complement(held_out, len(train))), train.subset(held_out)
        predictor = KeypointPredictor(train_detector(fit_part, config), fit_part, sigma, 0.0)
        log_s, log_p = predictor.log_maps(test_part)
        for eta in totals:
            pred = argmax_cells(combine(log_s, log_p, eta), test_part.centres())
            totals[eta] += prediction_pck(pred, test_part, alpha) * len(held_out) / len(train)
    return CrossValidation(_choose(totals), totals)


def fit_predictor(
    train: BoxSet,
    config: DetectorConfig = DetectorConfig(),
    eta: float | None = None,
    etas: Sequence[float] = DEFAULT_ETAS,
    folds: int = 5,
    sigma: float | None = None,
) -> tuple[KeypointPredictor, CrossValidation | None]:
    """The §2.4 predictor on all of ``train``, with ``eta`` given or chosen by :func:`cross_validate_eta`."""
    sigma = default_sigma(train.size) if sigma is None else sigma
    chosen = None if eta is not None else cross_validate_eta(train, config, etas, folds, sigma)
    predictor = KeypointPredictor(
        train_detector(train, config), train, sigma, eta if chosen is None else chosen.best
    )
    return predictor, chosen


def box_set(
    extractor: FrozenFeatures,
    crops: torch.Tensor,
    keypoints: torch.Tensor,
    visible: torch.Tensor,
    stage: str,
    descriptor_stage: str | None = None,
    block: int = 3,
    boxes: torch.Tensor | None = None,
    batch: int = 32,
) -> BoxSet:
    """A :class:`BoxSet` from crops [N, C, S, S] (:func:`crop_boxes`) and crop-frame keypoints [N, K, 2]:
    block features of ``stage`` and, for the prior, the mean L2-normalised cell of ``descriptor_stage``
    (default: the extractor's deepest; the thesis uses pool5)."""
    if stage not in extractor.stages:
        raise ValueError(f"stage {stage!r} is not tapped; the extractor has {list(extractor.stages)}")
    descriptor_stage = descriptor_stage or extractor.stages[0]  # taps are ordered deepest first
    blocks, descriptors = [], []
    for start in range(0, len(crops), batch):
        grids = dense_features(extractor, crops[start : start + batch])
        blocks.append(block_features(grids[stage], block))
        descriptors.append(F.normalize(grids[descriptor_stage].features.mean(dim=(2, 3)), dim=1))
    features = replace(blocks[0], features=torch.cat([g.features for g in blocks]))
    return BoxSet(
        features, keypoints.float(), visible.bool(), torch.cat(descriptors), int(crops.shape[-1]), boxes
    )
