"""The shortcut autoencoder (Larsson thesis §1.3.2-1.3.3): an image autoencoder on any backbone, with auxiliary
reconstructions through truncated paths that share the full path's weights.

Encoder: the backbone's stages f_1 .. f_L, read through :class:`~pixelwise.models.taps.FeatureTaps` (ResNet:
conv1, layer1 .. layer4; VGG: pool1 .. pool5, fc7). No dedicated code z: the last stage *is* the code (the thesis
used fc7 directly). Decoder: per stage, in reverse, g_k = [2x bilinear upsampling where f_k halved the resolution]
+ 3x3 conv back to the width before f_k, ReLU except for g_1, which outputs the image (the mirrored decoder of
``methods/label_ae/model.py``). The reconstruction target is the standardised input image (what the encoder sees).

Losses, squared L2 throughout (the thesis squares (1.10) but not (1.11); docs: specs/mixture-models.md, errata):

- x̂_k = g_1 ∘ ... ∘ g_k ∘ f_k ∘ ... ∘ f_1 (x) (1.11): path k turns round after stage k;
- ℓ = ℓ_L + λ Σ_{k in shortcuts} ℓ_k (1.12), λ = 1 in the thesis; ℓ_k is the mean squared error per pixel.

Every path runs the *same* modules (g_1 serves all paths), so the shortcuts add no weights and there is no
aggregation of paths (unlike ladder-style shortcuts). Dropout (element-wise) on each path's code limits the
information that crosses it (§1.3.3). The checkpoint holds ``taps.backbone.*`` like every pretraining run, so
``pixelwise train --init-from RUN`` takes the encoder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.models.backbones import create_backbone
from pixelwise.models.inputs import InputNormalizer
from pixelwise.models.stored import StoredConfig
from pixelwise.models.taps import FeatureTaps

FULL = "full"


@dataclass(frozen=True)
class AutoencoderConfig(StoredConfig):
    """Everything that rebuilds a (shortcut) autoencoder; stored in its checkpoints (kind ``autoencoder``)."""

    KIND: ClassVar[str] = "autoencoder"

    backbone: str = "resnet18"
    in_channels: int = 3
    output_stride: int = 32
    shortcuts: tuple[str, ...] = ()  # stages whose truncated paths add a loss (ResNet: layer1 layer2 layer3)
    shortcut_weight: float = 1.0  # λ of (1.12)
    dropout: float = 0.5

    @classmethod
    def from_dict(cls, values: dict) -> AutoencoderConfig:
        """JSON gives ``shortcuts`` back as a list: the frozen config keeps a tuple."""
        return dataclasses.replace(super().from_dict(values), shortcuts=tuple(values.get("shortcuts", ())))


class Autoencoder(nn.Module):
    """``model(images) -> {"full": x̂_L, <stage>: x̂_k for each shortcut}`` and the standardised target."""

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        backbone = create_backbone(config.backbone, config.in_channels, config.output_stride)
        names = backbone.stage_names
        bad = [s for s in config.shortcuts if s not in names[:-1]]
        if bad:
            raise ValueError(
                f"--shortcuts {' '.join(bad)}: not an inner stage of {config.backbone}; choose from "
                f"{', '.join(names[:-1])} (the last stage, {names[-1]}, is the full path)"
            )
        if not 0 <= config.dropout < 1:
            raise ValueError(f"autoencoder dropout must be in [0, 1), got {config.dropout}")
        self.taps = FeatureTaps(backbone, names)
        self.inputs = InputNormalizer(config.in_channels, backbone.output_stride)
        self.stages = names
        widths = [config.in_channels] + [backbone.channels[n] for n in names]
        strides = [1] + [backbone.strides[n] for n in names]
        decoders = {}
        for index, name in enumerate(names):
            steps: list[nn.Module] = []
            if strides[index + 1] > strides[index]:  # undo this stage's downsampling (always 2x here)
                steps.append(nn.Upsample(scale_factor=strides[index + 1] // strides[index], mode="bilinear",
                                         align_corners=False))  # fmt: skip
            steps.append(nn.Conv2d(widths[index + 1], widths[index], 3, padding=1))
            if index > 0:
                steps.append(nn.ReLU(inplace=True))
            decoders[name] = nn.Sequential(*steps)
        self.decoders = nn.ModuleDict(decoders)  # g_k per stage, shared by every path through it
        self.dropout = nn.Dropout(config.dropout)

    @property
    def backbone(self) -> nn.Module:
        return self.taps.backbone

    def paths(self) -> tuple[str, ...]:
        """The reconstructions the loss reads: the full path and each shortcut's, deepest first."""
        return (FULL, *sorted(self.config.shortcuts, key=self.stages.index, reverse=True))

    @staticmethod
    def path_order(config: AutoencoderConfig) -> tuple[str, ...]:
        """:meth:`paths` without building the model (shortcut names sort by depth in every backbone here)."""
        names = create_backbone(config.backbone, config.in_channels, config.output_stride).stage_names
        return (FULL, *sorted(config.shortcuts, key=names.index, reverse=True))

    def decode(self, code: torch.Tensor, stage: str) -> torch.Tensor:
        """g_1 ∘ ... ∘ g_k of a stage-k code: the reconstruction of the (padded, standardised) image."""
        x = self.dropout(code)
        for name in reversed(self.stages[: self.stages.index(stage) + 1]):
            x = self.decoders[name](x)
        return x

    def forward(self, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(reconstructions by path, target): both [N, C, H, W] in the standardised space of the input."""
        height, width = images.shape[-2:]
        target = self.inputs(images)
        codes = self.taps(target)
        outputs = {}
        for path in self.paths():
            stage = self.stages[-1] if path == FULL else path
            outputs[path] = self.decode(codes[stage], stage)[..., :height, :width]
        return outputs, target[..., :height, :width]


def reconstruction_losses(outputs: dict[str, torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:
    """ℓ per path: the mean squared error per pixel and channel (squared L2, (1.10)-(1.11))."""
    return {path: F.mse_loss(x.float(), target.float()) for path, x in outputs.items()}


def shortcut_objective(losses: dict[str, torch.Tensor], weight: float) -> torch.Tensor:
    """ℓ = ℓ_L + λ Σ_k ℓ_k (1.12)."""
    shortcut = [v for k, v in losses.items() if k != FULL]
    return losses[FULL] + weight * sum(shortcut, torch.zeros_like(losses[FULL]))
