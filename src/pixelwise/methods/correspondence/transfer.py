"""Keypoint transfer by conv flow (thesis §2.2, Table 2.2; spec "Keypoint transfer").

For a query image: retrieve its nearest neighbours by a global descriptor (the thesis: 25 by fc7 cosine), align
each neighbour to the query with :func:`~pixelwise.methods.correspondence.flow.conv_flow` (query = source, flow
defined on the query's grid and pointing into the neighbour), order the neighbours by deformation energy
(ascending), move each neighbour's keypoints into the query frame and predict every keypoint as the coordinate-wise
median of the first ``top`` (5) neighbours that have it. NN transfer (the baseline) takes the same median of the
neighbours' keypoints, in retrieval order and without warping.

Moving a neighbour keypoint k into the query inverts the backward warp: p* = argmin_p ||p + u(p) - k|| over the
query's pixels p, with u the dense pixel flow (spec: "over a densely interpolated p").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pixelwise.methods.correspondence.features import FeatureGrid
from pixelwise.methods.correspondence.flow import Flow, conv_flow
from pixelwise.methods.correspondence.mrf import FlowEnergy

ORDERS = ("deformation", "total", "data")


def global_descriptors(features: FeatureGrid) -> torch.Tensor:
    """One L2-normalised descriptor per image [N, C]: the mean of its cells (a stand-in for fc7, spec P4:
    "25 NN by deepest-stage cosine")."""
    return F.normalize(features.features.mean(dim=(2, 3)), dim=1)


def cosine_neighbours(query: torch.Tensor, database: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [k] of the ``k`` database rows [M, D] most cosine-similar to ``query`` [D], most similar first."""
    if k > database.shape[0]:
        raise ValueError(f"asked for {k} neighbours from a database of {database.shape[0]}")
    similarity = F.normalize(database, dim=1) @ F.normalize(query, dim=0)
    return similarity.topk(k).indices


def check_keypoints(keypoints: torch.Tensor, size: tuple[int, int], what: str = "keypoint") -> None:
    """Raise a one-line ``ValueError`` for keypoints [K, 2] (row, col) outside an image of ``size`` (NaN = absent)."""
    present = ~torch.isnan(keypoints).any(dim=-1)
    rows, cols = keypoints[..., 0], keypoints[..., 1]
    outside = present & ((rows < 0) | (rows > size[0] - 1) | (cols < 0) | (cols > size[1] - 1))
    if bool(outside.any()):
        index = tuple(int(i) for i in outside.nonzero()[0])
        y, x = (float(v) for v in keypoints[index])
        where = ", ".join(str(i) for i in index)
        raise ValueError(
            f"{what} {where} at (row {y:g}, col {x:g}) lies outside the {size[0]}x{size[1]} image"
        )


def transfer_points(flow: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Target-image points [K, 2] moved into the source frame of the dense ``flow`` [2, H, W]:
    p* = argmin_p ||p + u(p) - k|| over source pixels p (NaN rows stay NaN)."""
    height, width = flow.shape[1:]
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    landing = torch.stack([rows + flow[0], cols + flow[1]], dim=-1).reshape(-1, 2)  # where each p reads
    pixel = torch.stack([rows, cols], dim=-1).reshape(-1, 2).float()
    out = torch.full_like(points, float("nan"), dtype=torch.float32)
    present = ~torch.isnan(points).any(dim=-1)
    if bool(present.any()):
        nearest = torch.cdist(points[present].float(), landing.float()).argmin(dim=1)
        out[present] = pixel[nearest]
    return out


def median_of_top(points: torch.Tensor, order: Sequence[int] | torch.Tensor, top: int = 5) -> torch.Tensor:
    """Coordinate-wise median [K, 2] of each keypoint over the first ``top`` neighbours in ``order`` that have it.

    ``points`` [N, K, 2] holds each neighbour's keypoints (NaN where a neighbour lacks one: it is skipped, the
    spec's "go further down the sorted list"). With an even count the median is the mean of the middle two; a
    keypoint no neighbour has stays NaN.
    """
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    ordered = points[torch.as_tensor(order, dtype=torch.long)]
    out = torch.full(points.shape[1:], float("nan"), dtype=torch.float32)
    for k in range(points.shape[1]):
        have = ordered[:, k][~torch.isnan(ordered[:, k]).any(dim=-1)][:top]
        if len(have):
            out[k] = have.float().quantile(0.5, dim=0)  # linear interpolation: the usual median
    return out


def energy_order(energies: Sequence[FlowEnergy], by: str = "deformation") -> list[int]:
    """Neighbour indices sorted by ascending energy term ``by`` (§2.2: deformation beat the data term)."""
    if by not in ORDERS:
        raise ValueError(f"unknown order {by!r}; choose from {', '.join(ORDERS)}")
    return sorted(range(len(energies)), key=lambda i: (getattr(energies[i], by), i))


@dataclass(frozen=True)
class Transfer:
    """Keypoint predictions [K, 2] for one query, with the neighbours' order and flows."""

    keypoints: torch.Tensor
    order: list[int]
    flows: list[Flow]


def transfer_keypoints(
    query: FeatureGrid,
    neighbours: Sequence[FeatureGrid],
    keypoints: torch.Tensor,
    beta: float,
    radius: int | None = None,
    iterations: int = 30,
    top: int = 5,
    order_by: str = "deformation",
    damping: float = 0.0,
) -> Transfer:
    """§2.2 keypoint transfer: align every neighbour to ``query``, order by energy, median of the top ``top``.

    ``keypoints`` [N, K, 2] are the neighbours' keypoints (row, col) in their own pixels, NaN where absent.
    """
    if len(neighbours) != keypoints.shape[0]:
        raise ValueError(f"{len(neighbours)} neighbours but keypoints for {keypoints.shape[0]}")
    moved, flows = [], []
    for index, (neighbour, points) in enumerate(zip(neighbours, keypoints)):
        check_keypoints(points, neighbour.image_size, f"neighbour {index} keypoint")
        flow = conv_flow(query, neighbour, beta, radius, iterations, damping)
        flows.append(flow)
        moved.append(transfer_points(flow.dense(), points))
    order = energy_order([f.energy for f in flows], order_by)  # type: ignore[misc]
    return Transfer(median_of_top(torch.stack(moved), order, top), order, flows)


def nn_transfer(keypoints: torch.Tensor, top: int = 5) -> torch.Tensor:
    """The NN-transfer baseline (spec reading): the median of the first ``top`` neighbours' keypoints [N, K, 2],
    already in retrieval order and in the query's (box-normalised) coordinates, with no warping."""
    return median_of_top(keypoints, list(range(keypoints.shape[0])), top)
