"""Hypercolumn head (Larsson thesis §2.3.5-2.3.6): per-pixel descriptors from many layers, sparse or dense.

A pixel's hypercolumn concatenates every tapped layer's feature vector at that pixel, each layer bilinearly
interpolated at the pixel centre. Training uses **sparse** hypercolumns: S random pixels per image, sampled with
``F.grid_sample`` so gradients flow back into every layer, and the expensive per-pixel MLP runs on S points only
(Table 2.1: 64-256 samples per image are as good as dense). Inference runs the same MLP densely at reduced
resolution. Pixel p maps to fractional cell (p - offset) / stride of a layer's grid (ResNet offset 0, VGG
(stride-1)/2); sampling there equals dense bilinear upsampling to pixels followed by gathering p (tested).
"""

from __future__ import annotations

import torch
from torch import nn

from pixelwise.models.receptive_field import Grid
from pixelwise.models.resample import resample, sample_at_pixels


def sample_hypercolumns(
    taps: dict[str, torch.Tensor], grids: dict[str, Grid], points: torch.Tensor
) -> torch.Tensor:
    """Hypercolumns [N, S, sum C_l] at integer pixel coordinates ``points`` [N, S, 2] = (row, col)."""
    return torch.cat(
        [sample_at_pixels(feature, grids[name], points) for name, feature in taps.items()], dim=-1
    )


def dense_hypercolumns(
    taps: dict[str, torch.Tensor], grids: dict[str, Grid], size: tuple[int, int], scale: int = 1
) -> torch.Tensor:
    """Hypercolumns [N, sum C_l, H/scale, W/scale] on the block grid of ``scale`` (cell j covers pixels
    scale*j .. scale*j + scale-1; centre scale*j + (scale-1)/2), every tap resampled there bilinearly."""
    target = Grid.block(scale)
    cells = (size[0] // scale, size[1] // scale)
    return torch.cat([resample(feature, grids[name], target, cells) for name, feature in taps.items()], dim=1)


def random_points(
    batch: int, samples: int, size: tuple[int, int], generator: torch.Generator | None = None
) -> torch.Tensor:
    """S uniformly random pixel coordinates per image: [N, S, 2] (row, col)."""
    rows = torch.randint(0, size[0], (batch, samples), generator=generator)
    cols = torch.randint(0, size[1], (batch, samples), generator=generator)
    return torch.stack([rows, cols], dim=-1)


class HypercolumnHead(nn.Module):
    """Hypercolumn -> FC ``hidden`` (ReLU) -> one linear output per named target (e.g. hue and chroma bins).

    ``forward(taps, points=...)`` returns sparse outputs ``{name: [N, S, K]}``; without points, dense outputs
    ``{name: [N, K, H/scale, W/scale]}`` for an input of ``size``.
    """

    def __init__(
        self, channels: dict[str, int], grids: dict[str, Grid], outputs: dict[str, int], hidden: int = 1024
    ) -> None:
        super().__init__()
        self.grids = dict(grids)
        self.hidden = nn.Sequential(nn.Linear(sum(channels.values()), hidden), nn.ReLU(inplace=True))
        self.outputs = nn.ModuleDict({name: nn.Linear(hidden, size) for name, size in outputs.items()})

    def forward(
        self,
        taps: dict[str, torch.Tensor],
        points: torch.Tensor | None = None,
        size: tuple[int, int] | None = None,
        scale: int = 4,
    ) -> dict[str, torch.Tensor]:
        if points is not None:
            hidden = self.hidden(sample_hypercolumns(taps, self.grids, points))
            return {name: layer(hidden) for name, layer in self.outputs.items()}
        if size is None:
            raise ValueError("dense hypercolumn prediction needs the input size")
        columns = dense_hypercolumns(taps, self.grids, size, scale).movedim(1, -1)  # [N, h, w, C]
        hidden = self.hidden(columns)
        return {name: layer(hidden).movedim(-1, 1) for name, layer in self.outputs.items()}
