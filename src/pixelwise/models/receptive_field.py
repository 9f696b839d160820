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

from torch import nn


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


# --- Where each cell sits: the centre offset (fcn.md erratum) -------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """Cell ``i`` of a map with this grid is centred on input pixel ``offset + stride * i`` (pixel p's centre is p).

    torchvision ResNets (odd kernels, symmetric padding, the stride in the conv) have offset 0 at every stage:
    cell i sits at pixel s*i. 2x2-pooled grids (VGG, the label autoencoder) have offset (s-1)/2, the centre of the
    s x s block, which is what ``interpolate(align_corners=False)`` assumes. Every resampling of a tapped feature
    goes through :mod:`pixelwise.models.resample` with the two grids, never through that assumption.
    """

    stride: int
    offset: float = 0.0

    @classmethod
    def block(cls, stride: int) -> Grid:
        """The grid whose cell j covers pixels s*j .. s*j + s-1 (centre s*j + (s-1)/2)."""
        return cls(stride, (stride - 1) / 2)

    def position(self, cell: float) -> float:
        """Input-pixel coordinate of (fractional) cell index ``cell``."""
        return self.offset + self.stride * cell

    def cell(self, pixel: float) -> float:
        """Fractional cell index of input pixel ``pixel``."""
        return (pixel - self.offset) / self.stride


def _pair(value: int | tuple[int, ...]) -> int:
    if isinstance(value, tuple):
        if len(set(value)) != 1:
            raise ValueError(f"non-square layer geometry {value} is not supported")
        return value[0]
    return value


def layer_geometry(module: nn.Module) -> tuple[int, int, int, int] | None:
    """(kernel, stride, padding, dilation) of a spatial layer, or None for a pointwise one."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
        return _pair(module.kernel_size), _pair(module.stride), _pair(module.padding), _pair(module.dilation)
    if isinstance(module, nn.AvgPool2d):
        return _pair(module.kernel_size), _pair(module.stride or module.kernel_size), _pair(module.padding), 1
    return None


def main_path_layers(module: nn.Module) -> list[nn.Module]:
    """The spatial layers of ``module`` in execution order, skipping residual ``downsample`` shortcuts.

    Registration order is execution order for torchvision's ResNet blocks and VGG ``features``; a shortcut is
    aligned with its block's main path by construction (1x1 stride-s conv, no padding), so it adds nothing.
    """
    layers = []
    for name, child in module.named_modules():
        if "downsample" in name.split("."):
            continue
        if layer_geometry(child) is not None:
            layers.append(child)
    return layers


def compose(grid: Grid, module: nn.Module) -> Grid:
    """The grid after one spatial layer: o' = o + ((k-1)/2 * d - pad) * s_prev, s' = s * s_prev."""
    geometry = layer_geometry(module)
    if geometry is None:
        return grid
    kernel, stride, padding, dilation = geometry
    offset = grid.offset + ((kernel - 1) / 2 * dilation - padding) * grid.stride
    return Grid(grid.stride * stride, offset)


def stage_grids(stages: Mapping[str, nn.Module]) -> dict[str, Grid]:
    """The output grid of every stage of a network run stage after stage (a backbone's ``stage_modules()``)."""
    grid = Grid(1, 0.0)
    grids = {}
    for name, module in stages.items():
        for layer in main_path_layers(module):
            grid = compose(grid, layer)
        grids[name] = grid
    return grids
