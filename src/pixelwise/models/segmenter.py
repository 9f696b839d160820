"""The segmentation model: normalise -> pad -> backbone taps -> head -> crop, rebuilt from its ``ModelConfig``.

The model owns its input normalisation, so every caller (train, eval, predict, export) feeds images in [0, 1],
and pads to a multiple of the backbone stride, so any input size works (peers' "divisible by 32" errors).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.models.backbones import create_backbone
from pixelwise.models.heads.fcn import FCNHead
from pixelwise.models.taps import FeatureTaps

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Which backbone stages each FCN variant fuses (Long §3.3.3): stride 32 only, + 16, + 8.
FCN_TAPS: dict[str, dict[str, tuple[str, ...]]] = {
    "fcn32s": {"resnet": ("layer4",), "vgg": ("fc7",)},
    "fcn16s": {"resnet": ("layer4", "layer3"), "vgg": ("fc7", "pool4")},
    "fcn8s": {"resnet": ("layer4", "layer3", "layer2"), "vgg": ("fc7", "pool4", "pool3")},
}
ARCHITECTURES = tuple(FCN_TAPS)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; stored in every checkpoint (so ``predict`` needs no config file)."""

    arch: str = "fcn8s"
    backbone: str = "resnet18"
    num_classes: int = 11
    in_channels: int = 3
    output_stride: int = 32

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


class SegmentationModel(nn.Module):
    """``model(images in [0,1]) -> {"seg": logits [N, C, H, W]}``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.arch not in FCN_TAPS:
            raise ValueError(f"unknown architecture {config.arch!r}; choose from {', '.join(ARCHITECTURES)}")
        self.config = config
        backbone = create_backbone(config.backbone, config.in_channels, config.output_stride)
        family = "vgg" if config.backbone.startswith("vgg") else "resnet"
        self.taps = FeatureTaps(backbone, FCN_TAPS[config.arch][family])
        self.head = FCNHead(self.taps.channels, self.taps.strides, config.num_classes)
        mean = IMAGENET_MEAN if config.in_channels == 3 else (sum(IMAGENET_MEAN) / 3,) * config.in_channels
        std = IMAGENET_STD if config.in_channels == 3 else (sum(IMAGENET_STD) / 3,) * config.in_channels
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    @property
    def backbone(self) -> nn.Module:
        return self.taps.backbone

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(Grey models: RGB -> lightness,) standardise and zero-pad (zero = the mean colour) to a multiple of the stride."""
        height, width = images.shape[-2:]
        if (
            self.config.in_channels == 1 and images.shape[1] == 3
        ):  # grey models take L = (R+G+B)/3 (Larsson §2.3.1)
            images = images.mean(dim=1, keepdim=True)
        x = (images - self.mean) / self.std
        stride = self.taps.backbone.output_stride
        pad_h, pad_w = -height % stride, -width % stride
        return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        height, width = images.shape[-2:]
        x = self.normalize(images)
        outputs = self.head(self.taps(x), size=x.shape[-2:])
        return {key: value[..., :height, :width] for key, value in outputs.items()}


def create_model(
    arch: str = "fcn8s", backbone: str = "resnet18", num_classes: int = 11, **kwargs
) -> SegmentationModel:
    """One-line construction, smp style: ``create_model("fcn8s", "resnet18", num_classes=11)``."""
    return SegmentationModel(ModelConfig(arch=arch, backbone=backbone, num_classes=num_classes, **kwargs))
