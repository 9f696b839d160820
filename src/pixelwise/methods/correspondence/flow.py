"""Conv flow (thesis §2.2): the MRF on the grid of rf centres, solved by BP, as a flow in cells and in pixels.

Source cell p (on the source image's grid of rf centres) matches target cell p + w(p). Both images are read at one
stage, so they share its :class:`~pixelwise.models.receptive_field.Grid`; the pixel flow of p is
``grid.position(p + w) - grid.position(p)`` (= stride * w), and the dense flow at every source pixel interpolates
those values bilinearly between cell centres through :func:`pixelwise.models.resample.resample` (the one geometry).
The thesis interpolates with a bivariate spline (SciPy); bilinear is the spec's option and keeps SciPy out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pixelwise.methods.correspondence.cost import data_cost
from pixelwise.methods.correspondence.features import FeatureGrid
from pixelwise.methods.correspondence.mrf import FlowEnergy, argmin_labels, belief_propagation, flow_energy
from pixelwise.models.receptive_field import Grid
from pixelwise.models.resample import PIXELS, resample


@dataclass(frozen=True)
class Flow:
    """An integer cell flow ``cells`` [h, w, 2] (dy, dx) from a source image of ``source_size`` on ``grid``."""

    cells: torch.Tensor
    grid: Grid
    source_size: tuple[int, int]
    energy: FlowEnergy | None = None  # None for flows not found by the MRF (zero flow)

    def source_positions(self) -> torch.Tensor:
        """Pixel (row, col) of every source cell centre [h, w, 2]."""
        h, w = self.cells.shape[:2]
        rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        return torch.stack([self.grid.position(rows.float()), self.grid.position(cols.float())], dim=-1)

    def target_positions(self) -> torch.Tensor:
        """Pixel (row, col) in the target of the cell each source cell matches [h, w, 2]."""
        h, w = self.cells.shape[:2]
        rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        matched_rows, matched_cols = rows + self.cells[..., 0], cols + self.cells[..., 1]
        return torch.stack(
            [self.grid.position(matched_rows.float()), self.grid.position(matched_cols.float())], dim=-1
        )

    def pixels(self) -> torch.Tensor:
        """The flow of every source cell in pixels [h, w, 2]: target position minus source position."""
        return self.target_positions() - self.source_positions()

    def dense(self) -> torch.Tensor:
        """The pixel flow u [2, H, W] at every source pixel (bilinear between cell centres, edge cells clamp)."""
        return resample(self.pixels().permute(2, 0, 1), self.grid, PIXELS, self.source_size)


def default_radius(source: FeatureGrid, target: FeatureGrid) -> int:
    """A window covering the whole grid (spec §2.2: "r covers the box grid")."""
    return max(*source.shape, *target.shape) - 1


def _single(features: FeatureGrid, what: str) -> torch.Tensor:
    if features.features.dim() != 4 or features.features.shape[0] != 1:
        raise ValueError(
            f"{what}: one image's FeatureGrid expected (use .image(i)), got {tuple(features.features.shape)}"
        )
    return features.features[0]


def conv_flow(
    source: FeatureGrid,
    target: FeatureGrid,
    beta: float,
    radius: int | None = None,
    iterations: int = 30,
    damping: float = 0.0,
) -> Flow:
    """Minimise E(w) (§2.2) by bipartite min-sum BP and take each cell's argmin belief.

    ``beta`` weighs the squared-L2 smoothness with w in cells; ``radius`` (cells, default: the whole grid) bounds
    the search window; ``iterations`` and ``damping`` go to :func:`belief_propagation`. ``beta`` 0 gives the
    per-cell nearest-neighbour flow.
    """
    if source.grid != target.grid:
        raise ValueError(
            f"source and target are on different grids ({source.grid} vs {target.grid}); use one stage"
        )
    radius = default_radius(source, target) if radius is None else radius
    cost = data_cost(_single(source, "source"), _single(target, "target"), radius)
    labels = argmin_labels(belief_propagation(cost, beta, iterations, damping))
    return Flow(labels, source.grid, source.image_size, flow_energy(cost, labels, beta))


def zero_flow(source: FeatureGrid) -> Flow:
    """The copy baseline: every cell matches the target cell at its own position (spec P2/P3 "zero flow")."""
    h, w = source.shape
    return Flow(torch.zeros(h, w, 2, dtype=torch.long), source.grid, source.image_size)
