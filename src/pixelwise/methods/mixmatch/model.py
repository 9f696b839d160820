"""The network tuned by Mix-and-Match (Zhan et al. 2018, Fig. 2(b)): a backbone up to "pool5", nothing else.

A patch's representation is its pool5 blob (§4), read through :class:`~pixelwise.models.taps.FeatureTaps` (the
VGG stage ``pool5``; for a ResNet the last stage, ``layer4``, which plays the same role: stride 32, after a ReLU),
flattened and L2-normalised for the perceptual distance of Eq. 2. Stages after that layer (VGG's fc6/fc7) are not
run and not trained. The paper adds BatchNorm to its backbones (§4: "We apply batch normalization to speed up
convergence"): use a backbone with BN (resnet*, vgg16_bn, vgg16_narrow). The backbone keeps the ``taps.backbone.*`` state-dict keys of every other model, so
``pixelwise train --init-from`` takes it into a segmentation network with a new head (Fig. 2(c)).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pixelwise.methods.mixmatch.loss import perceptual_features
from pixelwise.models.backbones import Backbone, create_backbone
from pixelwise.models.inputs import InputNormalizer
from pixelwise.models.stored import StoredConfig
from pixelwise.models.taps import FeatureTaps


def default_feature_layer(backbone: Backbone) -> str:
    """'pool5' where the backbone has it (VGG), else its last stage (ResNet: 'layer4')."""
    return "pool5" if "pool5" in backbone.stage_names else backbone.stage_names[-1]


@dataclass(frozen=True)
class MixMatchConfig(StoredConfig):
    """Everything needed to rebuild the tuned network; stored in its checkpoints (kind 'mixmatch')."""

    KIND: ClassVar[str] = "mixmatch"

    backbone: str = "resnet18"
    in_channels: int = 3
    output_stride: int = 32
    feature_layer: str = ""  # empty: default_feature_layer


class MixMatchModel(nn.Module):
    """``model(patches in [0, 1])`` -> normalised pool5 features [N, C*h*w] (the x / ||x|| of Eq. 2)."""

    def __init__(self, config: MixMatchConfig) -> None:
        super().__init__()
        backbone = create_backbone(config.backbone, config.in_channels, config.output_stride)
        layer = config.feature_layer or default_feature_layer(backbone)
        self.config = dataclasses.replace(config, feature_layer=layer)
        self.taps = FeatureTaps(backbone, [layer])
        self.inputs = InputNormalizer(config.in_channels, backbone.output_stride)
        # Stages after the feature layer never see a gradient: freeze them so optimisers and DDP skip them.
        after = False
        for name, module in backbone.stage_modules().items():
            if after:
                module.requires_grad_(False)
            after = after or name == layer

    @property
    def backbone(self) -> Backbone:
        return self.taps.backbone

    def features(self, patches: torch.Tensor) -> torch.Tensor:
        """The raw feature blob [N, C, h, w] of the feature layer."""
        return self.taps(self.inputs(patches))[self.config.feature_layer]

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return perceptual_features(self.features(patches))
