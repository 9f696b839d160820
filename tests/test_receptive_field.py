"""Receptive-field calculator against thesis Table 2.1 / Table 3.1 and against PyTorch itself."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixelwise.models.receptive_field import ARCHITECTURES, Layer, format_table, receptive_fields


def _by_name(arch: str) -> dict[str, tuple[int, int]]:
    return {name: (rf, stride) for name, rf, stride in receptive_fields(ARCHITECTURES[arch])}


def test_alexnet_matches_thesis_table_2_1() -> None:
    rows = _by_name("alexnet")
    expected = {
        "conv1": (11, 4),
        "pool1": (19, 8),
        "conv2": (51, 8),
        "pool2": (67, 16),
        "conv3": (99, 16),
        "conv4": (131, 16),
        "conv5": (163, 16),
        "pool5": (195, 32),
    }
    assert {k: rows[k] for k in expected} == expected


def test_convolutionalised_classifiers_match_thesis_table_3_1() -> None:
    assert _by_name("alexnet")["fc7"] == (355, 32)
    assert _by_name("vgg16")["fc7"] == (404, 32)


def test_vgg16_and_resnets_well_known_values() -> None:
    vgg = _by_name("vgg16")
    assert vgg["conv1_1"] == (3, 1)
    assert vgg["pool5"] == (212, 32)
    assert _by_name("resnet18")["stem"] == (11, 4)
    assert _by_name("resnet18")["layer4"] == (435, 32)
    assert _by_name("resnet50")["layer4"] == (427, 32)
    assert [_by_name("resnet50")[f"layer{i}"][1] for i in range(1, 5)] == [4, 8, 16, 32]


def test_composition_rule_and_dilation() -> None:
    # f_ks o g_k's' = (f o g)_{k' + (k-1)s', ss'}: g = 7x7 stride 2, f = 3x3 stride 2 -> 7 + 2*2 = 11, 4.
    assert receptive_fields([Layer("g", 7, 2), Layer("f", 3, 2)])[-1] == ("f", 11, 4)
    assert Layer("d", 3, 1, dilation=4).effective_kernel == 9
    assert receptive_fields([Layer("d", 3, 1, dilation=4)]) == [("d", 9, 1)]


def test_format_table_lists_every_layer() -> None:
    table = format_table(receptive_fields(ARCHITECTURES["alexnet"]))
    lines = table.splitlines()
    assert lines[0].split() == ["layer", "rf", "size", "stride"]
    assert lines[1].split() == ["conv1", "11", "x", "11", "4", "x", "4"]
    assert len(lines) == 1 + len(ARCHITECTURES["alexnet"])


def _gradient_extent(net: nn.Module, size: int, unit: int) -> tuple[int, int]:
    """First and last input column whose value reaches output unit (0, unit) of a 1-channel net."""
    x = torch.ones(1, 1, size, size, requires_grad=True)
    net(x)[0, 0, 0, unit].backward()
    cols = torch.nonzero(x.grad[0, 0].abs().sum(dim=0)).flatten()
    return int(cols.min()), int(cols.max())


@pytest.mark.parametrize("arch", ["alexnet", "vgg16", "resnet18"])
def test_rf_matches_gradient_support_of_equivalent_conv_chain(arch: str) -> None:
    # Build the main path as unpadded all-ones 1-channel convs; unit j's rf is [j s, j s + rf - 1].
    layers = ARCHITECTURES[arch]
    net = nn.Sequential(
        *(nn.Conv2d(1, 1, lay.kernel, lay.stride, dilation=lay.dilation, bias=False) for lay in layers)
    )
    for conv in net:
        nn.init.ones_(conv.weight)
    net.requires_grad_(False)
    _, rf, stride = receptive_fields(layers)[-1]
    assert _gradient_extent(net, rf + stride, unit=1) == (stride, stride + rf - 1)
