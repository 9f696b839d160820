"""FeatureTaps: the one mechanism for reading intermediate features (architecture.md).

Heads, the colorization hypercolumn, Mix-and-Match's pool5 features and the label-AE branch all read
backbone features through this module, by stage name. Each tap carries its channel count, stride and grid (where its cells sit) so a head
can be built from ``taps.channels`` / ``taps.grids`` alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pixelwise.models.backbones import Backbone
from pixelwise.models.receptive_field import Grid


class FeatureTaps(nn.Module):
    """Run ``backbone`` and return ``{name: feature}`` for the requested stage names only."""

    def __init__(self, backbone: Backbone, names: Sequence[str]) -> None:
        super().__init__()
        unknown = [n for n in names if n not in backbone.stage_names]
        if unknown:
            raise ValueError(
                f"unknown tap(s) {unknown}; {type(backbone).__name__} has {list(backbone.stage_names)}"
            )
        self.backbone = backbone
        # Deepest first: FCN fuses from coarse to fine (Long §3.3.3).
        order = {n: i for i, n in enumerate(backbone.stage_names)}
        self.names = tuple(sorted(names, key=order.__getitem__, reverse=True))
        grids = backbone.grids  # the backbone's layers are fixed from here on
        self._grids = {n: grids[n] for n in self.names}

    @property
    def channels(self) -> dict[str, int]:
        return {n: self.backbone.channels[n] for n in self.names}

    @property
    def strides(self) -> dict[str, int]:
        return {n: self.backbone.strides[n] for n in self.names}

    @property
    def grids(self) -> dict[str, Grid]:
        return dict(self._grids)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = self.backbone.forward_stages(x, until=self.names[0])
        return {n: outputs[n] for n in self.names}
