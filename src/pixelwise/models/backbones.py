"""Backbones as named stages with known channels and strides.

Every backbone is built from a torchvision constructor with ``weights=None`` (nothing is ever downloaded) and
exposes its stages in order (like smp's encoders): ``stage_names``, ``channels[name]``, ``strides[name]``.
The torchvision module names are kept (``conv1``, ``layer1`` ... / ``features.N``) so that a user-supplied
torchvision state dict loads without renaming (see :mod:`pixelwise.models.weights`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
import torchvision
from torch import nn

from pixelwise.models.receptive_field import Grid, stage_grids


class Backbone(nn.Module):
    """Base class: ``forward_stages(x, until)`` runs the stages in order and returns every stage output."""

    stage_names: tuple[str, ...]
    channels: dict[str, int]
    strides: dict[str, int]

    def stage_modules(self) -> dict[str, nn.Module]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_stages(self, x: torch.Tensor, until: str | None = None) -> dict[str, torch.Tensor]:
        """Stage outputs in order; stops after ``until`` so shallow taps do not pay for the deep layers."""
        outputs: dict[str, torch.Tensor] = {}
        for name, module in self.stage_modules().items():
            x = module(x)
            outputs[name] = x
            if name == until:
                break
        return outputs

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_stages(x)

    @property
    def output_stride(self) -> int:
        return max(self.strides.values())

    @property
    def grids(self) -> dict[str, Grid]:
        """Each stage's grid (stride and the pixel of cell 0's centre), computed from its layers' geometry."""
        grids = stage_grids(self.stage_modules())
        for name, grid in grids.items():
            assert grid.stride == self.strides[name], f"{name}: layers give stride {grid.stride}"
        return grids


def _replace_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    if in_channels == conv.in_channels:
        return conv
    return nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        bias=conv.bias is not None,
    )


def _dilate(layer: nn.Sequential, dilation: int) -> None:
    """Turn a stride-2 ResNet stage into a stride-1 stage with dilated 3x3 convs (DeepLab-style).

    torchvision only supports this for Bottleneck blocks; doing it by hand works for BasicBlock too.
    """
    for module in layer.modules():
        if isinstance(module, nn.Conv2d):
            if module.stride == (2, 2):
                module.stride = (1, 1)
            if module.kernel_size == (3, 3):
                module.dilation = (dilation, dilation)
                module.padding = (dilation, dilation)


class ResNetBackbone(Backbone):
    """ResNet stages: conv1 (stride 2), layer1 (4), layer2 (8), layer3 (16), layer4 (32).

    ``output_stride`` 16 or 8 dilates the last one or two stages instead of striding (Long §3.3.1 "shift-and-stitch"
    trick realised as dilation), keeping resolution for dense prediction.
    """

    def __init__(self, depth: int = 18, in_channels: int = 3, output_stride: int = 32) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        constructor: Callable[..., torchvision.models.ResNet] = getattr(torchvision.models, f"resnet{depth}")
        net = constructor(weights=None)
        self.conv1 = _replace_first_conv(net.conv1, in_channels)
        self.bn1, self.relu, self.maxpool = net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        widths = [64, 64, 128, 256, 512] if depth < 50 else [64, 256, 512, 1024, 2048]
        self.stage_names = ("conv1", "layer1", "layer2", "layer3", "layer4")
        strides = [2, 4, 8, 16, 32]
        if output_stride <= 16:
            _dilate(self.layer4, 2)
            strides[4] = 16
        if output_stride == 8:
            _dilate(self.layer3, 2)
            _dilate(self.layer4, 4)
            strides[3:] = [8, 8]
        self.channels = dict(zip(self.stage_names, widths))
        self.strides = dict(zip(self.stage_names, strides))

    def stage_modules(self) -> dict[str, nn.Module]:
        return {
            "conv1": nn.Sequential(self.conv1, self.bn1, self.relu),
            "layer1": nn.Sequential(self.maxpool, self.layer1),
            "layer2": self.layer2,
            "layer3": self.layer3,
            "layer4": self.layer4,
        }


