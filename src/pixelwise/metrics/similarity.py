"""Representation similarity: linear CKA (Kornblith et al. 2019), to compare what two networks learnt.

Larsson §4.5.1 shows the uneven-gradients problem by eye (conv1 of C+J looks like J alone, Fig. 4.6); linear CKA
of a layer's features on the same images says it with a number: 1 for representations equal up to an
orthogonal transform and isotropic scale, near 0 for unrelated ones.
"""

from __future__ import annotations

import torch


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """CKA of features ``x`` [n, d1] and ``y`` [n, d2] of the same n samples: ||Yc^T Xc||_F^2 /
    (||Xc^T Xc||_F ||Yc^T Yc||_F) with column-centred Xc, Yc (computed in float64)."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"linear_cka needs [n, d] features of the same n samples, got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    x = x.double() - x.double().mean(dim=0)
    y = y.double() - y.double().mean(dim=0)
    cross = (y.t() @ x).pow(2).sum()
    norm = (x.t() @ x).norm() * (y.t() @ y).norm()
    return float(cross / norm) if norm > 0 else 0.0
