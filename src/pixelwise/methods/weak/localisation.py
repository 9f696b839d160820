"""Learning to localise classes from image-level tags (Mostajabi thesis §4.3.1).

On zoom-out features, a localisation network gives every location i two scores per class c: foreground S(c, i) and
background S-bar(c, i) ("anything but c"). The **global softmax** (Eq. 4.3.2) max-pools the two maps separately,

    p(c) = max_i e^S(c,i) / (max_j e^S(c,j) + max_l e^S-bar(c,l)),

so an image without c must raise its background score somewhere, and the gradient reaches two locations per
image (40.6 vs 38.0 mIoU for the per-pixel softmax of Eq. 4.3.1, Table 4.2). The image-level log-loss uses the
tagged classes as positives and as many random untagged classes as negatives (§4.4.1).

The network is pixelwise's end-to-end zoom-out model (:class:`~pixelwise.models.heads.ZoomOutHead`) with 2 x C
outputs: its 1x1-conv classifier is the thesis's per-location network (shared hidden layers across classes here,
one 1x1 -> 1024 -> 2 network per class there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pixelwise.models.segmenter import ModelConfig, SegmentationModel
from pixelwise.models.stored import StoredConfig


@dataclass(frozen=True)
class TagLocaliserConfig(StoredConfig):
    """Everything needed to rebuild the localiser; stored in its checkpoints."""

    KIND: ClassVar[str] = "tag-localiser"

    backbone: str = "resnet18"
    num_classes: int = 11
    in_channels: int = 3
    head_width: int = 1000


class TagLocaliser(nn.Module):
    """``model(images) -> {"foreground": S [N, C, H, W], "background": S-bar [N, C, H, W]}``."""

    def __init__(self, config: TagLocaliserConfig) -> None:
        super().__init__()
        self.config = config
        self.net = SegmentationModel(
            ModelConfig(
                "zoomout", config.backbone, 2 * config.num_classes, config.in_channels, 32, config.head_width
            )
        )

    @property
    def backbone(self) -> nn.Module:
        return self.net.backbone

    def grid_outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(zoom-out descriptors [N, D, h, w], foreground scores S [N, C, h, w]) on the stride-4 grid of the
        padded input, before upsampling: what diverse sampling works on."""
        net = self.net
        x = net.inputs(images)
        features = net.head.zoom_out_features(net.taps(x), x.shape[-2:])
        return features, net.head.classifier(features)[:, : self.config.num_classes]

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        scores = self.net(images)["seg"]
        foreground, background = scores.chunk(2, dim=1)
        return {"foreground": foreground, "background": background}


def global_softmax_log_probs(
    foreground: torch.Tensor, background: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(c), log (1 - p(c))) of Eq. 4.3.2 for every image and class, [N, C] each: the two-way log-softmax of
    the maxima, both computed directly so neither saturates when p is near 0 or 1."""
    top = foreground.flatten(2).amax(dim=2)
    top_background = background.flatten(2).amax(dim=2)
    normaliser = torch.logaddexp(top, top_background)
    return top - normaliser, top_background - normaliser


def tag_loss(
    foreground: torch.Tensor,
    background: torch.Tensor,
    tags: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Image-level log-loss: every tagged class a positive, as many random untagged classes negatives (§4.4.1)."""
    log_p, log_not_p = global_softmax_log_probs(foreground.float(), background.float())
    positives = tags > 0
    # Rank the untagged classes of each image in a random order; the first (number of positives) are negatives.
    noise = torch.rand(tags.shape, generator=generator, device="cpu").to(tags.device)
    rank = torch.where(positives, torch.inf, noise).argsort(dim=1).argsort(dim=1)
    negatives = ~positives & (rank < positives.sum(dim=1, keepdim=True))
    losses = -(log_p * positives + log_not_p * negatives)
    return losses.sum() / (positives.sum() + negatives.sum()).clamp(min=1)
