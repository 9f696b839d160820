"""The segmentation model: normalise -> pad -> backbone taps -> head -> crop, rebuilt from its ``ModelConfig``.

Input normalisation and padding live in :class:`~pixelwise.models.inputs.InputNormalizer` (shared by every model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pixelwise.models.backbones import create_backbone
from pixelwise.models.heads.fcn import FCNHead
from pixelwise.models.heads.zoomout import ZoomOutHead
from pixelwise.models.inputs import InputNormalizer
from pixelwise.models.stored import StoredConfig
from pixelwise.models.taps import FeatureTaps

# Which backbone stages each architecture reads. FCN variants fuse stride 32 only, + 16, + 8 (Long §3.3.3);
# zoom-out reads the end of every stage from stride 4 on (Mostajabi thesis §3.5).
TAPS: dict[str, dict[str, tuple[str, ...]]] = {
    "fcn32s": {"resnet": ("layer4",), "vgg": ("fc7",)},
    "fcn16s": {"resnet": ("layer4", "layer3"), "vgg": ("fc7", "pool4")},
    "fcn8s": {"resnet": ("layer4", "layer3", "layer2"), "vgg": ("fc7", "pool4", "pool3")},
    "zoomout": {
        "resnet": ("layer4", "layer3", "layer2", "layer1"),
        "vgg": ("fc7", "pool4", "pool3", "pool2"),
    },
}
ARCHITECTURES = tuple(TAPS)


@dataclass(frozen=True)
class ModelConfig(StoredConfig):
    """Everything needed to rebuild a model; stored in every checkpoint (so ``predict`` needs no config file)."""

    KIND: ClassVar[str] = "segmentation"

    arch: str = "fcn8s"
    backbone: str = "resnet18"
    num_classes: int = 11
    in_channels: int = 3
    output_stride: int = 32
    head_width: int = 1000  # zoom-out only: hidden units of its 1x1-conv classifier (§3.5)
    # Leading image channels (3 RGB, 1 grey, 0 none); the rest are extra inputs left unnormalised
    # (InputNormalizer). None: the rule of older checkpoints (3 -> ImageNet statistics, else grey on all).
    image_channels: int | None = None


class SegmentationModel(nn.Module):
    """``model(images in [0,1]) -> {"seg": logits [N, C, H, W]}``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {config.num_classes}")
        if config.arch not in TAPS:
            raise ValueError(f"unknown architecture {config.arch!r}; choose from {', '.join(ARCHITECTURES)}")
        self.config = config
        backbone = create_backbone(config.backbone, config.in_channels, config.output_stride)
        family = "vgg" if config.backbone.startswith("vgg") else "resnet"
        self.taps = FeatureTaps(backbone, TAPS[config.arch][family])
        channels, grids = self.taps.channels, self.taps.grids
        self.head: nn.Module = (
            ZoomOutHead(channels, grids, config.num_classes, hidden=config.head_width)
            if config.arch == "zoomout"
            else FCNHead(channels, grids, config.num_classes)
        )
        self.inputs = InputNormalizer(config.in_channels, backbone.output_stride, config.image_channels)

    @property
    def backbone(self) -> nn.Module:
        return self.taps.backbone

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        height, width = images.shape[-2:]
        x = self.inputs(images)
        outputs = self.head(self.taps(x), size=x.shape[-2:])
        return {key: value[..., :height, :width] for key, value in outputs.items()}


def create_model(
    arch: str = "fcn8s", backbone: str = "resnet18", num_classes: int = 11, **kwargs
) -> SegmentationModel:
    """One-line construction, smp style: ``create_model("fcn8s", "resnet18", num_classes=11)``."""
    return SegmentationModel(ModelConfig(arch=arch, backbone=backbone, num_classes=num_classes, **kwargs))
