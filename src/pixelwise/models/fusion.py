"""Late fusion of two input modalities (Long thesis §3.4, NYUDv2 RGB-HHA, Table 3.5).

Two complete segmentation networks, one on the RGB channels and one on the extra channels (depth, HHA-like
maps); their class scores are **summed at the last layer** and the sum is trained end to end. Early fusion is
not a model of its own: a :class:`~pixelwise.models.SegmentationModel` with ``in_channels = 3 + extra`` and
``image_channels = 3`` (the extra channels pass the input normaliser untouched).

The input is one tensor ``[N, 3 + extra, H, W]``, RGB first, so every caller (train, eval, the data wrappers)
feeds a fused model exactly like an early-fused one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pixelwise.models.segmenter import ModelConfig, SegmentationModel


@dataclass(frozen=True)
class LateFusionConfig(ModelConfig):
    """Both streams share arch, backbone and classes; ``in_channels`` counts RGB + the extra channels."""

    KIND: ClassVar[str] = "late-fusion"
    in_channels: int = 4
    image_channels: int | None = 3


class LateFusionModel(nn.Module):
    """``model([N, 3 + E, H, W]) -> {"seg": rgb_stream(RGB) + extra_stream(extra)}``."""

    def __init__(self, config: LateFusionConfig) -> None:
        super().__init__()
        if config.image_channels != 3 or config.in_channels < 4:
            raise ValueError(
                f"late fusion reads RGB plus at least one extra channel; got in_channels={config.in_channels}, "
                f"image_channels={config.image_channels}"
            )
        self.config = config
        plain = {
            k: v for k, v in dataclasses.asdict(config).items() if k not in ("in_channels", "image_channels")
        }
        self.rgb = SegmentationModel(ModelConfig(**plain, in_channels=3, image_channels=3))
        self.extra = SegmentationModel(
            ModelConfig(**plain, in_channels=config.in_channels - 3, image_channels=0)
        )

    @property
    def backbone(self) -> nn.Module:
        """The RGB stream's backbone (what --weights / --freeze address)."""
        return self.rgb.backbone

    def streams(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each stream's class scores, before the sum."""
        return self.rgb(images[:, :3])["seg"], self.extra(images[:, 3:])["seg"]

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        rgb, extra = self.streams(images)
        return {"seg": rgb + extra}  # Long §3.4: "summing predictions at the last layer"
