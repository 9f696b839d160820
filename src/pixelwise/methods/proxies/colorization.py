"""C, colorization, as one proxy of a shared multi-proxy network (Larsson §4.7.1-4.7.2).

The loss of Ch. 2-3 (:func:`~pixelwise.methods.colorization.task.sparse_colour_loss`, hue/chroma histograms at
sparse hypercolumn points) on a backbone whose conv1 is shared with proxies that see colour: joint training
feeds the grey image replicated to 3 channels (§4.7.2), so colour never reaches C's input.
"""

from __future__ import annotations

import torch
from torch import nn

from pixelwise.methods.colorization.model import target_outputs
from pixelwise.methods.colorization.task import sparse_colour_loss
from pixelwise.models.heads.hypercolumn import HypercolumnHead, random_points
from pixelwise.models.inputs import InputNormalizer
from pixelwise.models.taps import FeatureTaps


class ColorizationProxy(nn.Module):
    """Hypercolumn head (FC ``hidden``) -> colour histograms at ``samples`` random pixels per image."""

    def __init__(
        self,
        taps: FeatureTaps,
        target: str = "hue-chroma",
        hidden: int = 1024,
        samples: int = 128,
        window: int = 7,
    ) -> None:
        super().__init__()
        self.target, self.samples, self.window = target, samples, window
        self.head = HypercolumnHead(taps.channels, taps.grids, target_outputs(target), hidden)
        # A 1-channel normaliser (lightness, grey statistics), replicated to the shared 3-channel conv1.
        self.inputs = InputNormalizer(1, taps.backbone.output_stride)

    def loss(self, taps: FeatureTaps, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images`` [N, 3, H, W] in [0, 1] -> {'loss'}: the colorization loss at random pixels."""
        batch, _, height, width = images.shape
        grey = self.inputs(images).expand(-1, 3, -1, -1)
        points = random_points(batch, self.samples, (height, width)).to(images.device)
        outputs = self.head(taps(grey), points=points)
        return {"loss": sparse_colour_loss(outputs, images, points, self.target, self.window)}
