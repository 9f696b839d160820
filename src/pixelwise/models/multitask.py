"""One backbone, several dense outputs: the multi-task FCN (Long thesis §3.4) and the parts of the joint depth +
segmentation model (Mostajabi thesis §5.5.2).

Each output has its own head on the shared taps: a 3-layer 1x1-conv classifier on the shared zoom-out features
(``arch="zoomout"``, §5.5.2.1) or its own FCN skip head (``fcn8s`` ...). An output named ``depth`` follows
``methods/depth``'s parameterisation (§5.5): the head predicts log depth around a learnt global log depth,
``depth = exp(log_depth)``, and the model also returns ``log_depth`` (what part 2 of the joint model reads).

``frozen_rows`` runs a head with *detached weights* on chosen samples: their outputs still depend on the
backbone (and feed whatever reads them), but the head's weights get no gradient from them. That is §5.5.2's
"the seg head is frozen" for images that have depth but no labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from torch.func import functional_call

from pixelwise.models.backbones import create_backbone
from pixelwise.models.heads.fcn import FCNHead
from pixelwise.models.heads.zoomout import ZoomOutHead
from pixelwise.models.inputs import InputNormalizer
from pixelwise.models.segmenter import TAPS  # the one table of which stages each architecture reads
from pixelwise.models.stored import StoredConfig
from pixelwise.models.taps import FeatureTaps

MAX_LOG_DEPTH = 20.0  # exp never overflows


@dataclass(frozen=True)
class MultiOutputConfig(StoredConfig):
    """Everything needed to rebuild a :class:`MultiOutputModel`."""

    KIND: ClassVar[str] = "multi-task"

    arch: str = "zoomout"
    backbone: str = "resnet18"
    outputs: dict[str, int] = field(default_factory=lambda: {"seg": 11, "depth": 1})
    in_channels: int = 3
    image_channels: int | None = 3
    output_stride: int = 32
    head_width: int = 1000

    @property
    def num_classes(self) -> int:
        """The ``seg`` output's classes (what segmentation commands read); 0 without one."""
        return self.outputs.get("seg", 0)


def run_with_frozen_rows(module: nn.Module, rows: torch.Tensor | None, *args: Any, **kwargs: Any) -> Any:
    """``module(*args)``, except that for the samples where ``rows`` [N] is True it is computed with detached
    weights: they pass gradients to the inputs but not to ``module``'s parameters.

    Both passes see the whole batch, so BatchNorm uses the same batch statistics in each; the frozen pass
    updates copies of the running statistics (discarded), so they move once per step as usual. Given ``rows``,
    the frozen pass runs even when no row is True: under torchrun a SyncBatchNorm inside it is a collective, so
    whether it runs must not depend on one process's batch (the caller decides for all of them).
    """
    out = module(*args, **kwargs)
    if rows is None or not torch.is_grad_enabled():
        return out
    state = {name: p.detach() for name, p in module.named_parameters()}
    state |= {name: b.clone() for name, b in module.named_buffers()}
    frozen = functional_call(module, state, args, kwargs)

    def pick(live: torch.Tensor, still: torch.Tensor) -> torch.Tensor:
        mask = rows.to(live.device).view(-1, *([1] * (live.dim() - 1)))
        return torch.where(mask, still, live)

    if isinstance(out, dict):
        return {key: pick(out[key], frozen[key]) for key in out}
    return pick(out, frozen)


class MultiOutputModel(nn.Module):
    """``model(images in [0, 1]) -> {name: [N, K, H, W]}`` (+ ``log_depth`` with a depth output)."""

    def __init__(self, config: MultiOutputConfig) -> None:
        super().__init__()
        if not config.outputs or any(k < 1 for k in config.outputs.values()):
            raise ValueError(f"outputs must name at least one output of >= 1 channel, got {config.outputs}")
        self.config = config
        backbone = create_backbone(config.backbone, config.in_channels, config.output_stride)
        family = "vgg" if config.backbone.startswith("vgg") else "resnet"
        if config.arch not in TAPS:
            raise ValueError(f"unknown architecture {config.arch!r}; choose from {', '.join(TAPS)}")
        self.taps = FeatureTaps(backbone, TAPS[config.arch][family])
        channels, grids = self.taps.channels, self.taps.grids
        self.zoomout = config.arch == "zoomout"
        if self.zoomout:  # one zoom-out descriptor, one classifier per output
            self.head: nn.Module = ZoomOutHead(
                channels, grids, 1, hidden=config.head_width, outputs=dict(config.outputs)
            )
        else:  # one FCN skip head per output (each fuses its own scores coarse-to-fine)
            self.head = nn.ModuleDict({k: FCNHead(channels, grids, n) for k, n in config.outputs.items()})
        self.inputs = InputNormalizer(config.in_channels, backbone.output_stride, config.image_channels)
        # methods/depth's learnt global log depth (set from the training data before training)
        self.log_depth = nn.Parameter(torch.zeros(())) if "depth" in config.outputs else None
        if self.zoomout and "depth" in config.outputs:
            # Start at exactly the global log depth (FCN score layers are zero-initialised too, Long §3.3.4): a
            # random last layer gives exp(noise) depths that can blow up part 2's input in the first steps.
            last = self.head.classifiers["depth"][-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    @property
    def backbone(self) -> nn.Module:
        return self.taps.backbone

    def forward(
        self, images: torch.Tensor, frozen_rows: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        height, width = images.shape[-2:]
        x = self.inputs(images)
        size = x.shape[-2:]
        taps = self.taps(x)
        frozen_rows = frozen_rows or {}
        outputs: dict[str, torch.Tensor] = {}
        if self.zoomout:
            features = self.head.zoom_out_features(taps, size)
            for name, classifier in self.head.classifiers.items():
                scores = run_with_frozen_rows(classifier, frozen_rows.get(name), features)
                outputs[name] = self.head.to_pixels(scores, size)
        else:
            for name, head in self.head.items():
                outputs[name] = run_with_frozen_rows(head, frozen_rows.get(name), taps, size=size)["seg"]
        outputs = {key: value[..., :height, :width] for key, value in outputs.items()}
        if self.log_depth is not None:
            log_depth = outputs["depth"].float() + self.log_depth
            outputs["log_depth"] = log_depth
            outputs["depth"] = log_depth.clamp(max=MAX_LOG_DEPTH).exp()
        return outputs
