"""Object-proposal metrics (Long thesis §4.4.5; spec region-proposals.md "Metrics").

The IoU is that of a binarised proposal mask with a ground-truth (GT) segment, void pixels left out of both.

- R@x: the fraction of GT segments whose best IoU over the proposals is >= x (x = 0.5, 0.7).
- ABO: the mean over GT segments of the best IoU.
- AR [HBDS15]: R@x averaged over x in [0.5, 1]. The continuous form is exact, AR = 2 mean_i max(0, best_i - 0.5)
  (the integral of the recall curve); the COCO form samples x at 0.5:0.05:0.95. That is a left Riemann sum of
  a falling curve, so it exceeds the exact form by 0 .. 0.1 x (share of GTs with 0.5 <= best < 1), about
  0.05 x that share on smooth data (0.025 when half the GTs lie there). The continuous form is reported.
- AR@k: AR over the k best-scored proposals of each image (after NMS).

A proposal (:class:`WindowMask`) is non-zero only inside its window, so its IoUs are computed on the window crop:
one histogram of the GT ids under its foreground gives the intersection with every GT at once, and a GT that no
proposal window reaches is never looked at (its best IoU stays 0). Pixels of a window outside the image are not
part of the proposal in the image's frame and are dropped. Boxes are (top, left, bottom, right) pixel indices,
bottom and right exclusive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

Box = tuple[int, int, int, int]  # (top, left, bottom, right); bottom and right exclusive
DEFAULT_KS = (10, 100, 1000)
COCO_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))  # 0.5:0.05:0.95, exact decimals


@dataclass(frozen=True)
class WindowMask:
    """A proposal that is non-zero only inside its window: ``mask`` bool [h, w] whose top-left pixel is image pixel
    (top, left); may extend past the image (those pixels are never foreground of a GT)."""

    mask: torch.Tensor
    top: int
    left: int

    @property
    def box(self) -> Box:
        """The window (top, left, bottom, right), bottom and right exclusive; may reach past the image."""
        return self.top, self.left, self.top + self.mask.shape[0], self.left + self.mask.shape[1]


# --- Ground-truth segments --------------------------------------------------------------------------------------


def _gt_ids(instances: Tensor, void: int) -> Tensor:
    if instances.dim() != 2:
        raise ValueError(f"instances must be [H, W], got shape {tuple(instances.shape)}")
    # numpy: torch.unique's threads were 50x slower on a loaded machine.
    ids = torch.from_numpy(np.unique(instances.as_subclass(Tensor).long().cpu().numpy()))
    return ids[(ids > 0) & (ids != void)]


def instance_masks(instances: Tensor, void: int = 255) -> tuple[Tensor, Tensor]:
    """The GT segments of an instance map int [H, W] (0 = none, ``void`` = ignore): (masks bool [G, H, W], ids
    long [G]), in increasing id order, the order of every per-GT result in this module."""
    ids = _gt_ids(instances, void)
    return instances.as_subclass(Tensor).long()[None] == ids[:, None, None], ids


def instance_areas(instances: Tensor, void: int = 255) -> Tensor:
    """Pixel count of each GT segment, long [G], in :func:`instance_masks` order."""
    ids = _gt_ids(instances, void)
    flat = instances.as_subclass(Tensor).long().flatten()
    return (flat[None] == ids[:, None]).sum(dim=1)


def mask_box(mask: Tensor) -> Box:
    """The bounding box of a non-empty bool mask [H, W] (bottom and right exclusive)."""
    rows, cols = torch.nonzero(mask.any(dim=1)), torch.nonzero(mask.any(dim=0))
    if rows.numel() == 0:
        raise ValueError("mask_box of an empty mask")
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _binary(proposal: WindowMask) -> Tensor:
    # Binarising is the caller's choice (p = 0.5, a logit of 0, ...): refusing floats keeps it explicit.
    if proposal.mask.dtype != torch.bool or proposal.mask.dim() != 2:
        raise ValueError(
            f"WindowMask.mask must be bool [h, w] (binarise first), got {proposal.mask.dtype} "
            f"{tuple(proposal.mask.shape)}"
        )
    return proposal.mask.cpu()


# --- IoU ----------------------------------------------------------------------------------------------------------


def window_iou(
    proposal: WindowMask, gt_mask: Tensor, gt_box: Box | None = None, void_mask: Tensor | None = None
) -> float:
    """IoU of ``proposal`` with one GT segment ``gt_mask`` bool [H, W] (its box ``gt_box``, computed when None),
    void pixels (``void_mask`` bool [H, W]) left out of both, computed on the union of the window crop (clipped to
    the image) and the GT box: both masks are empty outside it, so this equals the full-image IoU."""
    height, width = gt_mask.shape
    box = gt_box if gt_box is not None else mask_box(gt_mask)
    ptop, pleft, pbottom, pright = proposal.box
    top, left = max(0, min(ptop, box[0])), max(0, min(pleft, box[1]))
    bottom, right = min(height, max(pbottom, box[2])), min(width, max(pright, box[3]))
    # Paste the proposal into the crop; the part of its window outside the image is dropped.
    pred = torch.zeros(bottom - top, right - left, dtype=torch.bool)
    y0, x0, y1, x1 = max(ptop, top), max(pleft, left), min(pbottom, bottom), min(pright, right)
    if y0 < y1 and x0 < x1:
        pred[y0 - top : y1 - top, x0 - left : x1 - left] = _binary(proposal)[
            y0 - ptop : y1 - ptop, x0 - pleft : x1 - pleft
        ]
    gt = gt_mask[top:bottom, left:right].cpu().bool()
    keep = torch.ones_like(gt) if void_mask is None else ~void_mask[top:bottom, left:right].cpu().bool()
    union = int(((pred | gt) & keep).sum())
    return int((pred & gt & keep).sum()) / union if union else 0.0


def _gt_index(instances: Tensor, void: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(index map [H, W]: 0 none, g + 1 for GT g, G + 1 void; GT areas [G]; G)."""
    ids = _gt_ids(instances, void).numpy()
    values = instances.as_subclass(Tensor).long().cpu().numpy()
    count = len(ids)
    index = np.zeros(values.shape, np.int64)
    is_gt = (values > 0) & (values != void)
    index[is_gt] = np.searchsorted(ids, values[is_gt]) + 1
    index[values == void] = count + 1
    areas = np.bincount(index.ravel(), minlength=count + 2)[1 : count + 1]
    return index, areas, count


