"""The colorization network (Larsson §2.3.5-2.3.6): grey input -> backbone -> hypercolumn -> colour histograms.

A fully convolutional backbone with one input channel is tapped at every stage; the hypercolumn head (FC 1024,
ReLU) predicts per-pixel hue and chroma histograms (or Lab a/b histograms, or ab by regression). Training reads
S sparse points per image; inference runs the head densely at 1/4 resolution (§2.3.3).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.methods.colorization.decoding import hue_chroma_plane, lab_plane, rgb_from_plane
from pixelwise.methods.colorization.losses import HUE_CHROMA_BINS
from pixelwise.models.backbones import create_backbone
from pixelwise.models.heads.hypercolumn import HypercolumnHead
from pixelwise.models.inputs import InputNormalizer
from pixelwise.models.receptive_field import Grid
from pixelwise.models.resample import PIXELS, resample
from pixelwise.models.stored import StoredConfig
from pixelwise.models.taps import FeatureTaps

TARGETS = ("hue-chroma", "lab", "l2")
Adjust = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def target_outputs(target: str, bins: int = HUE_CHROMA_BINS) -> dict[str, int]:
    """The head's outputs for a target: two histograms, or the two ab values for L2 regression."""
    if target == "hue-chroma":
        return {"hue": bins, "chroma": bins}
    if target == "lab":
        return {"a": bins, "b": bins}
    if target == "l2":
        return {"ab": 2}
    raise ValueError(f"unknown colorization target {target!r}; choose from {', '.join(TARGETS)}")


@dataclass(frozen=True)
class ColorizerConfig(StoredConfig):
    """Everything needed to rebuild a colorization model; stored in its checkpoints."""

    KIND: ClassVar[str] = "colorization"

    backbone: str = "resnet18"
    output_stride: int = 32
    target: str = "hue-chroma"
    taps: tuple[str, ...] = ()  # empty: every backbone stage
    hidden: int = 1024
    bins: int = HUE_CHROMA_BINS
    in_channels: int = 1  # always grey; recorded so fine-tuning can check it

    @classmethod
    def from_dict(cls, values: dict) -> ColorizerConfig:
        """JSON gives ``taps`` back as a list: the frozen config keeps a tuple."""
        return dataclasses.replace(super().from_dict(values), taps=tuple(values.get("taps", ())))


class ColorizationModel(nn.Module):
    """``model(images, points)`` -> sparse logits ``{name: [N, S, K]}``; without points, dense at 1/``scale``."""

    def __init__(self, config: ColorizerConfig) -> None:
        super().__init__()
        self.config = config
        backbone = create_backbone(config.backbone, 1, config.output_stride)
        self.taps = FeatureTaps(backbone, config.taps or backbone.stage_names)
        self.inputs = InputNormalizer(1, backbone.output_stride)
        self.head = HypercolumnHead(
            self.taps.channels, self.taps.grids, target_outputs(config.target, config.bins), config.hidden
        )

    @property
    def backbone(self) -> nn.Module:
        return self.taps.backbone

    def forward(
        self, images: torch.Tensor, points: torch.Tensor | None = None, scale: int = 4
    ) -> dict[str, torch.Tensor]:
        """``images`` [N, 3 or 1, H, W] in [0, 1] (RGB is reduced to its lightness); ``points`` [N, S, 2]."""
        taps = self.taps(self.inputs(images))
        return self.head(taps, points=points, size=tuple(images.shape[-2:]), scale=scale)

    def colour_plane(
        self, images: torch.Tensor, scale: int = 4, adjust: Adjust | None = None
    ) -> torch.Tensor:
        """The decoded 2-channel colour plane at 1/``scale`` resolution (see :mod:`.decoding`).

        ``adjust`` may rewrite the dense logits first (e.g. histogram transfer, §2.3.4).
        """
        outputs = {k: v.float() for k, v in self(images, scale=scale).items()}
        if adjust is not None:
            with torch.enable_grad():
                outputs = adjust(outputs)
        if self.config.target == "hue-chroma":
            return hue_chroma_plane(outputs["hue"], outputs["chroma"])
        if self.config.target == "lab":
            return lab_plane(outputs["a"], outputs["b"])
        return outputs["ab"] * 100  # regression targets are ab / 100

    @torch.no_grad()
    def colorize(
        self, images: torch.Tensor, infer_scale: float = 1.0, adjust: Adjust | None = None
    ) -> torch.Tensor:
        """RGB [N, 3, H, W]: colours predicted from the lightness of ``images``, at ``infer_scale`` x the size."""
        height, width = images.shape[-2:]
        grey = images.mean(dim=1, keepdim=True) if images.shape[1] == 3 else images
        small = grey
        if infer_scale != 1.0:
            size = (max(1, round(height * infer_scale)), max(1, round(width * infer_scale)))
            small = F.interpolate(grey, size=size, mode="bilinear", antialias=True, align_corners=False)
        # The plane's cells sit on the block grid of 4 of ``small``; then, as any image, to the full size.
        plane = resample(self.colour_plane(small), Grid.block(4), PIXELS, tuple(small.shape[-2:]))
        if plane.shape[-2:] != (height, width):
            plane = F.interpolate(plane, size=(height, width), mode="bilinear", align_corners=False)
        return rgb_from_plane(plane, grey, self.config.target)
