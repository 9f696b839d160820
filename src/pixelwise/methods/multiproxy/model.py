"""The multi-proxy network (Larsson §4.5, Caruana's recipe): one shared backbone, one head per proxy task.

Tied copies of the base network, one per task, each with its own data and input size, are one module here: the
backbone behind :class:`~pixelwise.models.taps.FeatureTaps` (every stage tapped, 3 input channels: conv1 is
shared by colorization's replicated grey and jigsaw's tiles) and a ``ModuleDict`` of proxies. ``model(task,
images, targets)`` runs one task's forward, so the training loop can backprop the tasks one at a time through
the DDP wrapper and a :class:`~pixelwise.engine.combine.GradientCombiner` balances them. Checkpoints keep
``taps.backbone.*``, so ``pixelwise train --init-from RUN`` starts from the shared backbone like any run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pixelwise.models.backbones import create_backbone
from pixelwise.models.stored import StoredConfig
from pixelwise.models.taps import FeatureTaps

PROXIES = ("colorization", "jigsaw", "motion")


@dataclass(frozen=True)
class MultiProxyConfig(StoredConfig):
    """Everything needed to rebuild the network; stored in its checkpoints."""

    KIND: ClassVar[str] = "multi-proxy"

    backbone: str = "resnet18"
    tasks: tuple[str, ...] = ("colorization", "jigsaw")
    output_stride: int = 32
    in_channels: int = 3  # the shared conv1 (fine-tune with --in-channels 3)
    hidden: int = 1024  # hypercolumn heads (C, V): FC 1024 (§4.7.2)
    colour_target: str = "hue-chroma"
    samples: int = 128
    window: int = 7
    jigsaw_grey: bool = True  # RGB tiles invite the chromatic-aberration shortcut (§4.7.1)
    jigsaw_crop: int = 168
    jigsaw_tile: int = 76
    jigsaw_wiggle: int = 16
    jigsaw_hidden: int = 512
    motion_bins: int = 32
    motion_pairs: int = 128
    motion_sigma: float | None = None  # None: the proxy's default offset spread

    @classmethod
    def from_dict(cls, values: dict) -> MultiProxyConfig:
        return dataclasses.replace(super().from_dict(values), tasks=tuple(values.get("tasks", ())))


def build_proxy(name: str, taps: FeatureTaps, config: MultiProxyConfig) -> nn.Module:
    """The head and loss of one proxy on ``taps`` (C: Ch. 2-3; J and V: §4.7.1)."""
    if name == "colorization":
        from pixelwise.methods.proxies.colorization import ColorizationProxy

        return ColorizationProxy(taps, config.colour_target, config.hidden, config.samples, config.window)
    if name == "jigsaw":
        from pixelwise.methods.proxies.jigsaw import JigsawProxy

        return JigsawProxy.for_taps(
            taps,
            hidden=config.jigsaw_hidden,
            grey=config.jigsaw_grey,
            crop=config.jigsaw_crop,
            tile=config.jigsaw_tile,
            wiggle=config.jigsaw_wiggle,
        )
    if name == "motion":
        from pixelwise.methods.proxies.relflow import RelativeFlowProxy

        return RelativeFlowProxy.for_taps(
            taps, bins=config.motion_bins, hidden=config.hidden, pairs=config.motion_pairs,
            sigma=config.motion_sigma,
        )  # fmt: skip
    raise ValueError(f"unknown proxy task {name!r}; choose from {', '.join(PROXIES)}")


class MultiProxyModel(nn.Module):
    """``model(task, images, targets) -> {'loss', ...}`` for one of ``config.tasks``."""

    def __init__(self, config: MultiProxyConfig) -> None:
        super().__init__()
        if not config.tasks:
            raise ValueError("a multi-proxy network needs at least one task (--tasks)")
        self.config = config
        backbone = create_backbone(config.backbone, config.in_channels, config.output_stride)
        self.taps = FeatureTaps(backbone, backbone.stage_names)
        self.proxies = nn.ModuleDict({name: build_proxy(name, self.taps, config) for name in config.tasks})

    @property
    def backbone(self) -> nn.Module:
        return self.taps.backbone

    def forward(
        self, task: str, images: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        proxy = self.proxies[task]
        if task == "motion":
            return proxy.loss(self.taps, targets["flow_image"], targets["flow"])
        return proxy.loss(self.taps, images)
