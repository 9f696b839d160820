"""Monocular depth errors (Mostajabi thesis §5.5; the standard Eigen et al. set).

Over the pixels with known depth (ground truth > 0): RMSE, RMSE(log), AbsRel = mean |d - d*| / d*, SqRel =
mean (d - d*)^2 / d*, and the accuracies delta < 1.25, 1.25^2, 1.25^3 of max(d / d*, d* / d). The thesis divides
the relative errors by the *prediction* (its numbers use that); the standard divides by the ground truth, the
default here (``relative_to="prediction"`` reproduces the thesis's convention).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

_SUMS = ("count", "squared", "squared_log", "abs_rel", "sq_rel", "delta1", "delta2", "delta3")


class DepthErrors:
    """Accumulates error sums over batches (and processes); :meth:`scores` gives the means."""

    def __init__(
        self, relative_to: str = "ground-truth", min_depth: float = 1e-3, device: torch.device | str = "cpu"
    ) -> None:
        if relative_to not in ("ground-truth", "prediction"):
            raise ValueError(f"relative_to must be 'ground-truth' or 'prediction', got {relative_to!r}")
        self.relative_to, self.min_depth = relative_to, min_depth
        # On the device the processes all-reduce on (nccl needs CUDA tensors).
        self.sums = torch.zeros(len(_SUMS), dtype=torch.float64, device=device)

    def update(self, prediction: torch.Tensor, truth: torch.Tensor) -> None:
        """``prediction`` and ``truth`` in metres, same shape; truth 0 = unknown (never scored)."""
        known = truth > 0
        pred = prediction[known].double().clamp(min=self.min_depth)
        gt = truth[known].double()
        diff = pred - gt
        divisor = gt if self.relative_to == "ground-truth" else pred
        ratio = torch.maximum(pred / gt, gt / pred)
        values = [
            gt.numel(),
            (diff**2).sum(),
            ((pred.log() - gt.log()) ** 2).sum(),
            (diff.abs() / divisor).sum(),
            (diff**2 / divisor).sum(),
            *((ratio < 1.25**k).sum() for k in (1, 2, 3)),
        ]
        self.sums += torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.sums.device)

    def scores(self, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
        """The means over every pixel seen; ``reduce`` sums the sums across processes first (distributed
        evaluation passes its all-reduce; metrics stay free of any process group)."""
        totals = self.sums.clone() if reduce is None else reduce(self.sums.clone())
        sums = dict(zip(_SUMS, totals.tolist()))
        count = max(sums["count"], 1.0)
        return {
            "rmse": (sums["squared"] / count) ** 0.5,
            "rmse_log": (sums["squared_log"] / count) ** 0.5,
            "abs_rel": sums["abs_rel"] / count,
            "sq_rel": sums["sq_rel"] / count,
            "delta1": sums["delta1"] / count,
            "delta2": sums["delta2"] / count,
            "delta3": sums["delta3"] / count,
            "pixels": int(sums["count"]),
        }