def best_matches(
    proposals: Sequence[WindowMask], instances: Tensor, void: int = 255, ks: Sequence[int | None] = (None,)
) -> dict[int | None, tuple[Tensor, Tensor]]:
    """For each k in ``ks`` (None = all): (each GT's best IoU float64 [G] over the first k of ``proposals``, ranked
    best first; the index of that proposal long [G], -1 where none overlaps). One pass over the proposals.

    Ties keep the earlier (better-ranked) proposal. The index says which proposal (e.g. which pathway) found the
    GT, for recall by size coloured by pathway (Fig. 4.6).
    """
    index, areas, count = _gt_index(instances, void)
    height, width = index.shape
    best, which = np.zeros(count), np.full(count, -1, np.int64)
    total = len(proposals)
    wanted = {total if k is None else min(k, total) for k in ks}
    found: dict[int, tuple[Tensor, Tensor]] = {}
    if 0 in wanted:
        found[0] = (torch.from_numpy(best.copy()), torch.from_numpy(which.copy()))
    for n in range(max(wanted, default=0)):
        proposal = proposals[n]
        top, left, bottom, right = proposal.box
        y0, x0, y1, x1 = max(top, 0), max(left, 0), min(bottom, height), min(right, width)
        if count and y0 < y1 and x0 < x1:
            mask = _binary(proposal)[y0 - top : y1 - top, x0 - left : x1 - left].numpy()
            hist = np.bincount(index[y0:y1, x0:x1][mask], minlength=count + 2)
            foreground = hist[: count + 1].sum()  # the proposal's non-void pixels
            inter = hist[1 : count + 1]
            iou = inter / (foreground + areas - inter)  # areas > 0: the denominator never vanishes
            better = iou > best
            best[better], which[better] = iou[better], n
        if n + 1 in wanted:
            found[n + 1] = (torch.from_numpy(best.copy()), torch.from_numpy(which.copy()))
    return {k: found[total if k is None else min(k, total)] for k in ks}


