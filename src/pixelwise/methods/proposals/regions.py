"""Where a region lives in the image: window geometry and the bilinear upsampling of region masks (§4.3.3 step 5).

Region (i, j) of a pathway on ``Grid(s, o)`` with a W x W window (r = W // 2) is centred on pixel
(o + s i, o + s j) and covers cells i - r .. i + r. At full resolution its window spans W s pixels per axis: the
pixels t = -(r s + s // 2) .. r s + s - 1 - s // 2 around the centre pixel (floor(o + 1/2) + s i), i.e. each cell owns
the s pixels nearest its centre (for even s the extra pixel goes up / left). A pixel's logit interpolates the cell
logits bilinearly at its fractional cell coordinate, clamped at the window's outer cells (edge replicated), so the
upsampling is the matrix product U P U^T with U [W s, W] fixed (:func:`upsampling_matrix`); gradients flow back
through it (footnote 3: the ground truth is never downsampled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from pixelwise.models.receptive_field import Grid


@dataclass(frozen=True)
class Window:
    """A pathway's region geometry: its centre grid, window cells ``size`` (odd) and pixel offsets."""

    grid: Grid
    size: int

    @property
    def radius(self) -> int:
        return self.size // 2

    @property
    def first(self) -> int:
        """Pixel offset of the window's first row / column from the centre pixel (<= 0)."""
        s = self.grid.stride
        return -(self.radius * s + s // 2)

    @property
    def pixels(self) -> int:
        """Window side in pixels: W s."""
        return self.size * self.grid.stride

    @property
    def origin(self) -> int:
        """Centre pixel of cell 0 (the grid offset rounded half up)."""
        return math.floor(self.grid.offset + 0.5)

    def centre_pixels(self, cells: int) -> torch.Tensor:
        """Integer centre pixel of cells 0 .. cells - 1 [cells]."""
        return self.origin + self.grid.stride * torch.arange(cells)


@lru_cache(maxsize=32)
def _upsampling_matrix(size: int, stride: int, shift: float) -> torch.Tensor:
    r, first = size // 2, -((size // 2) * stride + stride // 2)
    t = torch.arange(size * stride, dtype=torch.float64) + first + shift  # pixel offset from the true centre
    u = (t / stride + r).clamp(0, size - 1)  # fractional cell within the window
    low = u.floor().long().clamp(max=size - 1)
    high = (low + 1).clamp(max=size - 1)
    weight = u - low
    matrix = torch.zeros(size * stride, size, dtype=torch.float64)
    matrix[torch.arange(len(t)), low] += 1 - weight
    matrix[torch.arange(len(t)), high] += weight
    return matrix.float()


def upsampling_matrix(window: Window) -> torch.Tensor:
    """U [W s, W]: row t holds the bilinear weights of window pixel t on the W cells (rows sum to 1)."""
    shift = window.origin - window.grid.offset  # rounding the centre to a pixel moves every pixel by this
    return _upsampling_matrix(window.size, window.grid.stride, float(shift))


def upsample_regions(patches: torch.Tensor, window: Window) -> torch.Tensor:
    """Coarse region logits [M, W, W] -> full-resolution window logits [M, W s, W s] (bilinear, differentiable)."""
    matrix = upsampling_matrix(window).to(patches)
    return matrix @ patches @ matrix.T  # two batched matmuls: far faster than the 3-operand einsum on CPU


def region_patches(logits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """The W x W coarse logits [M, W, W] of regions (rows[m], cols[m]) of one image's map [W^2, h, w]."""
    size = math.isqrt(logits.shape[0])
    return logits[:, rows, cols].T.reshape(-1, size, size)


def label_windows(
    labels: torch.Tensor, window: Window, cells: tuple[int, int], outside: int = -1
) -> torch.Tensor:
    """The full-resolution window of every region centre of a [h, w] grid over an integer map [H, W]:
    [h, w, W s, W s], ``outside`` where the window leaves the image."""
    height, width = labels.shape
    h, w = cells
    s, first, side = window.grid.stride, window.first, window.pixels
    top = -first - window.origin  # padding so that window (i, j) starts at padded row s i
    bottom = max(0, s * (h - 1) + side - top - height)
    right = max(0, s * (w - 1) + side - top - width)
    padded = torch.full((height + top + bottom, width + top + right), outside, dtype=torch.int32)
    padded[top : top + height, top : top + width] = labels.to(torch.int32)
    if top < 0:  # an origin beyond the window's reach: crop instead of pad
        raise ValueError(f"grid offset {window.grid.offset} is larger than the window reaches")
    strided = padded.unfold(0, side, s).unfold(1, side, s)  # [rows, cols, side, side]
    return strided[:h, :w]
