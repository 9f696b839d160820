"""Dense frozen-feature grids with each cell's pixel centre (Long thesis Ch. 2; spec correspondence-keypoints.md).

Ch. 2 never fine-tunes: a network trained for another task is read as a fixed feature extractor. Here that network
is the backbone of any pixelwise run (colorization, FCN, M&M, ... through ``load_backbone_from_run``) or a random
one (the control), read through the one tap mechanism (:class:`~pixelwise.models.taps.FeatureTaps`). Every cell
is tied to its receptive-field centre (§2.2 "the grid of convnet rf centers"): cell (i, j) of a stage sits at
pixel ``(grid.position(i), grid.position(j))`` of that stage's :class:`~pixelwise.models.receptive_field.Grid`,
the only cell -> pixel rule used by this package.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from pixelwise.engine.checkpoint import load_checkpoint
from pixelwise.methods.segmentation import load_backbone_from_run
from pixelwise.models.backbones import Backbone
from pixelwise.models.frozen import FrozenBackbone
from pixelwise.models.receptive_field import Grid, layer_geometry, main_path_layers


@dataclass(frozen=True)
class FeatureConfig:
    """The backbone to rebuild; ``load_backbone_from_run`` checks ``backbone`` and ``in_channels`` against a run."""

    backbone: str = "resnet18"
    in_channels: int = 3
    output_stride: int = 32


class FrozenFeatures(FrozenBackbone):
    """``extractor(images)`` -> ``{stage: [N, C, h, w]}``: input normalisation, then the tapped backbone stages.

    Images are [N, 3 or 1, H, W] in [0, 1], as every pixelwise model takes them (grey backbones reduce RGB to
    lightness). The model is frozen: eval mode (BatchNorm uses its running statistics) and no gradients.
    """

    def __init__(self, config: FeatureConfig, stages: tuple[str, ...] | None = None) -> None:
        super().__init__(config.backbone, config.in_channels, config.output_stride, stages)
        self.config = config


def feature_extractor(
    run: str | None = None, stages: tuple[str, ...] | None = None, config: FeatureConfig | None = None
) -> FrozenFeatures:
    """The frozen backbone of the run folder / checkpoint ``run`` (its backbone, input channels and output stride
    are read from the run), or a randomly initialised ``config`` backbone when ``run`` is None (the control)."""
    config = config or FeatureConfig()
    if run:
        meta: dict[str, Any] = load_checkpoint(run).meta.get("model", {})
        config = replace(
            config,
            backbone=meta.get("backbone", config.backbone),
            in_channels=int(meta.get("in_channels", config.in_channels)),
            output_stride=int(meta.get("output_stride", config.output_stride)),
        )
    extractor = FrozenFeatures(config, stages)
    if run:
        load_backbone_from_run(extractor, run)
    return extractor


def stage_rf_sizes(backbone: Backbone) -> dict[str, int]:
    """Receptive-field size of every stage from its layers' geometry (thesis §3.2 composition rule, Table 2.1):
    rf' = rf + (d (k-1)) * s_prev; dilation included, residual shortcuts skipped (they do not enlarge it)."""
    rf, stride, sizes = 1, 1, {}
    for name, module in backbone.stage_modules().items():
        for layer in main_path_layers(module):
            kernel, layer_stride, _, dilation = layer_geometry(layer)  # type: ignore[misc]
            rf += dilation * (kernel - 1) * stride
            stride *= layer_stride
        sizes[name] = rf
    return sizes


@dataclass(frozen=True)
class FeatureGrid:
    """One stage's cells for a batch of images: ``features`` [N, C, h, w] on ``grid``, images of ``image_size``.

    Only cells whose centre lies inside the image are kept (the stride padding adds none at the top / left; it
    may add a row / column at the bottom / right for 2x2-pooled grids).
    """

    features: torch.Tensor
    grid: Grid
    image_size: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.features.shape[-2]), int(self.features.shape[-1])

    def rows(self) -> torch.Tensor:
        """Pixel row of each cell row's centre [h] (``grid.position``)."""
        return self.grid.position(torch.arange(self.shape[0], dtype=torch.float32))

    def cols(self) -> torch.Tensor:
        """Pixel column of each cell column's centre [w]."""
        return self.grid.position(torch.arange(self.shape[1], dtype=torch.float32))

    def centres(self) -> torch.Tensor:
        """Pixel centre (row, col) of every cell [h, w, 2]."""
        rows, cols = torch.meshgrid(self.rows(), self.cols(), indexing="ij")
        return torch.stack([rows, cols], dim=-1)

    def image(self, index: int) -> FeatureGrid:
        """The grid of the ``index``-th image alone (features [1, C, h, w])."""
        return replace(self, features=self.features[index : index + 1])


def cells_inside(grid: Grid, size: int, cells: int) -> int:
    """How many of ``cells`` cells along a dimension of ``size`` pixels have their centre inside the image."""
    inside = int((size - 1 - grid.offset) // grid.stride) + 1 if size - 1 >= grid.offset else 0
    return max(0, min(cells, inside))


def dense_features(
    extractor: FrozenFeatures, images: torch.Tensor, normalise: bool = True
) -> dict[str, FeatureGrid]:
    """Every tapped stage of ``images`` [N, 3 or 1, H, W] in [0, 1] as a :class:`FeatureGrid`.

    ``normalise`` L2-normalises each cell (spec §2.2: the data term then lies in [0, 2] and cosine similarity,
    §2.1's matching measure, is a dot product).
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
    height, width = images.shape[-2:]
    out = {}
    for name, feature in extractor(images).items():
        grid = extractor.grids[name]
        h = cells_inside(grid, height, feature.shape[-2])
        w = cells_inside(grid, width, feature.shape[-1])
        feature = feature[..., :h, :w].float()
        if normalise:
            feature = F.normalize(feature, dim=1)
        out[name] = FeatureGrid(feature, grid, (int(height), int(width)))
    return out