def best_ious(
    proposals: Sequence[WindowMask], instances: Tensor, void: int = 255, k: int | None = None
) -> Tensor:
    """Each GT's best IoU float64 [G] (:func:`instance_masks` order) over the first ``k`` of ``proposals`` (ranked
    best first; all if None); a GT whose box no proposal window reaches gets 0 without being looked at."""
    return best_matches(proposals, instances, void, (k,))[k][0]


# --- Scores -------------------------------------------------------------------------------------------------------


def recall_at(best: Tensor, threshold: float) -> float:
    """R@x: the fraction of GTs with best IoU >= ``threshold`` (NaN without GTs)."""
    return float((best >= threshold).double().mean()) if best.numel() else math.nan


def abo(best: Tensor) -> float:
    """Average best overlap: the mean best IoU (NaN without GTs)."""
    return float(best.double().mean()) if best.numel() else math.nan


def average_recall(best: Tensor) -> float:
    """AR, exact continuous form: 2 mean max(0, best - 0.5), the recall curve's mean over [0.5, 1]."""
    return float(2 * (best.double() - 0.5).clamp(min=0).mean()) if best.numel() else math.nan


def average_recall_sampled(best: Tensor) -> float:
    """AR, COCO form: the mean of R@x at x = 0.5:0.05:0.95 (>= :func:`average_recall`, see the module doc)."""
    return sum(recall_at(best, x) for x in COCO_THRESHOLDS) / len(COCO_THRESHOLDS)


def proposal_scores(per_image_best: Sequence[Tensor]) -> dict[str, float]:
    """R@50, R@70, ABO, AR (continuous) and AR (COCO-sampled) over all GTs of all images, and the GT count."""
    best = torch.cat([b.double().flatten() for b in per_image_best]) if per_image_best else torch.zeros(0)
    return {
        "r50": recall_at(best, 0.5),
        "r70": recall_at(best, 0.7),
        "abo": abo(best),
        "ar": average_recall(best),
        "ar_sampled": average_recall_sampled(best),
        "gts": float(best.numel()),
    }


def ar_at_k(
    per_image_proposals: Sequence[Sequence[WindowMask]],
    per_image_instances: Sequence[Tensor],
    ks: Sequence[int] = DEFAULT_KS,
    void: int = 255,
) -> dict[str, float]:
    """AR@k (continuous AR over all GTs, each image keeping its first k ranked proposals) for each k: keys
    ``"ar@10"``, ... ."""
    if len(per_image_proposals) != len(per_image_instances):
        raise ValueError(f"{len(per_image_proposals)} proposal lists for {len(per_image_instances)} images")
    pooled: dict[int, list[Tensor]] = {k: [] for k in ks}
    for proposals, instances in zip(per_image_proposals, per_image_instances):
        matches = best_matches(proposals, instances, void, tuple(ks))
        for k in ks:
            pooled[k].append(matches[k][0])
    return {f"ar@{k}": average_recall(torch.cat(pooled[k]) if pooled[k] else torch.zeros(0)) for k in ks}


def recall_by_size(
    best: Tensor, areas: Tensor, bins: Sequence[float], threshold: float = 0.5
) -> tuple[Tensor, Tensor]:
    """Recall at ``threshold`` by object size (Fig. 4.6): GTs binned by sqrt(area) in px with edges ``bins``
    (bin b holds bins[b] <= sqrt(area) < bins[b + 1]); returns (recall float64 [B] (NaN for an empty bin),
    GT count long [B]), B = len(bins) - 1. GTs outside the edges are not counted."""
    if best.shape != areas.shape:
        raise ValueError(f"best {tuple(best.shape)} and areas {tuple(areas.shape)} must match")
    edges = torch.as_tensor(bins, dtype=torch.float64)
    side = areas.double().sqrt()
    slot = torch.bucketize(side, edges, right=True) - 1  # bins[slot] <= side < bins[slot + 1]
    inside = (slot >= 0) & (slot < len(edges) - 1)
    count = torch.bincount(slot[inside], minlength=len(edges) - 1)
    hits = torch.bincount(
        slot[inside], weights=(best[inside] >= threshold).double(), minlength=len(edges) - 1
    )
    return torch.where(
        count > 0, hits / count.clamp(min=1), torch.tensor(math.nan, dtype=torch.float64)
    ), count
