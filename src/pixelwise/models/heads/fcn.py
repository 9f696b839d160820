"""FCN-32s / 16s / 8s skip architecture (Long thesis §3.3.3, Fig. 3.3).

Coarse-to-fine: a 1x1 *score* layer on the deepest tap predicts class scores at stride 32; each finer tap gets its
own 1x1 score layer, the coarser prediction is upsampled 2x by a ConvTranspose2d initialised to bilinear
interpolation and the two are **summed** (max fusion learned badly, §3.3.3). The final prediction is upsampled to
the input size by fixed bilinear interpolation. Both know where each cell sits (the grids of
:mod:`~pixelwise.models.receptive_field`): a ResNet cell i of stride s is at pixel s*i, not s*i + (s-1)/2.
Score layers are **zero-initialised** (§3.3.4): a 16s net built from a trained 32s net therefore starts out
computing exactly its parent's output.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.models.receptive_field import Grid
from pixelwise.models.resample import PIXELS, resample


def bilinear_kernel(channels: int, factor: int, phase: float = 0.5) -> torch.Tensor:
    """Weights [channels, channels, K, K] of a transposed conv performing bilinear upsampling by ``factor``.

    Each channel maps to itself only (Long §3.3.2 "in-network upsampling"). Input cell i lands on output position
    ``factor * i + centre`` with ``centre = factor - 1 + phase``: ``phase`` is the fractional part of the fine-grid
    offset between the two grids, 0 for ResNets (kernel 2f - 1, odd) and 1/2 for 2x2-pooled VGG grids (kernel 2f,
    Long's). The triangle profile 1 - |t - centre| / f is exact bilinear interpolation at that alignment.
    """
    centre = factor - 1 + phase
    size = 2 * factor - 1 if phase == 0 else 2 * factor
    coords = torch.arange(size, dtype=torch.float64)
    profile = (1 - (coords - centre).abs() / factor).clamp(min=0)
    kernel = (profile[:, None] * profile[None, :]).float()
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = kernel
    return weight


class BilinearUpsample(nn.ConvTranspose2d):
    """Long's learnable upsampling deconvolution from a coarse grid to a finer one, with the crop that aligns them.

    ConvTranspose2d(kernel 2f or 2f-1, stride f, no padding, no bias) initialised to bilinear interpolation; the
    output is cropped by the offset that puts coarse cell i on the fine grid at its true centre (Long §3.3: Caffe's
    crop layer, its offset computed from the layer geometry). The input is first padded by one replicated cell:
    a transposed conv treats the outside as zero, which would darken the border rows.
    """

    def __init__(self, channels: int, coarse: Grid, fine: Grid, learnable: bool = True) -> None:
        factor, remainder = divmod(coarse.stride, fine.stride)
        if remainder or factor < 2:
            raise ValueError(f"cannot upsample stride {coarse.stride} onto stride {fine.stride}")
        shift = (coarse.offset - fine.offset) / fine.stride  # coarse cell 0 in fine cells
        phase = shift - math.floor(shift)
        weight = bilinear_kernel(channels, factor, phase)
        super().__init__(channels, channels, weight.shape[-1], stride=factor, bias=False)
        with torch.no_grad():
            self.weight.copy_(weight)
        self.weight.requires_grad_(learnable)
        # Output position t of the raw deconv holds fine cell t - crop; + factor for the replicated pad cell.
        self.crop = int(round(factor - 1 + phase - shift)) + factor
        if shift > factor:  # fine cells before coarse cell -1 would read the zero padding
            raise ValueError(f"grids {coarse} -> {fine}: coarse cell 0 lies beyond the fine map's start")

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:  # type: ignore[override]
        """Upsampled ``x`` on the fine grid; ``size`` crops it to the fine map's size."""
        out = super().forward(F.pad(x, (1, 1, 1, 1), mode="replicate"))[..., self.crop :, self.crop :]
        return out if size is None else out[..., : size[0], : size[1]]


class FCNHead(nn.Module):
    """Score + fuse the taps coarse-to-fine; returns ``{"seg": logits}`` at the input resolution.

    ``channels`` / ``grids`` are ordered deepest first (as ``FeatureTaps`` gives them). Taps with the same grid
    (dilated backbones) are fused without upsampling; every upsampling knows both grids, so the sum adds scores
    of the same pixels and the output is centred where the input is (tests/test_geometry.py).
    """

    def __init__(self, channels: dict[str, int], grids: dict[str, Grid], num_classes: int) -> None:
        super().__init__()
        self.names = list(channels)
        self.grids = dict(grids)
        self.scores = nn.ModuleDict({n: nn.Conv2d(c, num_classes, 1) for n, c in channels.items()})
        for score in self.scores.values():  # §3.3.4: zero init, random init was no better
            nn.init.zeros_(score.weight)
            nn.init.zeros_(score.bias)
        self.upsample = nn.ModuleDict()
        for coarse, fine in zip(self.names, self.names[1:]):
            if grids[coarse].stride > grids[fine].stride:
                self.upsample[fine] = BilinearUpsample(num_classes, grids[coarse], grids[fine])

    def fuse(self, taps: dict[str, torch.Tensor]) -> torch.Tensor:
        """Class scores on the finest tap's grid: score, upsample 2x, add the next skip's score, repeat."""
        score = self.scores[self.names[0]](taps[self.names[0]])
        for coarse, name in zip(self.names, self.names[1:]):
            skip = self.scores[name](taps[name])
            size = skip.shape[-2:]
            if name in self.upsample:
                score = self.upsample[name](score, size)
            else:  # equal strides (dilated stages): only an offset, if any, to resample
                score = resample(score, self.grids[coarse], self.grids[name], size)
            score = score + skip
        return score

    def forward(self, taps: dict[str, torch.Tensor], size: tuple[int, int]) -> dict[str, torch.Tensor]:
        return {"seg": resample(self.fuse(taps), self.grids[self.names[-1]], PIXELS, size)}
