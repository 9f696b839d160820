"""Approximate upper bounds on IU for prediction at a coarse stride (thesis §3.5).

§3.5: "downsampling ground truth images and then up-sampling them again to simulate the best results
obtainable with a particular downsampling factor", scored by mean IU (thesis VOC numbers: factor 128 -> 50.9,
64 -> 73.3, 32 -> 86.1, 16 -> 92.8, 8 -> 96.4, 4 -> 98.5). The thesis does not state the resampling; we use:

* downsample by nearest neighbour: cell ``k`` (rows ``k*f .. k*f+f-1``) takes the label of pixel
  ``k*f + f//2`` (its centre; ``sample="corner"`` takes ``k*f``), clamped to the image for a partial last cell;
* upsample by nearest neighbour (replication): pixel ``i`` gets the label of cell ``i // f``;
* score against the original ground truth with :func:`confusion_matrix` (ignore pixels of the original dropped).

A cell whose sample is an ignore pixel yields no class: its pixels count as misclassified (a false negative
of their true class, in an extra "no prediction" column that belongs to no class), which keeps the bound
conservative rather than silently dropping those pixels.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from torch import Tensor

from pixelwise.metrics.confusion import check_label_range, confusion_matrix, segmentation_scores

Sample = Literal["center", "corner"]


def _sample_positions(size: int, factor: int, sample: Sample, device: torch.device) -> Tensor:
    offset = factor // 2 if sample == "center" else 0
    starts = torch.arange(0, size, factor, device=device)
    return (starts + offset).clamp(max=size - 1)


def down_up_sample(target: Tensor, factor: int, sample: Sample = "center") -> Tensor:
    """Nearest-downsample ``target`` [..., H, W] by ``factor`` and replicate back to [..., H, W]."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    if sample not in ("center", "corner"):
        raise ValueError(f"sample must be 'center' or 'corner', got {sample!r}")
    height, width = target.shape[-2:]
    rows = _sample_positions(height, factor, sample, target.device)
    cols = _sample_positions(width, factor, sample, target.device)
    coarse = target.index_select(-2, rows).index_select(-1, cols)
    up_rows = torch.arange(height, device=target.device) // factor
    up_cols = torch.arange(width, device=target.device) // factor
    return coarse.index_select(-2, up_rows).index_select(-1, up_cols)


def upper_bound_confusion(
    targets: Iterable[Tensor] | Tensor,
    factor: int,
    num_classes: int,
    ignore_index: int = 255,
    sample: Sample = "center",
) -> Tensor:
    """Summed ``[C+1, C+1]`` confusion matrix of down-up-sampled vs original ground truth.

    Index ``C`` is the "no prediction" class of cells sampled on ignore pixels; its row is always empty, so
    :func:`segmentation_scores` excludes it from the means as an absent class.
    """
    if isinstance(targets, Tensor) and targets.ndim == 2:
        targets = [targets]
    total: Tensor | None = None
    for target in targets:
        check_label_range(target[target != ignore_index], num_classes, "target")
        coarse = down_up_sample(target, factor, sample)
        pred = coarse.masked_fill(coarse == ignore_index, num_classes)
        cm = confusion_matrix(pred, target, num_classes + 1, ignore_index)
        total = cm if total is None else total + cm.to(total.device)
    if total is None:
        raise ValueError("targets is empty")
    return total


def iu_upper_bound(
    targets: Iterable[Tensor] | Tensor,
    factor: int,
    num_classes: int,
    ignore_index: int = 255,
    sample: Sample = "center",
) -> float:
    """Mean IU (§3.4.1, present classes only) attainable by predicting at stride ``factor`` (§3.5).

    ``targets``: ground-truth label maps, each [H, W] or [N, H, W] (sizes may differ between items).
    Factor 1 reproduces the ground truth exactly and gives 1.0.
    """
    cm = upper_bound_confusion(targets, factor, num_classes, ignore_index, sample)
    return segmentation_scores(cm)["mean_iou"]
