"""Correspondence metrics (thesis §2.2, §2.1; spec correspondence-keypoints.md "Metric: PCK").

- PCK [FMJZ08]: a predicted keypoint is correct if ||pred - gt|| < alpha * max(h, w) (strict), with (h, w) the
  ground-truth box, or the whole image where the spec scores at alpha of max(H, W) (P2). Accuracy per keypoint
  type, then the mean over types; keypoints not visible in the target are not scored (§2.2). A visible keypoint
  with no prediction (NaN) counts as wrong.
- End-point error: mean ||u_pred - u_gt|| in pixels over valid pixels, and the fraction of pixels within t px.
- Label-transfer mean IoU: one confusion matrix over all pairs through :mod:`pixelwise.metrics.confusion`; a pixel
  that received no label (``ignore_index`` in the prediction) counts against its true class.
- PSNR of a reconstruction over the pixels it covers (§2.1 quantified, spec P1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from pixelwise.metrics.confusion import confusion_matrix, segmentation_scores


def pck_thresholds(sizes: Tensor, alpha: float) -> Tensor:
    """alpha * max(h, w) for box (or image) sizes [N, 2] -> [N] pixels."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must lie in (0, 1], got {alpha}")
    if sizes.dim() != 2 or sizes.shape[1] != 2:
        raise ValueError(f"sizes must be [N, 2] (h, w), got {tuple(sizes.shape)}")
    return alpha * sizes.to(torch.float64).amax(dim=1)


def pck(pred: Tensor, gt: Tensor, visible: Tensor, threshold: float | Tensor) -> dict[str, Any]:
    """PCK of keypoints ``pred`` / ``gt`` [N, K, 2] with ``visible`` [N, K]; ``threshold`` in pixels, one value or
    one per instance [N] (``pck_thresholds``).

    Returns ``per_type`` (accuracy per keypoint type, NaN for a type never visible), ``mean`` (over the scored
    types), ``scored`` (visible count per type) and ``correct`` [N, K] (bool, False where not visible).
    """
    if pred.shape != gt.shape or pred.dim() != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred and gt must both be [N, K, 2], got {tuple(pred.shape)} and {tuple(gt.shape)}")
    if visible.shape != pred.shape[:2]:
        raise ValueError(f"visible must be [N, K] = {tuple(pred.shape[:2])}, got {tuple(visible.shape)}")
    visible = visible.bool()
    if bool(torch.isnan(gt[visible]).any()):
        raise ValueError("a visible ground-truth keypoint is NaN")
    limit = torch.as_tensor(threshold, dtype=torch.float64)
    limit = limit.view(-1, 1) if limit.dim() == 1 else limit
    distance = (pred.double() - gt.double()).norm(dim=-1)
    correct = (distance < limit) & visible  # NaN predictions compare False: wrong
    scored = visible.sum(dim=0)
    per_type = torch.where(scored > 0, correct.sum(dim=0) / scored.clamp(min=1), torch.tensor(math.nan))
    present = scored > 0
    mean = float(per_type[present].mean()) if bool(present.any()) else math.nan
    return {"per_type": per_type.tolist(), "mean": mean, "scored": scored.tolist(), "correct": correct}


def mean_over_categories(results: Mapping[str, Mapping[str, Any]]) -> float:
    """The mean of per-category PCK means (§2.2: mean over types, then over categories); NaN ones skipped."""
    values = [r["mean"] for r in results.values() if not math.isnan(r["mean"])]
    return sum(values) / len(values) if values else math.nan


def _flow_errors(pred: Tensor, gt: Tensor, valid: Tensor | None) -> Tensor:
    if pred.shape != gt.shape or pred.dim() < 3 or pred.shape[-3] != 2:
        raise ValueError(
            f"flows must be [..., 2, H, W] of one shape, got {tuple(pred.shape)} and {tuple(gt.shape)}"
        )
    error = (pred.double() - gt.double()).norm(dim=-3)
    if valid is not None:
        if valid.shape != error.shape:
            raise ValueError(f"valid must be {tuple(error.shape)}, got {tuple(valid.shape)}")
        error = error[valid.bool()]
    return error.reshape(-1)


def endpoint_error(pred: Tensor, gt: Tensor, valid: Tensor | None = None) -> float:
    """Mean end-point error (px) of flows [..., 2, H, W] over ``valid`` [..., H, W] pixels (all by default)."""
    error = _flow_errors(pred, gt, valid)
    return float(error.mean()) if error.numel() else math.nan


def flow_pck(
    pred: Tensor, gt: Tensor, thresholds: Iterable[float], valid: Tensor | None = None
) -> dict[float, float]:
    """Fraction of valid pixels whose end-point error is below each threshold (px), e.g. 4 / 8 / 16 (spec P2)."""
    error = _flow_errors(pred, gt, valid)
    return {float(t): float((error < t).double().mean()) if error.numel() else math.nan for t in thresholds}


def label_transfer_scores(
    pairs: Iterable[tuple[Tensor, Tensor]], num_classes: int, ignore_index: int = 255
) -> dict[str, Any]:
    """Segmentation scores (``segmentation_scores``) of transferred label maps over all ``(pred, target)`` pairs.

    Target pixels equal to ``ignore_index`` are not scored; a *prediction* equal to ``ignore_index`` (no label was
    transferred there) is an error of the target's class, via an extra "none" column that is then dropped.
    ``coverage`` is the fraction of scored pixels that received a label.
    """
    total = torch.zeros(num_classes + 1, num_classes + 1, dtype=torch.int64)
    for pred, target in pairs:
        none = torch.full_like(pred, num_classes)
        pred = torch.where(pred == ignore_index, none, pred)
        total += confusion_matrix(pred, target, num_classes + 1, ignore_index).cpu()
    scores = segmentation_scores(total)  # the "none" class never appears in the targets: absent, left out
    for key in ("per_class_iou", "per_class_acc", "present"):
        scores[key] = scores[key][:num_classes]
    scored = int(total.sum())
    scores["coverage"] = 1 - int(total[:, num_classes].sum()) / scored if scored else math.nan
    return scores


def psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None, peak: float = 1.0) -> float:
    """PSNR (dB) of images [C, H, W] (values in [0, peak]) over the ``mask`` [H, W] pixels (all by default)."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    squared = (pred.double() - target.double()).pow(2)
    if mask is not None:
        squared = squared[..., mask.bool()]
    if squared.numel() == 0:
        raise ValueError("psnr: the mask selects no pixel")
    mse = float(squared.mean())
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)
