"""The label autoencoder (Mostajabi et al. 2018, §3.1): a model of ground-truth label maps alone, no images.

"The encoder is a sequence of five 3x3 convolutional layers, with 2x2 max-pooling between them. The decoder uses
2x upsampling followed by 3x3 convolution", mirrored, "with no skip connections". Input is the one-hot label map
(K channels); void pixels are all-zero in the input and ignored by the per-pixel cross-entropy reconstruction loss.

Widths are named by the bottleneck, as in the paper: **32** (every layer 32), **128** (conv1 32, conv2-5 128),
**256** (conv1 32, conv2-4 128, conv5 256); the decoder uses them in reverse. Engineering choices the paper leaves
open (docs: specs/label-autoencoder.md):

- The bottleneck stride is ambiguous: four pools between five convs give stride 16, a pool after conv5 gives 32.
  ``code_stride`` picks one; the regulariser matches it to the backbone layer it reads (§3.3).
- The last encoder conv is linear (no ReLU): the code is then an unconstrained vector, which the new *linear*
  1x1 conv of the regulariser (§3.3) can reach anywhere.
- Inputs are padded with void (all-zero one-hot) to a multiple of the code stride and outputs cropped back.

The encoder is a :class:`~pixelwise.models.backbones.Backbone` (named stages ``conv1``... with channels and strides)
so the encoder-regression variant reads its conv1 + conv3 activations through ``FeatureTaps`` like any backbone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.models.backbones import Backbone
from pixelwise.models.stored import StoredConfig

WIDTHS = (32, 128, 256)  # the paper's three autoencoders, named by their bottleneck width


def layer_widths(bottleneck: int, depth: int) -> tuple[int, ...]:
    """Encoder widths conv1..conv<depth> of the 32 / 128 / 256 autoencoders (§3.1), for any depth >= 2."""
    if bottleneck == 32:
        return (32,) * depth
    if bottleneck == 128:
        return (32,) + (128,) * (depth - 1)
    if bottleneck == 256:
        return (32,) + (128,) * (depth - 2) + (256,)
    raise ValueError(
        f"unknown label-autoencoder width {bottleneck}; choose from {', '.join(map(str, WIDTHS))}"
    )


@dataclass(frozen=True)
class LabelAEConfig(StoredConfig):
    """Everything needed to rebuild a label autoencoder; stored in its checkpoints (kind ``label-ae``)."""

    KIND: ClassVar[str] = "label-ae"

    num_classes: int = 11
    width: int = 32  # bottleneck width: 32, 128 or 256 (§3.1)
    depth: int = 5  # conv layers in the encoder (and the decoder)
    code_stride: int = 16  # 2^(depth-1) (pools between the convs only) or 2^depth (one more after the last)
    ignore_index: int = 255

    def __post_init__(self) -> None:
        if self.depth < 2:
            raise ValueError(f"label autoencoder depth must be >= 2, got {self.depth}")
        if self.code_stride not in (2 ** (self.depth - 1), 2**self.depth):
            raise ValueError(
                f"code stride {self.code_stride} does not fit depth {self.depth}: use "
                f"{2 ** (self.depth - 1)} (pools between the convs) or {2**self.depth} (and one after the last)"
            )
        layer_widths(self.width, self.depth)  # validates the width

    @property
    def widths(self) -> tuple[int, ...]:
        return layer_widths(self.width, self.depth)

    @property
    def code_channels(self) -> int:
        return self.widths[-1]


def one_hot_labels(labels: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """Integer labels [N, H, W] -> float one-hot [N, K, H, W]; void (``ignore_index``) pixels are all-zero."""
    labels = labels.as_subclass(torch.Tensor).long()
    valid = labels != ignore_index
    one_hot = F.one_hot(labels.masked_fill(~valid, 0), num_classes).permute(0, 3, 1, 2).float()
    return one_hot * valid.unsqueeze(1)


def pad_to_multiple(x: torch.Tensor, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad the last two dims at the bottom/right to a multiple of ``stride`` (zero one-hot = void)."""
    pad_h, pad_w = -x.shape[-2] % stride, -x.shape[-1] % stride
    return F.pad(x, (0, pad_w, 0, pad_h), value=value) if pad_h or pad_w else x


