"""The two-part joint model (Mostajabi thesis §5.5.2), kind ``depth-seg``.

Part 1: a multi-output network on RGB with a seg head and a depth head. Part 2: a second one on
[RGB, part 1's predicted depth, part 1's predicted seg] with both heads again. The gaps the thesis leaves are
filled as the spec says: part 2 reads the seg as softmax probabilities (differentiable, so part 2's losses reach
part 1 unless ``detach``) and the depth as predicted log depth standardised by the training data's mean / std
of log depth (stored in the config). ``parts=1`` is the single-part arm: one network with two heads.

``forward(images, has_seg=None)``: with ``has_seg`` [N] the seg heads of both parts run on detached weights
for the images without labels (:func:`~pixelwise.models.multitask.run_with_frozen_rows`): their class
probabilities still feed part 2 and carry its depth loss's gradient into the shared network, but the seg
heads' weights learn from labelled images only. The loss balance (loss.py) lives here as buffers, so
checkpoints carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pixelwise.methods.joint.loss import BalancedTerms
from pixelwise.models.multitask import MultiOutputConfig, MultiOutputModel
from pixelwise.models.stored import StoredConfig


@dataclass(frozen=True)
class JointModelConfig(StoredConfig):
    """Everything needed to rebuild a :class:`JointModel` (stored in its checkpoints)."""

    KIND: ClassVar[str] = "depth-seg"

    arch: str = "zoomout"
    backbone: str = "resnet18"
    num_classes: int = 6
    output_stride: int = 32
    head_width: int = 1000
    parts: int = 2
    detach: bool = False
    log_depth_mean: float = 0.0  # of the training data: part 2 reads (log depth - mean) / std
    log_depth_std: float = 1.0
    arm: str = "two-part"

    def part(self, index: int) -> MultiOutputConfig:
        """Part 1 reads RGB; part 2 reads RGB + 1 depth channel + K class probabilities."""
        extra = 0 if index == 1 else 1 + self.num_classes
        return MultiOutputConfig(self.arch, self.backbone, {"seg": self.num_classes, "depth": 1}, 3 + extra, 3,
                                 self.output_stride, self.head_width)  # fmt: skip


class JointModel(nn.Module):
    """``model(images) -> {"seg", "depth", "part1_seg", "part1_depth"}`` (the final part's first)."""

    def __init__(self, config: JointModelConfig) -> None:
        super().__init__()
        if config.parts not in (1, 2):
            raise ValueError(f"parts must be 1 or 2, got {config.parts}")
        self.config = config
        self.part1 = MultiOutputModel(config.part(1))
        self.part2 = MultiOutputModel(config.part(2)) if config.parts == 2 else None
        self.balance = BalancedTerms(config.arm)

    @property
    def backbone(self) -> nn.Module:
        """Part 1's backbone (what --weights / --freeze address)."""
        return self.part1.backbone

    def part2_inputs(self, images: torch.Tensor, first: dict[str, torch.Tensor]) -> torch.Tensor:
        """[RGB, standardised predicted log depth, class probabilities]: what part 2 reads."""
        config = self.config
        depth = (first["log_depth"].float() - config.log_depth_mean) / config.log_depth_std
        probabilities = first["seg"].float().softmax(dim=1)
        if config.detach:
            depth, probabilities = depth.detach(), probabilities.detach()
        return torch.cat([images.float(), depth, probabilities], dim=1)

    def forward(self, images: torch.Tensor, has_seg: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        frozen = None if has_seg is None else {"seg": ~has_seg.bool()}
        first = self.part1(images, frozen)
        if self.part2 is None:
            return {"seg": first["seg"], "depth": first["depth"]}
        second = self.part2(self.part2_inputs(images, first), frozen)
        return {"seg": second["seg"], "depth": second["depth"], "part1_seg": first["seg"],
                "part1_depth": first["depth"]}  # fmt: skip
