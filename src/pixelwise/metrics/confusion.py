"""Confusion matrix and the four segmentation scores of thesis §3.4.1.

Notation (thesis §3.4.1): ``n_ij`` is the number of pixels of ground-truth class ``i`` predicted as class
``j``; ``t_i = sum_j n_ij`` is the number of ground-truth pixels of class ``i``; ``n_cl`` is the number of
classes. Rows of the confusion matrix are ground truth, columns are predictions.

Absent classes. A class with ``t_i = 0`` (absent from the ground truth of the whole evaluated split) is left
out of every mean, i.e. ``n_cl`` counts present classes only, and its per-class accuracy / IU is NaN.
This follows the SIFT Flow footnote of §3.4.2 ("only included categories actually present in the test set").
Predictions *of* an absent class are still false positives of the pixels' true classes and therefore still
lower those classes' accuracy and IU (they appear in column ``j`` of another class's row ``i``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

_MAX_REPORTED_VALUES = 10


def _check_integer(x: Tensor, what: str) -> None:
    if torch.is_floating_point(x) or torch.is_complex(x):
        raise TypeError(
            f"{what} must be an integer label tensor, got dtype {x.dtype} (take argmax of logits first)"
        )


def check_label_range(values: Tensor, num_classes: int, what: str) -> None:
    """Raise ``ValueError`` naming the offending values if any entry lies outside ``[0, num_classes)``.

    Catches label-encoding mistakes (e.g. an unmapped void colour or 1-based class ids) that would otherwise
    silently produce a 0 or NaN IU.
    """
    bad = (values < 0) | (values >= num_classes)
    if bool(bad.any()):
        found = torch.unique(values[bad]).tolist()
        shown = ", ".join(str(v) for v in found[:_MAX_REPORTED_VALUES])
        more = f" (and {len(found) - _MAX_REPORTED_VALUES} more)" if len(found) > _MAX_REPORTED_VALUES else ""
        raise ValueError(
            f"{what} contains values outside [0, {num_classes}) that are not the ignore index: {shown}{more}"
        )


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """Return the ``[num_classes, num_classes]`` int64 matrix ``n_ij`` (rows: ground truth, columns: prediction).

    ``pred`` and ``target`` are integer label tensors of the same (any) shape. Pixels whose target equals
    ``ignore_index`` are dropped. Remaining target values and the predictions at those pixels must lie in
    ``[0, num_classes)``, else ``ValueError``. Computed with one ``torch.bincount`` on the inputs' device, so
    matrices of several batches (or DDP ranks, via ``all_reduce``) are combined by summation.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    _check_integer(pred, "pred")
    _check_integer(target, "target")
    keep = target != ignore_index
    t = target[keep].to(torch.int64)
    p = pred.to(target.device)[keep].to(torch.int64)
    check_label_range(t, num_classes, "target")
    check_label_range(p, num_classes, "pred")
    counts = torch.bincount(num_classes * t + p, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def _nan_where(values: Tensor, absent: Tensor) -> Tensor:
    return torch.where(absent, torch.full_like(values, math.nan), values)


def segmentation_scores(cm: Tensor, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Pixel acc., mean acc., mean IU and f.w. IU (thesis §3.4.1) from an accumulated confusion matrix.

    Returns plain Python floats/lists: ``pixel_acc``, ``mean_acc``, ``mean_iou``, ``fw_iou``,
    ``per_class_iou``, ``per_class_acc`` (NaN for classes absent from the ground truth), ``present``
    (``t_i > 0``) and, when ``class_names`` is given, ``per_class_iou_named``. Means run over present classes
    only (module docstring). With no ground-truth pixels at all every score is NaN.
    Use :func:`scores_to_json` before ``json.dump`` (NaN is not valid JSON).
    """
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square 2-D, got shape {tuple(cm.shape)}")
    if class_names is not None and len(class_names) != cm.shape[0]:
        raise ValueError(f"{len(class_names)} class names for a {cm.shape[0]}-class confusion matrix")
    n = cm.detach().to("cpu", torch.float64)  # tiny; float64 keeps exact ratios for large pixel counts
    n_ii = n.diagonal()
    t = n.sum(dim=1)  # t_i = sum_j n_ij (ground-truth pixels of class i)
    predicted = n.sum(dim=0)  # sum_j n_ji (pixels predicted as class i)
    present = t > 0
    absent = ~present
    acc = _nan_where(n_ii / t.clamp(min=1), absent)  # n_ii / t_i
    iou = _nan_where(n_ii / (t + predicted - n_ii).clamp(min=1), absent)  # n_ii / (t_i + sum_j n_ji - n_ii)
    total = t.sum()
    nan = math.nan
    scores: dict[str, Any] = {
        "pixel_acc": float(n_ii.sum() / total) if total > 0 else nan,  # sum_i n_ii / sum_i t_i
        "mean_acc": float(acc[present].mean()) if present.any() else nan,  # (1/n_cl) sum_i n_ii / t_i
        "mean_iou": float(iou[present].mean()) if present.any() else nan,  # (1/n_cl) sum_i IU_i
        "fw_iou": float((t[present] * iou[present]).sum() / total) if total > 0 else nan,  # (sum t_k)^-1 ...
        "per_class_iou": iou.tolist(),
        "per_class_acc": acc.tolist(),
        "present": present.tolist(),
    }
    if class_names is not None:
        scores["per_class_iou_named"] = dict(zip(class_names, scores["per_class_iou"]))
    return scores


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):  # NaN (absent class) or inf: not valid JSON
        return None
    if isinstance(value, Mapping):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def scores_to_json(scores: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``scores`` with every NaN/inf float (nested in dicts/lists too) replaced by ``None``."""
    return _nan_to_none(scores)
