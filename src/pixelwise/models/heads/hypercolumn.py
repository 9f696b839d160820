"""Hypercolumn head (Larsson thesis §2.3.5-2.3.6): per-pixel descriptors from many layers, sparse or dense.

A pixel's hypercolumn concatenates every tapped layer's feature vector at that pixel, each layer bilinearly
interpolated at the pixel centre. Training uses **sparse** hypercolumns: S random pixels per image, sampled with
``F.grid_sample`` so gradients flow back into every layer, and the expensive per-pixel MLP runs on S points only
(Table 2.1: 64-256 samples per image are as good as dense). Inference runs the same MLP densely at reduced
resolution. Pixel p maps to (p + 0.5) / stride - 0.5 in a layer of that stride; sampling there equals dense
bilinear upsampling (align_corners=False) followed by gathering p, which the tests check.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def sample_hypercolumns(
    taps: dict[str, torch.Tensor], strides: dict[str, int], points: torch.Tensor
) -> torch.Tensor:
    """Hypercolumns [N, S, sum C_l] at integer pixel coordinates ``points`` [N, S, 2] = (row, col)."""
    columns = []
    for name, feature in taps.items():
        stride = strides[name]
        height, width = feature.shape[-2:]
        # grid_sample(align_corners=False) puts -1 / +1 at the outer edges of the map, so the centre of input
        # pixel p, at (p + 0.5) / stride in layer units, is 2 (p + 0.5) / (stride * size) - 1.
        coords = points.to(feature.dtype)
        y = 2 * (coords[..., 0] + 0.5) / (stride * height) - 1
        x = 2 * (coords[..., 1] + 0.5) / (stride * width) - 1
        grid = torch.stack([x, y], dim=-1).unsqueeze(1)  # [N, 1, S, 2]
        sampled = F.grid_sample(feature, grid, mode="bilinear", padding_mode="border", align_corners=False)
        columns.append(sampled[:, :, 0].transpose(1, 2))  # [N, S, C_l]
    return torch.cat(columns, dim=-1)


def dense_hypercolumns(
    taps: dict[str, torch.Tensor], strides: dict[str, int], size: tuple[int, int], scale: int = 1
) -> torch.Tensor:
    """Hypercolumns [N, sum C_l, H/scale, W/scale] by bilinear upsampling of every tap (reduced-resolution inference)."""
    height, width = size[0] // scale, size[1] // scale
    upsampled = []
    for name, feature in taps.items():
        stride = strides[name]
        # Integer arithmetic (ONNX export traces shapes symbolically and has no round()); a layer of stride s holds
        # ceil(H / s) cells, so cells * s // scale >= H // scale rows, cropped below.
        target = (feature.shape[-2] * stride // scale, feature.shape[-1] * stride // scale)
        up = (
            F.interpolate(feature, size=target, mode="bilinear", align_corners=False)
            if stride != scale
            else feature
        )
        upsampled.append(up[..., :height, :width])
    return torch.cat(upsampled, dim=1)


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
        self, channels: dict[str, int], strides: dict[str, int], outputs: dict[str, int], hidden: int = 1024
    ) -> None:
        super().__init__()
        self.strides = dict(strides)
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
            hidden = self.hidden(sample_hypercolumns(taps, self.strides, points))
            return {name: layer(hidden) for name, layer in self.outputs.items()}
        if size is None:
            raise ValueError("dense hypercolumn prediction needs the input size")
        columns = dense_hypercolumns(taps, self.strides, size, scale).movedim(1, -1)  # [N, h, w, C]
        hidden = self.hidden(columns)
        return {name: layer(hidden).movedim(-1, 1) for name, layer in self.outputs.items()}