class VGGBackbone(Backbone):
    """VGG16 stages pool1..pool5 (strides 2..32) and the convolutionalised classifier ``fc7`` (stride 32).

    Long §3.1: fc6 becomes a 7x7 conv over pool5 and fc7 a 1x1 conv (see ``weights.convolutionalize_vgg``).
    'Same' padding everywhere instead of the reference's pad-100-and-crop: score maps then align by construction
    and inputs are padded to a multiple of 32 by the model (any input size works).
    ``width`` scales every channel count (0.25 gives the narrow VGG that trains on a CPU); ``fc_kernel`` 3 with a
    narrow width keeps fc6 cheap.
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: float = 1.0,
        fc_channels: int = 4096,
        fc_kernel: int = 7,
        batch_norm: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        cfg: list[int | str] = [
            64,
            64,
            "M",
            128,
            128,
            "M",
            256,
            256,
            256,
            "M",
            512,
            512,
            512,
            "M",
            512,
            512,
            512,
            "M",
        ]
        cfg = [c if c == "M" else max(8, int(round(int(c) * width))) for c in cfg]
        layers = torchvision.models.vgg.make_layers(cfg, batch_norm=batch_norm)  # type: ignore[arg-type]
        layers[0] = _replace_first_conv(layers[0], in_channels)
        self.features = layers
        pools = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
        self._bounds = list(zip([0] + [p + 1 for p in pools[:-1]], [p + 1 for p in pools]))
        last = int(cfg[-2])
        self.fc = nn.Sequential(
            OrderedDict(
                fc6=nn.Conv2d(last, fc_channels, fc_kernel, padding=fc_kernel // 2),
                relu6=nn.ReLU(inplace=True),
                drop6=nn.Dropout(dropout),
                fc7=nn.Conv2d(fc_channels, fc_channels, 1),
                relu7=nn.ReLU(inplace=True),
                drop7=nn.Dropout(dropout),
            )
        )
        self.stage_names = ("pool1", "pool2", "pool3", "pool4", "pool5", "fc7")
        widths = [int(cfg[i - 1]) for i, c in enumerate(cfg) if c == "M"] + [fc_channels]
        self.channels = dict(zip(self.stage_names, widths))
        self.strides = dict(zip(self.stage_names, [2, 4, 8, 16, 32, 32]))

    def stage_modules(self) -> dict[str, nn.Module]:
        stages: dict[str, nn.Module] = {
            name: self.features[a:b] for name, (a, b) in zip(self.stage_names, self._bounds)
        }
        stages["fc7"] = self.fc
        return stages


BACKBONES: dict[str, Callable[..., Backbone]] = {
    "resnet18": lambda **kw: ResNetBackbone(18, **kw),
    "resnet34": lambda **kw: ResNetBackbone(34, **kw),
    "resnet50": lambda **kw: ResNetBackbone(50, **kw),
    "resnet101": lambda **kw: ResNetBackbone(101, **kw),
    "vgg16": lambda **kw: VGGBackbone(**_no_stride(kw)),
    "vgg16_bn": lambda **kw: VGGBackbone(batch_norm=True, **_no_stride(kw)),
    # Narrow VGG for CPUs: a quarter of the channels, fc6 3x3 -> 512 (about 1/16 of VGG16's compute).
    "vgg16_narrow": lambda **kw: VGGBackbone(
        width=0.25, fc_channels=512, fc_kernel=3, batch_norm=True, **_no_stride(kw)
    ),
}


def _no_stride(kwargs: dict) -> dict:
    stride = kwargs.pop("output_stride", 32)
    if stride != 32:
        raise ValueError("VGG backbones support output_stride 32 only; use a ResNet for dilated backbones")
    return kwargs


def create_backbone(name: str, in_channels: int = 3, output_stride: int = 32) -> Backbone:
    """Build a backbone by name (see ``BACKBONES``) with random weights."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
    return BACKBONES[name](in_channels=in_channels, output_stride=output_stride)


def freeze_stages(backbone: Backbone, upto: str) -> list[nn.Module]:
    """Freeze the stages from the stem up to and including ``upto`` ('backbone' = all, 'none' = nothing).

    Returns the frozen modules: the training loop keeps them in eval mode, so their BatchNorm statistics stay
    those of pretraining (Larsson Table 3.6 compares fine-tuning none / some / all layers).
    """
    if upto == "none":
        return []
    names = backbone.stage_names
    target = names[-1] if upto == "backbone" else upto
    if target not in names:
        raise ValueError(
            f"--freeze {upto!r}: not a stage of {type(backbone).__name__}; use none, backbone or one of "
            f"{', '.join(names)}"
        )
    frozen = []
    for name, module in backbone.stage_modules().items():
        module.requires_grad_(False)
        frozen.append(module)
        if name == target:
            break
    return frozen
