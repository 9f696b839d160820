"""Sparse hypercolumns equal dense bilinear upsampling + gather, in values and in gradients (Larsson §2.3.6)."""

from __future__ import annotations

import torch

from pixelwise.models.heads.hypercolumn import (
    HypercolumnHead,
    dense_hypercolumns,
    random_points,
    sample_hypercolumns,
)
from pixelwise.models.receptive_field import Grid


def _taps(requires_grad: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Grid]]:
    torch.manual_seed(0)
    # ResNet-style grids (cell i at s*i) and a VGG-style block grid (centre s*i + (s-1)/2)
    strides = {"s1": Grid(1), "s2": Grid(2), "s4": Grid(4), "s8": Grid.block(8)}
    taps = {n: torch.randn(2, 3 + i, 32 // g.stride, 48 // g.stride, dtype=torch.float64,
                           requires_grad=requires_grad)
            for i, (n, g) in enumerate(strides.items())}  # fmt: skip
    return taps, strides


def test_sparse_equals_dense_upsample_then_gather_values_and_gradients() -> None:
    taps, strides = _taps()
    points = random_points(2, 50, (32, 48), torch.Generator().manual_seed(1))
    points[0, :4] = torch.tensor([[0, 0], [31, 47], [0, 47], [31, 0]])  # corners: border handling must agree
    sparse = sample_hypercolumns(taps, strides, points)
    weights = torch.randn_like(sparse)
    grads_sparse = torch.autograd.grad((sparse * weights).sum(), list(taps.values()))

    dense = dense_hypercolumns(taps, strides, (32, 48))  # [N, C, H, W]
    batch = torch.arange(2)[:, None]
    gathered = dense[batch, :, points[..., 0], points[..., 1]]  # [N, S, C]
    grads_dense = torch.autograd.grad((gathered * weights).sum(), list(taps.values()))

    torch.testing.assert_close(sparse, gathered)
    for a, b in zip(grads_sparse, grads_dense):
        torch.testing.assert_close(a, b)


def test_head_sparse_and_dense_outputs_agree() -> None:
    taps, strides = _taps(requires_grad=False)
    taps = {k: v.float() for k, v in taps.items()}
    head = HypercolumnHead(
        {k: v.shape[1] for k, v in taps.items()}, strides, {"hue": 32, "chroma": 32}, hidden=16
    )
    points = random_points(2, 10, (32, 48))
    sparse = head(taps, points=points)
    dense = head(taps, size=(32, 48), scale=1)
    assert sparse["hue"].shape == (2, 10, 32) and dense["chroma"].shape == (2, 32, 32, 48)
    batch = torch.arange(2)[:, None]
    torch.testing.assert_close(
        sparse["hue"], dense["hue"].movedim(1, -1)[batch, points[..., 0], points[..., 1]]
    )
