"""Zoom-out head, trained end to end (Mostajabi thesis §3.5, Figs. 3.8-3.9).

Zoom-out describes a pixel by features at every zoom level at once: the end of each backbone stage (local to
distant context, "before each downsampling" for a ResNet), all brought to one grid at 1/4 of the input by bilinear
upsampling and concatenated, plus the **scene** level (§3.3: the whole image; here the global average of the
deepest stage, broadcast to every cell, the coarsest bin of the pyramid pooling the thesis adds). A 3-layer
classifier of 1x1 convolutions with ``hidden`` units per layer (§3.5: 1000) scores each cell; the scores are
upsampled bilinearly to the input size. Unlike FCN's coarse-to-fine sum of per-layer scores (Long §3.3.3), every
level reaches the classifier as features, so the classifier can combine them non-linearly.

Not in the thesis: BatchNorm after the two hidden convolutions. The levels arrive on very different scales (a
stride-4 stage next to a stride-32 one), and from-scratch training on a CPU budget needs them evened out.
"""

from __future__ import annotations

import torch
from torch import nn

from pixelwise.models.heads.hypercolumn import dense_hypercolumns
from pixelwise.models.receptive_field import Grid
from pixelwise.models.resample import PIXELS, resample


def _classifier(width: int, hidden: int, out: int) -> nn.Sequential:
    """The 3-layer 1x1-conv classifier of §3.5 (two hidden layers of ``hidden`` units, BatchNorm, ReLU)."""
    return nn.Sequential(
        nn.Conv2d(width, hidden, 1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, hidden, 1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, out, 1),
    )


class ZoomOutHead(nn.Module):
    """Concatenate every tap on the finest tap's grid (+ the scene level) -> 1x1 conv classifier -> ``{"seg"}``.

    ``channels`` / ``grids`` are ordered deepest first (as ``FeatureTaps`` gives them); the deepest tap also
    gives the scene feature when ``scene`` is set. With ``outputs`` (e.g. ``{"seg": K, "depth": 1}``, Mostajabi
    §5.5.2.1: "three 1x1 convs" per task) one classifier per output reads the same zoom-out features, and the
    head returns one map per name; without it, the single ``classifier`` of ``num_classes`` (older checkpoints'
    ``head.classifier.*``).
    """

    def __init__(
        self,
        channels: dict[str, int],
        grids: dict[str, Grid],
        num_classes: int,
        hidden: int = 1000,
        scene: bool = True,
        outputs: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.grids = dict(grids)
        # The finest tap's stride (4 for ResNet layer1 / VGG pool2, §3.5.1: 1/4); descriptors sit on its block grid.
        self.grid = min(grid.stride for grid in grids.values())
        self.scene = next(iter(channels)) if scene else None
        width = sum(channels.values()) + (channels[self.scene] if self.scene else 0)
        self.outputs = dict(outputs) if outputs else None
        if self.outputs is None:
            self.classifier = _classifier(width, hidden, num_classes)
        else:
            self.classifiers = nn.ModuleDict(
                {k: _classifier(width, hidden, n) for k, n in self.outputs.items()}
            )

    def zoom_out_features(self, taps: dict[str, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """The zoom-out descriptor of every grid cell: [N, sum C_l (+ C_scene), H / grid, W / grid]."""
        levels = dense_hypercolumns(taps, self.grids, size, self.grid)
        if self.scene is None:
            return levels
        scene = taps[self.scene].mean(dim=(2, 3), keepdim=True)
        return torch.cat([levels, scene.expand(-1, -1, *levels.shape[-2:])], dim=1)

    def to_pixels(self, scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Cell scores on the 1/grid block grid -> the input's pixels (bilinear, geometry-exact)."""
        return resample(scores, Grid.block(self.grid), PIXELS, size)

    def forward(self, taps: dict[str, torch.Tensor], size: tuple[int, int]) -> dict[str, torch.Tensor]:
        features = self.zoom_out_features(taps, size)
        if self.outputs is None:
            return {"seg": self.to_pixels(self.classifier(features), size)}
        return {k: self.to_pixels(layer(features), size) for k, layer in self.classifiers.items()}
