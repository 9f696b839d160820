"""Zoom-out pooling: feature maps of any stride averaged over superpixels and boxes (Mostajabi thesis §3.3.1.1).

A layer's map is upsampled bilinearly to the image (from its true cell centres, models.resample) and averaged over each superpixel (Fig. 3.4). Both steps are
linear, so together they are one sparse [superpixels x cells] matrix of area weights: the full-resolution maps are
never materialised (a stride-4 ResNet stage at 360x480 would be 64 x 172,800 floats per image).
"""

from __future__ import annotations

import torch

from pixelwise.models.receptive_field import Grid
from pixelwise.models.resample import PIXELS, linear_taps


def superpixel_pooling_matrix(segments: torch.Tensor, cells: tuple[int, int], grid: Grid) -> torch.Tensor:
    """Sparse [K, h*w]: row s averages the bilinear upsampling of an h x w map on ``grid`` over superpixel s.

    ``segments`` [H, W] holds ids 0..K-1; the map may cover more than H x W (padded input), the extra is unused.
    """
    height, width = segments.shape
    device = segments.device
    y0, y1, wy1 = linear_taps(height, PIXELS, grid, cells[0], device)  # the same taps as models.resample
    x0, x1, wx1 = linear_taps(width, PIXELS, grid, cells[1], device)
    wy0, wx0 = 1 - wy1, 1 - wx1
    count = int(segments.max()) + 1
    area = torch.bincount(segments.flatten(), minlength=count).float()
    rows, columns, weights = [], [], []
    for ys, wy in ((y0, wy0), (y1, wy1)):
        for xs, wx in ((x0, wx0), (x1, wx1)):
            rows.append(segments.flatten())
            columns.append((ys[:, None] * cells[1] + xs[None, :]).flatten())
            weights.append((wy[:, None] * wx[None, :]).flatten() / area[segments.flatten()])
    indices = torch.stack([torch.cat(rows), torch.cat(columns)])
    shape = (count, cells[0] * cells[1])
    return torch.sparse_coo_tensor(indices, torch.cat(weights), shape, check_invariants=False).coalesce()


def pool_superpixels(feature: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """One image's map [C, h, w] -> [K, C] superpixel means (differentiable in ``feature``)."""
    return torch.sparse.mm(matrix, feature.flatten(1).t().float()).to(feature.dtype)


def _nearest_cell(pixels: torch.Tensor, grid: Grid, cells: int) -> torch.Tensor:
    return torch.floor((pixels - grid.offset) / grid.stride + 0.5).long().clamp(0, cells - 1)


def pool_boxes(feature: torch.Tensor, boxes: torch.Tensor, grid: Grid) -> torch.Tensor:
    """One image's map [C, h, w] on ``grid`` -> [K, C] means over the cells nearest to pixel boxes [K, 4] (top,
    left, bottom, right, inclusive; the cells from the one nearest the first pixel to the one nearest the last):
    an integral image, so every box costs the same."""
    channels, height, width = feature.shape
    integral = torch.zeros(channels, height + 1, width + 1, dtype=torch.float32, device=feature.device)
    integral[:, 1:, 1:] = feature.float().cumsum(1).cumsum(2)
    top, left = _nearest_cell(boxes[:, 0], grid, height), _nearest_cell(boxes[:, 1], grid, width)
    bottom = _nearest_cell(boxes[:, 2], grid, height) + 1
    right = _nearest_cell(boxes[:, 3], grid, width) + 1
    total = (
        integral[:, bottom, right]
        - integral[:, top, right]
        - integral[:, bottom, left]
        + integral[:, top, left]
    )
    area = ((bottom - top) * (right - left)).clamp(min=1)
    return (total / area).t().to(feature.dtype)
