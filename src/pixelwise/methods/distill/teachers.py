"""Frozen teachers and the distilled layer (Larsson §4.3.1, §4.3.5): the top non-task layer, before its ReLU.

A teacher is any pixelwise run whose checkpoint holds a backbone (``taps.backbone.*``: colorization, segmentation,
depth, Mix-and-Match, a distilled student...), loaded with the existing backbone helpers into a bare backbone plus
that run's input normalisation (a grey colorization network sees the lightness of the same RGB image). Teachers
are frozen: eval mode always (no dropout, BatchNorm running statistics, §4.3.5 "no teacher dropout"), no gradients.

The distilled layer is the deepest stage's output *before* its final ReLU (end of §4.3.2: downstream heads read
ReLU(top), and ReLU is not shift invariant). For a ResNet that is the last residual block's ``bn(conv(...)) +
identity``; for VGG the fc7 convolution. It is recomputed from the block's own modules (:func:`top_features`)
rather than hooked: the blocks' ReLUs are in-place and shared within a block, so a hook would see its input
overwritten. A test checks ``relu(top_features(x))`` against the backbone's own stage output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from pixelwise.engine.checkpoint import load_checkpoint, without_training_branch
from pixelwise.methods.segmentation import InitError, backbone_weights, load_backbone_from_checkpoint
from pixelwise.models.backbones import Backbone, ResNetBackbone, VGGBackbone, create_backbone
from pixelwise.models.frozen import FrozenBackbone
from pixelwise.models.receptive_field import Grid


def pre_relu_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A torchvision ResNet block's output before its final ReLU: ``relu(pre_relu_block(b, x)) == b(x)``."""
    identity = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(x)))
    if isinstance(block, Bottleneck):
        out = block.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
    elif isinstance(block, BasicBlock):
        out = block.bn2(block.conv2(out))
    else:
        raise TypeError(f"not a torchvision ResNet block: {type(block).__name__}")
    return out + identity


def top_layer(backbone: Backbone) -> str:
    """The stage distilled at: the deepest one (ResNet: layer4; VGG: fc7, the thesis's "fc7")."""
    return backbone.stage_names[-1]


def top_features(backbone: Backbone, x: torch.Tensor) -> torch.Tensor:
    """Pre-ReLU features [N, C, h, w] of the deepest stage of ``backbone`` for normalised input ``x``."""
    stages = backbone.stage_modules()
    *lower, last = backbone.stage_names
    for name in lower:
        x = stages[name](x)
    if isinstance(backbone, ResNetBackbone):
        blocks = list(stages[last])
        for block in blocks[:-1]:
            x = block(x)
        return pre_relu_block(blocks[-1], x)
    if isinstance(backbone, VGGBackbone):
        fc = backbone.fc
        return fc.fc7(fc.drop6(fc.relu6(fc.fc6(x))))
    raise TypeError(f"no pre-ReLU top layer defined for {type(backbone).__name__}")


@dataclass(frozen=True)
class TeacherSpec:
    """What a teacher checkpoint says about its backbone (``load_backbone_from_checkpoint`` reads it as the
    model's ``config``)."""

    path: str
    kind: str
    backbone: str
    in_channels: int
    output_stride: int

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "backbone": self.backbone,
            "in_channels": self.in_channels,
            "output_stride": self.output_stride,
        }


class FrozenTeacher(FrozenBackbone):
    """``teacher(images in [0, 1])`` -> pre-ReLU top features; never trains, whatever ``.train()`` says
    (§4.3.5: no teacher dropout)."""

    def __init__(self, spec: TeacherSpec) -> None:
        backbone = create_backbone(spec.backbone, spec.in_channels, spec.output_stride)
        super().__init__(spec.backbone, spec.in_channels, spec.output_stride, (top_layer(backbone),))
        self.config = spec

    @property
    def channels(self) -> int:
        return self.taps.channels[self.taps.names[0]]

    @property
    def grid(self) -> Grid:
        return self.taps.grids[self.taps.names[0]]

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return top_features(self.backbone, self.inputs(images))


