"""Pairwise operations on four-index region outputs (Long thesis §4.3.1-4.3.2).

A pathway's output p(x, Delta) is a map [N, |R|, h, w]: at every region centre x of its grid, one logit per offset
Delta = (dy, dx) of the square window R = {-r..r}^2 (cells of the same grid), "are x and x + Delta in the same
object?". Channel c holds Delta = (c // W - r, c % W - r) with W = 2r + 1, so R = -R and the channel of -Delta is
|R| - 1 - c (the thesis' even windows of Table 4.1 would break that symmetry: we use odd W, a documented deviation).

- :func:`transpose` p^T(x, Delta) = p(x + Delta, -Delta) swaps the two absolute arguments (§4.3.2): output (x, Delta)
  is computed from the features under x + Delta, the point itself, not under the centre. Zero where x + Delta
  leaves the map; an involution wherever it is defined.
- :func:`pairwise_product` p12(x, Delta) = (+)_delta p1(x, delta) (x) p2(x + delta, Delta - delta) over a semiring
  ((+, x) or (min, +): shortest paths). The final network uses only the transpose and a shared matrix (§4.3.3);
  the product is the design space the section describes, kept small and tested.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

SEMIRINGS = ("sum-product", "min-sum")


def window_size(channels: int) -> int:
    """W of a |R| = W^2 channel region map; W must be odd so that R = -R."""
    size = math.isqrt(channels)
    if size * size != channels or size % 2 == 0:
        raise ValueError(f"a region map needs W^2 channels with W odd (R = -R), got {channels}")
    return size


def offsets(size: int) -> torch.Tensor:
    """Delta (dy, dx) of every channel [W^2, 2] of a W x W window, in cells."""
    r = size // 2
    dy, dx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
    return torch.stack([dy.reshape(-1), dx.reshape(-1)], dim=1)


@lru_cache(maxsize=32)
def _transpose_index(size: int, height: int, width: int) -> torch.Tensor:
    """For every channel Delta and cell x of an [h, w] map: the flat index of x + Delta in the map padded by r."""
    r = size // 2
    padded = width + 2 * r
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    delta = offsets(size)
    target_rows = rows[None] + r + delta[:, 0, None, None]  # [W^2, h, w]
    target_cols = cols[None] + r + delta[:, 1, None, None]
    return (target_rows * padded + target_cols).reshape(size * size, -1)


def transpose(p: torch.Tensor) -> torch.Tensor:
    """p^T(x, Delta) = p(x + Delta, -Delta) of a region map [N, W^2, h, w]; 0 where x + Delta is off the map."""
    n, channels, height, width = p.shape
    size = window_size(channels)
    r = size // 2
    mirrored = p.flip(1)  # channel of -Delta
    padded = torch.nn.functional.pad(mirrored, (r, r, r, r)).flatten(2)  # [N, W^2, (h + 2r)(w + 2r)]
    index = _transpose_index(size, height, width).to(p.device)
    return padded.gather(2, index[None].expand(n, -1, -1)).reshape(n, channels, height, width)


def _shift(p: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """Map [N, C, h, w] read at x + (dy, dx); ``fill`` where that leaves the map."""
    out = torch.full_like(p, fill)
    h, w = p.shape[-2:]
    rows_out, rows_in = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    cols_out, cols_in = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    out[..., rows_out, cols_out] = p[..., rows_in, cols_in]
    return out


def pairwise_product(p1: torch.Tensor, p2: torch.Tensor, semiring: str = "sum-product") -> torch.Tensor:
    """p12(x, Delta) = (+)_delta p1(x, delta) (x) p2(x + delta, Delta - delta), delta and Delta - delta in R.

    ``semiring`` "sum-product" is (+, x) (zero where x + delta leaves the map), "min-sum" is (min, +) (+inf
    there). Cost O(|R|^2 h w): a design-space operation (§4.3.2), not one of the final network's layers.
    """
    if semiring not in SEMIRINGS:
        raise ValueError(f"unknown semiring {semiring!r}; choose from {', '.join(SEMIRINGS)}")
    if p1.shape != p2.shape:
        raise ValueError(f"p1 {tuple(p1.shape)} and p2 {tuple(p2.shape)} differ in shape")
    size = window_size(p1.shape[1])
    r, delta = size // 2, offsets(size)
    sum_product = semiring == "sum-product"
    fill = 0.0 if sum_product else math.inf
    out = torch.full_like(p1, fill)
    for d, (dy, dx) in enumerate(delta.tolist()):
        moved = _shift(p2, dy, dx, fill)  # p2(x + delta, .)
        rest = delta - torch.tensor([dy, dx])  # Delta - delta' for every output Delta... reindexed below
        for c, (ry, rx) in enumerate(rest.tolist()):
            if abs(ry) > r or abs(rx) > r:
                continue
            other = (ry + r) * size + (rx + r)  # the channel of Delta - delta in p2
            term = p1[:, d] * moved[:, other] if sum_product else p1[:, d] + moved[:, other]
            out[:, c] = out[:, c] + term if sum_product else torch.minimum(out[:, c], term)
    return out
