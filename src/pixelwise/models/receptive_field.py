"""Receptive-field size and stride calculator (thesis ch. 2, Table 2.1; ch. 3, Table 3.1).

A layer with kernel ``k`` and stride ``s`` applied after a network with receptive field ``k'`` and stride
``s'`` gives, by the composition rule (thesis §3.2),

    f_{ks} o g_{k's'} = (f o g)_{k' + (k-1)s', s s'}.

A dilated kernel acts as a kernel of effective size ``d(k-1)+1``. Padding shifts the rf but does not change
its size, and residual shortcuts do not enlarge it, so only the longest (main) path is listed for ResNets.
Pointwise layers (ReLU, LRN, BatchNorm) are left out. Identity rows (kernel 1, stride 1) named ``stem``,
``layer1`` .. ``layer4`` mark the ResNet stage outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Layer:
    """One spatial layer (conv or pooling) of a network's main path."""

    name: str
    kernel: int
    stride: int
    dilation: int = 1

    @property
    def effective_kernel(self) -> int:
        return self.dilation * (self.kernel - 1) + 1


def receptive_fields(layers: Sequence[Layer]) -> list[tuple[str, int, int]]:
    """``(name, rf size, cumulative stride)`` after each layer, starting from a single input pixel."""
    rf, stride = 1, 1
    rows: list[tuple[str, int, int]] = []
    for layer in layers:
        rf = rf + (layer.effective_kernel - 1) * stride  # k' + (k-1) s'
        stride = stride * layer.stride  # s s'
        rows.append((layer.name, rf, stride))
    return rows


def format_table(rows: Sequence[tuple[str, int, int]]) -> str:
    """Plain-text table in the layout of thesis Table 2.1 (layer, rf size, stride)."""
    header = ("layer", "rf size", "stride")
    cells = [header] + [(name, f"{rf} x {rf}", f"{s} x {s}") for name, rf, s in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _alexnet() -> list[Layer]:
    # CaffeNet layout (thesis §1.1.4: pooling before LRN); fc6/fc7 convolutionalised as in FCN-AlexNet.
    return [
        Layer("conv1", 11, 4),
        Layer("pool1", 3, 2),
        Layer("conv2", 5, 1),
        Layer("pool2", 3, 2),
        Layer("conv3", 3, 1),
        Layer("conv4", 3, 1),
        Layer("conv5", 3, 1),
        Layer("pool5", 3, 2),
        Layer("fc6", 6, 1),
        Layer("fc7", 1, 1),
    ]


def _vgg16() -> list[Layer]:
    layers: list[Layer] = []
    for block, n_convs in enumerate((2, 2, 3, 3, 3), start=1):
        layers += [Layer(f"conv{block}_{i}", 3, 1) for i in range(1, n_convs + 1)]
        layers.append(Layer(f"pool{block}", 2, 2))
    return layers + [Layer("fc6", 7, 1), Layer("fc7", 1, 1)]  # convolutionalised classifier (§3.3.1)


def _resnet_stem() -> list[Layer]:
    return [Layer("conv1", 7, 2), Layer("maxpool", 3, 2), Layer("stem", 1, 1)]


def _resnet(blocks: Sequence[int], bottleneck: bool) -> list[Layer]:
    """torchvision ResNet main path; the stride sits on the first block's 3x3 conv (ResNet v1.5)."""
    layers = _resnet_stem()
    for stage, n_blocks in enumerate(blocks, start=1):
        for b in range(n_blocks):
            stride = 2 if stage > 1 and b == 0 else 1
            prefix = f"layer{stage}.{b}"
            if bottleneck:
                layers += [
                    Layer(f"{prefix}.conv1", 1, 1),
                    Layer(f"{prefix}.conv2", 3, stride),
                    Layer(f"{prefix}.conv3", 1, 1),
                ]
            else:
                layers += [Layer(f"{prefix}.conv1", 3, stride), Layer(f"{prefix}.conv2", 3, 1)]
        layers.append(Layer(f"layer{stage}", 1, 1))
    return layers


# Read-only registry (no global mutable state): tuples inside a mapping proxy; copy with list(...) to edit.
ARCHITECTURES: Mapping[str, tuple[Layer, ...]] = MappingProxyType(
    {
        "alexnet": tuple(_alexnet()),
        "vgg16": tuple(_vgg16()),
        "resnet18": tuple(_resnet((2, 2, 2, 2), bottleneck=False)),
        "resnet34": tuple(_resnet((3, 4, 6, 3), bottleneck=False)),
        "resnet50": tuple(_resnet((3, 4, 6, 3), bottleneck=True)),
        "resnet101": tuple(_resnet((3, 4, 23, 3), bottleneck=True)),
    }
)
