"""Min-sum loopy belief propagation for conv flow (thesis §2.2; [FH06] with the [FH04] distance transform).

Energy on the 4-connected grid of rf centres, labels w = (dy, dx) in cells (``cost.displacements``):

    E(w) = sum_p D_p(w_p) + beta * sum_{(p,q) in 4-nbhd} ||w_p - w_q||_2^2.

The message from p to a neighbour q is m_{p->q}(w) = min_{w'} [h_p(w') + beta ||w - w'||^2], with h_p the data cost
of p plus the messages into p from its other three neighbours. That is a min-convolution of h_p with a quadratic,
i.e. the squared-Euclidean distance transform of [FH04]. The quadratic separates (beta (dy^2 + dx^2)), so the 2-D
transform is two exact 1-D min-convolutions, along dx then dy (spec §2.2: "an exact separable min-convolution
... gives the same result"). Each 1-D pass is a vectorised (min, +) product, O(L (2r+1)) per message for the
L = (2r+1)^2 labels instead of FH04's O(L) lower envelope, whose sequential stack does not vectorise.

Schedule: FH06's bipartite ("checkerboard") schedule: the grid is bipartite, so at each iteration only the cells
of one colour send, using the messages their neighbours sent the iteration before (FH06: the same messages as
synchronous updates, for half the work). Messages are normalised to min 0 (beliefs are defined up to a constant).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Offsets into the grid, and which incoming slot of the receiver a message from that direction fills.
# incoming[0]: from the cell above (y-1); [1]: from below (y+1); [2]: from the left (x-1); [3]: from the right.
_SENDS = ((1, 0, 0), (-1, 0, 1), (0, 1, 2), (0, -1, 3))  # (dy, dx of the receiver, receiver's incoming slot)
_REVERSE = (1, 0, 3, 2)  # the slot of p's incoming array holding the message from the receiver itself


def min_convolve_1d(h: torch.Tensor, beta: float, dim: int, budget: int = 1 << 22) -> torch.Tensor:
    """m(a) = min_{a'} h(a') + beta (a - a')^2 along ``dim`` (exact; +inf entries allowed).

    A (min, +) product of each row with the K x K matrix beta (a - a')^2: one vectorised reduction per chunk of
    rows (``budget`` elements), O(K^2) per row, instead of FH04's sequential O(K) lower envelope.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    rows = h.movedim(dim, -1)
    shape, size = rows.shape, rows.shape[-1]
    rows = rows.reshape(-1, size)
    steps = torch.arange(size, dtype=h.dtype, device=h.device)
    quadratic = beta * (steps[:, None] - steps[None, :]).pow(2)  # [a, a']
    out = torch.empty_like(rows)
    chunk = max(1, budget // (size * size))
    for start in range(0, rows.shape[0], chunk):
        out[start : start + chunk] = (rows[start : start + chunk, None, :] + quadratic).amin(dim=-1)
    return out.reshape(shape).movedim(-1, dim)


def min_convolve_2d(h: torch.Tensor, beta: float) -> torch.Tensor:
    """m(dy, dx) = min_{dy', dx'} h(dy', dx') + beta ((dy-dy')^2 + (dx-dx')^2) over the last two dims (exact:
    the quadratic separates, so a pass along dx then along dy is the squared-Euclidean distance transform)."""
    return min_convolve_1d(min_convolve_1d(h, beta, h.dim() - 1), beta, h.dim() - 2)


def _check_cost(cost: torch.Tensor) -> None:
    if cost.dim() != 4 or cost.shape[2] != cost.shape[3] or cost.shape[2] % 2 != 1:
        raise ValueError(f"cost must be [h, w, 2r+1, 2r+1], got shape {tuple(cost.shape)}")
    hopeless = torch.isinf(cost).flatten(2).all(dim=2)
    if bool(hopeless.any()):
        y, x = (int(v) for v in hopeless.nonzero()[0])
        raise ValueError(
            f"cell ({y}, {x}) has no displacement inside the target within radius {cost.shape[2] // 2}; "
            "widen the search radius"
        )


def _send(
    incoming: torch.Tensor, cost: torch.Tensor, beta: float, colour: torch.Tensor, damping: float
) -> None:
    """Cells of ``colour`` [h, w] (bool) send their four messages; writes them into ``incoming`` [4, h, w, K, K]."""
    h, w = cost.shape[:2]
    ys, xs = colour.nonzero(as_tuple=True)
    total = cost[ys, xs] + incoming[:, ys, xs].sum(dim=0)  # [n, K, K]
    for (dy, dx, slot), reverse in zip(_SENDS, _REVERSE):
        ry, rx = ys + dy, xs + dx
        inside = (ry >= 0) & (ry < h) & (rx >= 0) & (rx < w)
        if not bool(inside.any()):
            continue
        # Exclude what the receiver told p; inf - finite stays inf (messages are finite: each h has a finite label).
        message = min_convolve_2d(total[inside] - incoming[reverse, ys[inside], xs[inside]], beta)
        message = message - message.flatten(1).amin(dim=1).view(-1, 1, 1)
        if damping:
            message = (1 - damping) * message + damping * incoming[slot, ry[inside], rx[inside]]
        incoming[slot, ry[inside], rx[inside]] = message


def belief_propagation(
    cost: torch.Tensor, beta: float, iterations: int = 30, damping: float = 0.0
) -> torch.Tensor:
    """Beliefs [h, w, K, K] after ``iterations`` bipartite min-sum BP sweeps on the 4-connected grid.

    ``cost`` [h, w, K, K] is the data term per cell and label (``cost.data_cost``). On a tree (a chain, one row)
    the beliefs are the exact min-marginals once ``iterations`` exceeds the tree's diameter; with ``beta`` 0 they
    equal the data cost (nearest-neighbour flow). ``damping`` in [0, 1) mixes each new message with the old one
    (0: plain FH06 BP); on loopy grids with a strong ``beta`` it stops messages oscillating.
    """
    _check_cost(cost)
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if not 0 <= damping < 1:
        raise ValueError(f"damping must lie in [0, 1), got {damping}")
    h, w, k, _ = cost.shape
    incoming = torch.zeros(4, h, w, k, k, dtype=cost.dtype, device=cost.device)
    parity = (torch.arange(h, device=cost.device).view(-1, 1) + torch.arange(w, device=cost.device)) % 2
    for t in range(iterations):
        _send(incoming, cost, beta, parity == t % 2, damping)
    return cost + incoming.sum(dim=0)


def argmin_labels(beliefs: torch.Tensor) -> torch.Tensor:
    """The displacement (dy, dx) in cells [h, w, 2] minimising each cell's belief (ties: the first label)."""
    h, w, k, _ = beliefs.shape
    flat = beliefs.reshape(h, w, k * k).argmin(dim=2)
    radius = k // 2
    return torch.stack([flat // k - radius, flat % k - radius], dim=-1)


@dataclass(frozen=True)
class FlowEnergy:
    """The two terms of E(w) (§2.2) for one flow: ``total = data + beta * deformation``.

    ``deformation`` is sum_{(p,q)} ||w_p - w_q||^2 without beta: §2.2's "deformation energy" used to order the
    neighbours in keypoint transfer (spec: read as the smoothness term; unscaled, so beta = 0 still orders).
    """

    data: float
    deformation: float
    total: float


def flow_energy(cost: torch.Tensor, flow: torch.Tensor, beta: float) -> FlowEnergy:
    """E(w) of the integer cell flow ``flow`` [h, w, 2] (dy, dx) under ``cost`` [h, w, K, K]."""
    radius = cost.shape[2] // 2
    if bool((flow.abs() > radius).any()):
        raise ValueError(f"flow has displacements beyond the search radius {radius}")
    h, w = flow.shape[:2]
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    data = cost[ys, xs, flow[..., 0] + radius, flow[..., 1] + radius].double().sum()
    f = flow.double()
    deformation = (f[1:] - f[:-1]).pow(2).sum() + (f[:, 1:] - f[:, :-1]).pow(2).sum()
    return FlowEnergy(float(data), float(deformation), float(data + beta * deformation))
