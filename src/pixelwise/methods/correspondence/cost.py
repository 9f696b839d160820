"""The data term of conv flow (thesis §2.2, first sum of the energy): D_p(w) = ||f_s(p) - f_t(p + w)||_2.

Labels are the integer displacements w = (dy, dx) in cells of a (2r+1) x (2r+1) search window, the same set for
every cell, so the pairwise term compares labels of neighbouring cells directly. A displacement that leaves the
target grid costs +inf (spec: "+inf data cost for displacements that leave the image"). The norm is the plain
(not squared) L2 norm, as the thesis writes it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def displacements(radius: int) -> torch.Tensor:
    """The label set [(2r+1)^2, 2] of (dy, dx) in cells, row-major: label l = (dy + r) * (2r+1) + (dx + r)."""
    if radius < 0:
        raise ValueError(f"search radius must be >= 0 cells, got {radius}")
    steps = torch.arange(-radius, radius + 1)
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([dy.reshape(-1), dx.reshape(-1)], dim=1)


def data_cost(source: torch.Tensor, target: torch.Tensor, radius: int) -> torch.Tensor:
    """Cost volume [h, w, 2r+1, 2r+1]: entry (y, x, dy+r, dx+r) = ||source[:, y, x] - target[:, y+dy, x+dx]||_2.

    ``source`` [C, h, w] and ``target`` [C, h_t, w_t] are feature maps on the same stage's grid (the target may
    be another size). Costs of displacements leaving the target are +inf.
    """
    if source.dim() != 3 or target.dim() != 3 or source.shape[0] != target.shape[0]:
        raise ValueError(
            f"source and target must be [C, h, w] with one C, got {tuple(source.shape)} and {tuple(target.shape)}"
        )
    _, h, w = source.shape
    _, h_t, w_t = target.shape
    k = 2 * radius + 1
    # Pad the target by r on every side (and to at least the source size) so every shifted window is a slice.
    pad_bottom, pad_right = radius + max(0, h - h_t), radius + max(0, w - w_t)
    padded = F.pad(target, (radius, pad_right, radius, pad_bottom))
    valid = F.pad(
        torch.ones(1, h_t, w_t, dtype=torch.bool, device=target.device),
        (radius, pad_right, radius, pad_bottom),
    )
    cost = torch.empty(h, w, k, k, dtype=source.dtype, device=source.device)
    # One displacement at a time keeps memory at O(C h w) (a full [C, h, w, L] difference would not fit for
    # wide windows); the loop is over (2r+1)^2 vectorised slices.
    for i in range(k):
        for j in range(k):
            shifted = padded[:, i : i + h, j : j + w]
            distance = (source - shifted).norm(dim=0)
            cost[:, :, i, j] = distance.masked_fill(~valid[0, i : i + h, j : j + w], float("inf"))
    return cost
