"""Resampling between grids: the one place where a feature cell is mapped to pixels (or to another grid).

Every head and method that upsamples a tapped feature, fuses two strides or reads a feature at a pixel calls these
functions with the source and target :class:`~pixelwise.models.receptive_field.Grid`, so a cell is always read at
its true centre (Long §3.3's crop offsets, computed from the layer geometry instead of hard-coded). Interpolation
is bilinear, separable, and clamps at the border (the edge cell is replicated, as ``interpolate`` does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pixelwise.models.receptive_field import Grid

PIXELS = Grid(1, 0.0)  # the input image itself


def linear_taps(
    count: int, target: Grid, source: Grid, cells: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each of ``count`` target cells: its two source cells (low, high) and the weight of ``high``.

    Target cell j sits at pixel ``target.position(j)``, i.e. at fractional source cell ``source.cell(...)``;
    positions outside the source map clamp to its edge cells.
    """
    position = target.offset + target.stride * torch.arange(count, device=device, dtype=torch.float32)
    source_cell = ((position - source.offset) / source.stride).clamp(0, cells - 1)
    low = source_cell.floor().long().clamp(max=cells - 1)
    high = (low + 1).clamp(max=cells - 1)
    return low, high, (source_cell - low).to(torch.float32)


def _resample_dim(x: torch.Tensor, dim: int, count: int, target: Grid, source: Grid) -> torch.Tensor:
    if target == source and x.shape[dim] >= count:
        return x.narrow(dim, 0, count)
    low, high, weight = linear_taps(count, target, source, x.shape[dim], x.device)
    shape = [1] * x.dim()
    shape[dim] = count
    weight = weight.view(shape).to(x.dtype)
    return x.index_select(dim, low) * (1 - weight) + x.index_select(dim, high) * weight


def resample(x: torch.Tensor, source: Grid, target: Grid, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resampling of ``x`` [..., h, w] on ``source`` to ``size`` cells of ``target`` (both dimensions)."""
    x = _resample_dim(x, x.dim() - 2, size[0], target, source)
    return _resample_dim(x, x.dim() - 1, size[1], target, source)


def sample_at_pixels(feature: torch.Tensor, source: Grid, points: torch.Tensor) -> torch.Tensor:
    """``feature`` [N, C, h, w] read bilinearly at integer pixel coordinates ``points`` [N, S, 2] -> [N, S, C].

    Equal to ``resample(feature, source, PIXELS, size)`` gathered at the points (tested), without the dense map;
    gradients flow into ``feature`` (sparse hypercolumns, Larsson §2.3.6).
    """
    height, width = feature.shape[-2:]
    # Positions and sampling in at least float32: bfloat16 would misplace columns beyond ~256.
    work = feature if feature.dtype in (torch.float32, torch.float64) else feature.float()
    coords = points.to(work.dtype)
    # grid_sample(align_corners=True) puts -1 / +1 on the centres of the first / last cells.
    rows = ((coords[..., 0] - source.offset) / source.stride).clamp(0, height - 1)
    cols = ((coords[..., 1] - source.offset) / source.stride).clamp(0, width - 1)
    y = 2 * rows / max(height - 1, 1) - 1
    x = 2 * cols / max(width - 1, 1) - 1
    grid = torch.stack([x, y], dim=-1).unsqueeze(1)  # [N, 1, S, 2]
    sampled = F.grid_sample(work, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return sampled[:, :, 0].transpose(1, 2).to(feature.dtype)