class LabelEncoder(Backbone):
    """Five 3x3 convs (ReLU) with 2x2 max-pooling between them (§3.1); stages ``conv1``..``conv<depth>``, ``code``.

    ``conv<i>`` runs at stride 2^(i-1); the last conv is linear (it is the code). ``code`` is an extra 2x2 pool for
    a code stride of 2^depth, else the identity.
    """

    def __init__(self, config: LabelAEConfig) -> None:
        super().__init__()
        widths = config.widths
        layers: dict[str, nn.Module] = {}
        in_channels = config.num_classes
        for index, width in enumerate(widths):
            steps: list[nn.Module] = [nn.MaxPool2d(2)] if index > 0 else []
            steps.append(nn.Conv2d(in_channels, width, 3, padding=1))
            if index < len(widths) - 1:
                steps.append(nn.ReLU(inplace=True))
            layers[f"conv{index + 1}"] = nn.Sequential(*steps)
            in_channels = width
        extra_pool = config.code_stride == 2**config.depth
        layers["code"] = nn.MaxPool2d(2) if extra_pool else nn.Identity()
        self.layers = nn.ModuleDict(layers)
        self.stage_names = tuple(layers)
        self.channels = {**{f"conv{i + 1}": w for i, w in enumerate(widths)}, "code": widths[-1]}
        self.strides = {**{f"conv{i + 1}": 2**i for i in range(len(widths))}, "code": config.code_stride}

    def stage_modules(self) -> dict[str, nn.Module]:
        return dict(self.layers.items())


class LabelDecoder(nn.Module):
    """The mirrored decoder (§3.1): per encoder layer, in reverse, 2x upsampling (where the encoder pooled) then
    a 3x3 conv; widths reversed, ending in K class scores. Input: a code [N, C, h, w]; output [N, K, h*s, w*s]."""

    def __init__(self, config: LabelAEConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.widths
        outputs = (
            config.num_classes,
            *widths[:-1],
        )  # conv<i>'s mirror maps width i -> width i-1 (K at the end)
        stride = config.code_stride
        layers: list[nn.Module] = []
        for index in reversed(range(len(widths))):
            if stride > 2**index:  # back to the resolution encoder conv<index+1> worked at
                layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
                stride //= 2
            layers.append(nn.Conv2d(widths[index], outputs[index], 3, padding=1))
            if index > 0:
                layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.layers(code)


class LabelAutoencoder(nn.Module):
    """``model(labels [N, H, W] int) -> reconstruction logits [N, K, H, W]`` (§3.1), through a stride-s code."""

    def __init__(self, config: LabelAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = LabelEncoder(config)
        self.decoder = LabelDecoder(config)

    @property
    def backbone(self) -> nn.Module:
        """The training loop's ``--freeze`` reads ``model.backbone``; for a label model that is the encoder."""
        return self.encoder

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        """Void-padded one-hot input at a multiple of the code stride."""
        one_hot = one_hot_labels(labels, self.config.num_classes, self.config.ignore_index)
        return pad_to_multiple(one_hot, self.config.code_stride)

    def encode(self, labels: torch.Tensor) -> torch.Tensor:
        """The bottleneck code [N, C, ceil(H/s), ceil(W/s)] of label maps [N, H, W]."""
        return self.encoder.forward_stages(self.one_hot(labels))["code"]

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        height, width = labels.shape[-2:]
        return self.decoder(self.encode(labels))[..., :height, :width]


def load_label_autoencoder(path: str | Path) -> tuple[LabelAutoencoder, dict[str, Any]]:
    """Rebuild a label autoencoder from a ``pixelwise pretrain --method label-ae`` checkpoint (eval mode)."""
    from pixelwise.engine.checkpoint import load_checkpoint, resolve_checkpoint

    path = resolve_checkpoint(path)
    checkpoint = load_checkpoint(path)
    described = checkpoint.meta.get("model", {})
    if described.get("kind") != "label-ae":
        raise ValueError(
            f"{path}: a {described.get('kind', 'segmentation')!r} checkpoint, not a label autoencoder "
            "(train one with `pixelwise pretrain --method label-ae`)"
        )
    model = LabelAutoencoder(LabelAEConfig.from_dict(described))
    model.load_state_dict(checkpoint.model_state)
    return model.eval(), checkpoint.meta
