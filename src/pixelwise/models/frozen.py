"""A frozen backbone: input normalisation + the tapped stages, always in eval mode, never a gradient.

What reads features without training them (correspondence from frozen features, Long Ch. 2; distillation
teachers, Larsson §4.3.5: no teacher dropout, BatchNorm on its running statistics) builds on this one module.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pixelwise.models.backbones import Backbone, create_backbone
from pixelwise.models.inputs import InputNormalizer
from pixelwise.models.receptive_field import Grid
from pixelwise.models.taps import FeatureTaps


class FrozenBackbone(nn.Module):
    """``frozen(images in [0, 1])`` -> ``{stage: features}`` of ``stages`` (default: all), without gradients."""

    def __init__(
        self, backbone: str, in_channels: int, output_stride: int, stages: Sequence[str] | None = None
    ) -> None:
        super().__init__()
        network = create_backbone(backbone, in_channels, output_stride)
        self.taps = FeatureTaps(network, stages or network.stage_names)  # unknown stage: one clear error
        self.inputs = InputNormalizer(in_channels, network.output_stride)
        self.requires_grad_(False)
        self.eval()

    @property
    def backbone(self) -> Backbone:
        return self.taps.backbone

    @property
    def stages(self) -> tuple[str, ...]:
        return self.taps.names

    @property
    def grids(self) -> dict[str, Grid]:
        return self.taps.grids

    def train(self, mode: bool = True) -> FrozenBackbone:
        return super().train(False)  # frozen by design: never BatchNorm batch statistics, never dropout

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.taps(self.inputs(images))
