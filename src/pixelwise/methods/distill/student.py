"""The distilled student (Larsson §4.3.4): a backbone whose top layer, before its ReLU, learns the teachers'.

Its weights live under ``taps.backbone.*`` like every other pixelwise model, so ``pixelwise train --init-from``
and ``load_backbone_from_run`` take its backbone unchanged. The auxiliary-layer adapter (student F -> ReLU ->
1x1 conv to the teachers' M F) is a training-only branch: :class:`AuxiliaryStudent` wraps the student the way the
label-AE regulariser wraps a segmenter (``model.*`` + ``adapter.*`` in ``last.safetensors``), and its
``inference_model()`` (what ``best.safetensors`` holds) is the plain student: the layer is discarded after
distillation, as §4.3.4 says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pixelwise.methods.distill.teachers import top_features, top_layer
from pixelwise.models.backbones import Backbone, create_backbone
from pixelwise.models.inputs import InputNormalizer
from pixelwise.models.receptive_field import Grid
from pixelwise.models.stored import StoredConfig
from pixelwise.models.taps import FeatureTaps


@dataclass(frozen=True)
class StudentConfig(StoredConfig):
    """Everything needed to rebuild a distilled student; stored in its checkpoints (kind 'distill-student')."""

    KIND: ClassVar[str] = "distill-student"

    backbone: str = "resnet18"
    in_channels: int = 3
    output_stride: int = 32
    layer: str = ""  # the distilled stage (its pre-ReLU output); empty: the deepest


class StudentModel(nn.Module):
    """``student(images in [0, 1])`` -> pre-ReLU top features [N, F, h, w] (the z of Eq. 4.4)."""

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        backbone = create_backbone(config.backbone, config.in_channels, config.output_stride)
        layer = top_layer(backbone)
        if config.layer and config.layer != layer:
            raise ValueError(f"a student distils its deepest stage ({layer}), not {config.layer!r}")
        self.config = StudentConfig(config.backbone, config.in_channels, config.output_stride, layer)
        self.taps = FeatureTaps(backbone, (layer,))
        self.inputs = InputNormalizer(config.in_channels, backbone.output_stride)

    @property
    def backbone(self) -> Backbone:
        return self.taps.backbone

    @property
    def channels(self) -> int:
        return self.taps.channels[self.config.layer]

    @property
    def grid(self) -> Grid:
        return self.taps.grids[self.config.layer]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return top_features(self.backbone, self.inputs(images))


class AuxiliaryStudent(nn.Module):
    """The student plus §4.3.4's auxiliary layer: F -> ReLU -> 1x1 conv (a per-position FC) to ``out_channels``.

    The ReLU comes first because the student's top activations must make sense after a ReLU downstream.
    """

    def __init__(self, student: StudentModel, out_channels: int) -> None:
        super().__init__()
        self.model = student
        self.adapter = nn.Sequential(nn.ReLU(), nn.Conv2d(student.channels, out_channels, 1))

    @property
    def config(self) -> StudentConfig:
        return self.model.config

    @property
    def backbone(self) -> Backbone:
        return self.model.backbone

    @property
    def taps(self) -> FeatureTaps:
        return self.model.taps

    def inference_model(self) -> StudentModel:
        """What ``best.safetensors`` holds: the student without its auxiliary layer."""
        return self.model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.model(images))
