"""FCN-32s / 16s / 8s skip architecture (Long thesis §3.3.3, Fig. 3.3).

Coarse-to-fine: a 1x1 *score* layer on the deepest tap predicts class scores at stride 32; each finer tap gets its
own 1x1 score layer, the coarser prediction is upsampled 2x by a ConvTranspose2d initialised to bilinear
interpolation and the two are **summed** (max fusion learned badly, §3.3.3). The final prediction is upsampled to
the input size by fixed bilinear interpolation. Score layers are **zero-initialised** (§3.3.4): a 16s net built from a
trained 32s net therefore starts out computing exactly its parent's output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def bilinear_kernel(channels: int, factor: int) -> torch.Tensor:
    """Weights [channels, channels, 2f, 2f] of a transposed conv performing bilinear upsampling by ``factor``.

    Each channel maps to itself only (Long §3.3.2 "in-network upsampling"); with stride f and padding f/2 the result
    equals ``F.interpolate(..., scale_factor=f, mode="bilinear", align_corners=False)`` away from the border.
    """
    size = 2 * factor
    center = factor - 0.5  # the kernel is even-sized; its centre lies between two taps
    coords = torch.arange(size, dtype=torch.float64)
    profile = 1 - (coords - center).abs() / factor
    kernel = (profile[:, None] * profile[None, :]).float()
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = kernel
    return weight


def bilinear_upsampler(channels: int, factor: int, learnable: bool = True) -> nn.ConvTranspose2d:
    """ConvTranspose2d(kernel 2f, stride f, padding f/2, no bias) initialised to bilinear interpolation."""
    if factor < 2 or factor % 2:
        raise ValueError(f"bilinear upsampling factor must be even, got {factor}")
    layer = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(bilinear_kernel(channels, factor))
    layer.weight.requires_grad_(learnable)
    return layer


def upsample_replicate(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply an upsampling deconvolution to ``x`` padded by one replicated cell, then crop the padding away.

    A transposed conv treats the outside as zero, which darkens the border rows; replicating the edge first makes
    the bilinear-initialised layer equal ``F.interpolate(align_corners=False)`` everywhere, borders included.
    """
    if isinstance(layer, nn.Identity):
        return x
    factor = layer.stride[0]
    out = layer(F.pad(x, (1, 1, 1, 1), mode="replicate"))
    return out[..., factor:-factor, factor:-factor]


class FCNHead(nn.Module):
    """Score + fuse the taps coarse-to-fine; returns ``{"seg": logits}`` at the input resolution.

    ``channels`` / ``strides`` are ordered deepest first (as ``FeatureTaps`` gives them). Taps with equal stride
    (dilated backbones) are fused without upsampling.
    """

    def __init__(self, channels: dict[str, int], strides: dict[str, int], num_classes: int) -> None:
        super().__init__()
        self.names = list(channels)
        self.scores = nn.ModuleDict({n: nn.Conv2d(c, num_classes, 1) for n, c in channels.items()})
        for score in self.scores.values():  # §3.3.4: zero init, random init was no better
            nn.init.zeros_(score.weight)
            nn.init.zeros_(score.bias)
        self.upsample = nn.ModuleDict()
        for coarse, fine in zip(self.names, self.names[1:]):
            factor = strides[coarse] // strides[fine]
            self.upsample[fine] = bilinear_upsampler(num_classes, factor) if factor > 1 else nn.Identity()

    def fuse(self, taps: dict[str, torch.Tensor]) -> torch.Tensor:
        """Class scores at the finest tap's stride: score, upsample 2x, add the next skip's score, repeat."""
        score = self.scores[self.names[0]](taps[self.names[0]])
        for name in self.names[1:]:
            skip = self.scores[name](taps[name])
            score = upsample_replicate(self.upsample[name], score)
            score = score[..., : skip.shape[-2], : skip.shape[-1]] + skip
        return score

    def forward(self, taps: dict[str, torch.Tensor], size: tuple[int, int]) -> dict[str, torch.Tensor]:
        return {"seg": F.interpolate(self.fuse(taps), size=size, mode="bilinear", align_corners=False)}
