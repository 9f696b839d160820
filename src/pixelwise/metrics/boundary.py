"""Accuracy near ground-truth label edges ("trimap" accuracy, spec fcn.md "What a faithful reproduction shows").

Band definition. A valid (non-ignore) pixel ``p`` lies in the band of width ``w`` when some valid pixel
``q`` with a *different* label lies within Chebyshev distance ``w`` of it (``max(|dy|, |dx|) <= w``).
For a vertical edge between two regions this selects exactly ``w`` columns on each side of the edge
(``2w`` in all); ``w = 1`` gives the 8-connected edge pixels on both sides; ``w = 0`` gives nothing.

Ignore pixels are transparent by default: they never belong to the band and neither create nor block edges.
With ``void_as_edge=True`` the ignore label counts as a label of its own, so pixels within ``w`` of a void
region are in the band; this is the PASCAL VOC convention, where object outlines are drawn as a void band and
would otherwise hide the edge from narrow widths. Implemented with separable max-pooling (pure torch).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pixelwise.metrics.confusion import confusion_matrix, segmentation_scores


def _window_max(x: Tensor, width: int) -> Tensor:
    """Max over the (2w+1)x(2w+1) window around each pixel of ``x`` [N, H, W] (square = row o column max)."""
    k = 2 * width + 1
    x = x.unsqueeze(1)
    x = F.max_pool2d(x, kernel_size=(k, 1), stride=1, padding=(width, 0))
    x = F.max_pool2d(x, kernel_size=(1, k), stride=1, padding=(0, width))
    return x.squeeze(1)


def boundary_mask(target: Tensor, width: int, ignore_index: int = 255, void_as_edge: bool = False) -> Tensor:
    """Bool mask of the valid pixels within ``width`` pixels of a label edge; ``target`` is [H, W] or [N, H, W]."""
    if target.ndim not in (2, 3):
        raise ValueError(f"target must be [H, W] or [N, H, W], got shape {tuple(target.shape)}")
    if width < 0:
        raise ValueError(f"width must be >= 0, got {width}")
    batch = target if target.ndim == 3 else target.unsqueeze(0)
    valid = batch != ignore_index
    if width == 0:
        return torch.zeros_like(target, dtype=torch.bool)
    labels = batch.to(torch.float32)  # exact for label ids < 2**24
    if void_as_edge:  # the ignore label is just another label
        low, high = labels, labels
    else:  # ignore pixels must not win the window max / min
        low = labels.masked_fill(~valid, -float("inf"))
        high = labels.masked_fill(~valid, float("inf"))
    window_max = _window_max(low, width)
    window_min = -_window_max(-high, width)
    # p itself is in its window, so another label is present iff the window's max and min differ.
    mask = valid & (window_max != window_min)
    return mask if target.ndim == 3 else mask.squeeze(0)


class BoundaryAccuracy:
    """Accumulates pixel accuracy and a confusion matrix inside the edge band for each width.

    State (sum-reducible across DDP ranks, see :meth:`state_tensors`): ``counts`` int64 ``[len(widths), 2]``
    holding (correct, total) band pixels, and ``confusion`` int64 ``[len(widths), C, C]``.
    :meth:`compute` returns ``trimap_acc@{w}px`` and ``trimap_miou@{w}px`` (band mean IU, §3.4.1 rules).
    """

    def __init__(
        self,
        num_classes: int,
        widths: Sequence[int] = (2, 5, 10),
        ignore_index: int = 255,
        void_as_edge: bool = False,
    ) -> None:
        if not isinstance(num_classes, int):
            raise TypeError(
                f"num_classes must be an int, got {num_classes!r} (widths is the second argument)"
            )
        if len(widths) == 0 or any(w < 1 for w in widths):
            raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths!r}")
        self.num_classes = num_classes
        self.widths = tuple(int(w) for w in widths)
        self.ignore_index = ignore_index
        self.void_as_edge = void_as_edge
        self.reset()

    def reset(self, device: torch.device | str | None = None) -> None:
        """Zero the state (on ``device``, default CPU; moved to the inputs' device on the first update)."""
        self.counts = torch.zeros(len(self.widths), 2, dtype=torch.int64, device=device)
        self.confusion = torch.zeros(
            len(self.widths), self.num_classes, self.num_classes, dtype=torch.int64, device=device
        )

    def state_tensors(self) -> tuple[Tensor, Tensor]:
        """Tensors to ``all_reduce`` (SUM) in place before :meth:`compute` in distributed evaluation."""
        return self.counts, self.confusion

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of integer predictions and targets, both [H, W] or [N, H, W] of the same shape."""
        if pred.shape != target.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        if self.counts.device != target.device:
            self.counts = self.counts.to(target.device)
            self.confusion = self.confusion.to(target.device)
        pred = pred.to(target.device)
        for i, width in enumerate(self.widths):
            band = boundary_mask(target, width, self.ignore_index, self.void_as_edge)
            cm = confusion_matrix(pred[band], target[band], self.num_classes, self.ignore_index)
            self.confusion[i] += cm
            self.counts[i, 0] += cm.diagonal().sum()
            self.counts[i, 1] += cm.sum()

    def compute(self) -> dict[str, float]:
        """``{"trimap_acc@{w}px": ..., "trimap_miou@{w}px": ...}`` (NaN where a band holds no pixels)."""
        counts = self.counts.cpu()
        result: dict[str, float] = {}
        for i, width in enumerate(self.widths):
            correct, total = int(counts[i, 0]), int(counts[i, 1])
            result[f"trimap_acc@{width}px"] = correct / total if total > 0 else float("nan")
            result[f"trimap_miou@{width}px"] = segmentation_scores(self.confusion[i])["mean_iou"]
        return result
