"""Zoom-out pooling: feature maps of any stride averaged over superpixels and boxes (Mostajabi thesis §3.3.1.1).

A layer's map is upsampled bilinearly to the image and averaged over each superpixel (Fig. 3.4). Both steps are
linear, so together they are one sparse [superpixels x cells] matrix of area weights: the full-resolution maps are
never materialised (a stride-4 ResNet stage at 360x480 would be 64 x 172,800 floats per image).
"""

from __future__ import annotations

import torch


def _bilinear_taps(size: int, cells: int, stride: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """For each of ``size`` pixels: its two source cells and their weights under bilinear upsampling by ``stride``
    with ``align_corners=False`` (what ``F.interpolate`` does; sources left of the first centre clamp to it)."""
    source = ((torch.arange(size, device=device) + 0.5) / stride - 0.5).clamp(min=0)
    low = source.floor().long().clamp(max=cells - 1)
    high = (low + 1).clamp(max=cells - 1)
    weight_high = (source - low).clamp(0, 1)
    return low, high, 1 - weight_high, weight_high


def superpixel_pooling_matrix(segments: torch.Tensor, cells: tuple[int, int], stride: int) -> torch.Tensor:
    """Sparse [K, h*w]: row s averages the bilinear upsampling of an h x w, stride-``stride`` map over superpixel s.

    ``segments`` [H, W] holds ids 0..K-1; the map may cover more than H x W (padded input), the extra is unused.
    """
    height, width = segments.shape
    device = segments.device
    y0, y1, wy0, wy1 = _bilinear_taps(height, cells[0], stride, device)
    x0, x1, wx0, wx1 = _bilinear_taps(width, cells[1], stride, device)
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


def pool_boxes(feature: torch.Tensor, boxes: torch.Tensor, stride: int) -> torch.Tensor:
    """One image's map [C, h, w] -> [K, C] means over the cells under pixel boxes [K, 4] (top, left, bottom,
    right, inclusive): an integral image, so every box costs the same."""
    channels, height, width = feature.shape
    integral = torch.zeros(channels, height + 1, width + 1, dtype=torch.float32, device=feature.device)
    integral[:, 1:, 1:] = feature.float().cumsum(1).cumsum(2)
    top, left = (boxes[:, 0] // stride).clamp(max=height - 1), (boxes[:, 1] // stride).clamp(max=width - 1)
    bottom = (boxes[:, 2] // stride).clamp(max=height - 1) + 1
    right = (boxes[:, 3] // stride).clamp(max=width - 1) + 1
    total = (
        integral[:, bottom, right]
        - integral[:, top, right]
        - integral[:, bottom, left]
        + integral[:, top, left]
    )
    area = ((bottom - top) * (right - left)).clamp(min=1)
    return (total / area).t().to(feature.dtype)