def _spec_from(path: str, meta: dict[str, Any]) -> TeacherSpec:
    described = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    kind = str(described.get("kind", "segmentation"))
    if "backbone" not in described:
        raise ValueError(
            f"--teachers {path}: a {kind} checkpoint without a backbone to distil; pass runs trained with a "
            "backbone (colorization, segmentation, depth, mixmatch, a distilled student)"
        )
    return TeacherSpec(
        path=path,
        kind=kind,
        backbone=str(described["backbone"]),
        in_channels=int(described.get("in_channels", 3)),
        output_stride=int(described.get("output_stride", 32)),
    )


def load_teacher(path: str | Path) -> FrozenTeacher:
    """A frozen teacher from a run folder or checkpoint; bad input is a one-line ``ValueError`` with the fix."""
    path = str(path)
    try:
        checkpoint = load_checkpoint(path)
    except FileNotFoundError as err:
        raise ValueError(
            f"--teachers {path}: {err}; pass a pixelwise run folder (with best.safetensors or last.safetensors) "
            "or a checkpoint file"
        ) from None
    spec = _spec_from(path, checkpoint.meta)
    state = without_training_branch(checkpoint.model_state)
    if not backbone_weights(state):
        raise ValueError(
            f"--teachers {path}: a {spec.kind} checkpoint with no backbone weights (taps.backbone.*); pass runs "
            "trained with a backbone (colorization, segmentation, ...)"
        )
    try:
        teacher = FrozenTeacher(spec)
    except ValueError as err:
        raise ValueError(f"--teachers {path}: cannot rebuild its backbone ({err})") from None
    try:
        load_backbone_from_checkpoint(teacher, state, checkpoint.meta.get("model", {}), path)
    except (InitError, RuntimeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(
            f"--teachers {path}: its backbone weights do not fit a {spec.backbone} ({first}); the checkpoint is "
            "damaged or from an incompatible pixelwise"
        ) from None
    return teacher.eval()


class TeacherEnsemble(nn.Module):
    """M frozen teachers; ``ensemble(images)`` -> their top features, concatenated (M F channels, §4.3.4) or
    averaged (Eq. 4.1's f_teacher = (1/M) Σ_m f_m, for teachers whose channels correspond)."""

    def __init__(self, teachers: Sequence[FrozenTeacher], combine: str = "concat") -> None:
        super().__init__()
        if not teachers:
            raise ValueError("--teachers: give at least one teacher run")
        if combine not in ("concat", "mean"):
            raise ValueError(f"unknown ensemble {combine!r}; use concat or mean")
        self.members = nn.ModuleList(teachers)
        self.combine = combine
        self._check_grids()
        if combine == "mean" and len(set(self.widths)) > 1:
            raise ValueError(
                f"--ensemble mean: the teachers have {self.widths} features; averaging needs equal widths "
                "(use --ensemble concat)"
            )

    @classmethod
    def load(cls, paths: Sequence[str], combine: str = "concat") -> TeacherEnsemble:
        if not paths:
            raise ValueError("--teachers: give at least one teacher run (e.g. --teachers runs/colorization)")
        return cls([load_teacher(p) for p in paths], combine)

    def _check_grids(self) -> None:
        first = self.members[0]
        for teacher in self.members[1:]:
            if teacher.grid != first.grid:
                raise ValueError(
                    f"--teachers {teacher.config.path}: its top features lie on a stride-{teacher.grid.stride} "
                    f"grid ({teacher.config.backbone}, output stride {teacher.config.output_stride}) but "
                    f"{first.config.path}'s on stride {first.grid.stride} ({first.config.backbone}); distil "
                    "teachers whose top layers share one grid"
                )

    @property
    def specs(self) -> list[TeacherSpec]:
        return [t.config for t in self.members]

    @property
    def widths(self) -> list[int]:
        return [t.channels for t in self.members]

    @property
    def channels(self) -> int:
        """K, the width of the combined teacher signal."""
        return sum(self.widths) if self.combine == "concat" else self.widths[0]

    @property
    def grid(self) -> Grid:
        return self.members[0].grid

    def train(self, mode: bool = True) -> TeacherEnsemble:
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = [teacher(images) for teacher in self.members]
        if self.combine == "mean":
            return torch.stack(features).mean(dim=0)
        return torch.cat(features, dim=1)
