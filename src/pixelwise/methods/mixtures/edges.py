"""Binary oriented edges (Bernstein & Amit 2005, ref. [9] of the thesis; Larsson §1.2.8 "Edges"): the
parameterless first layer that turns intensities into the binary input a Bernoulli mixture needs.

For a pixel z and a direction u (one of the 8 neighbour steps, numbered j = 0..7 at 45 j degrees: right,
down-right, down, down-left, left, up-left, up, up-right, rows pointing down) let y = z + u, w the perpendicular
step, and d = I(y) - I(z). Feature j fires at z when d > 0 (intensity rises along u) and |d| is larger than at
least ``k`` of the 6 neighbouring differences (docs: specs/mixture-models.md, "Layers"):

    |I(z + w) - I(z)|, |I(z - w) - I(z)|, |I(y + w) - I(y)|, |I(y - w) - I(y)|, |I(z - u) - I(z)|, |I(y + u) - I(y)|

and, optionally, d exceeds a minimum contrast. The 4 axes x 2 polarities of amitgroup's ``bedges`` are then the 8
directions, each edge anchored at its darker pixel: a rotation of the image by 90 degrees moves feature j to
j + 2 exactly (45 degrees: j + 1, up to resampling), which the analytic transformation of §1.2.5 relies on.
Colour channels are ORed. Then "spread": a (2r+1) x (2r+1) box dilation (the radius is not in the thesis; the
public code, gustavla/parts-net, uses r = 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# (drow, dcol) of direction j at 45 j degrees in (col, row) coordinates, rows down: j=0 right, j=2 down.
DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))
ORIENTATIONS = len(DIRECTIONS)
MARGIN = 3  # differences are taken at z and at its neighbours y = z + u, which read y + u: 3 px of padding


def oriented_edges(images: torch.Tensor, k: int = 6, minimum_contrast: float = 0.0) -> torch.Tensor:
    """The 8 binary edge maps [N, 8, H, W] (float 0/1, before spreading) of images [N, C, H, W] in [0, 1].

    Pixels beyond the border repeat the nearest one (replicate padding), so the border makes no edges.
    Every quantity is a difference to one of the 8 neighbours, D_j(z) = I(z + u_j) - I(z): with w = u_{j+2},
    -w = u_{j+6} and -u = u_{j+4}, the six comparisons of direction j are |D_{j+2}|, |D_{j+6}|, |D_{j+4}| at z
    and |D_{j+2}|, |D_{j+6}|, |D_j| at y = z + u_j, so all 8 directions are computed at once.
    """
    if images.dim() != 4:
        raise ValueError(f"edges need images [N, C, H, W], got shape {list(images.shape)}")
    if not 0 <= k <= 6:
        raise ValueError(f"k-of-6: k must be in 0..6, got {k}")
    height, width = images.shape[-2:]
    padded = F.pad(images.float(), (MARGIN,) * 4, mode="replicate")
    # D over z in [-1, H] x [-1, W] (one ring more than the image, for the values at y = z + u).
    ring = (slice(MARGIN - 1, MARGIN + height + 1), slice(MARGIN - 1, MARGIN + width + 1))
    base = padded[..., ring[0], ring[1]]
    diffs = torch.stack(
        [padded[..., ring[0].start + dr : ring[0].stop + dr, ring[1].start + dc : ring[1].stop + dc] - base
         for dr, dc in DIRECTIONS], dim=2,
    )  # fmt: skip
    magnitude = diffs.abs()  # [N, C, 8, H + 2, W + 2]

    def at(values: torch.Tensor, offsets: tuple[int, ...] | None = None) -> torch.Tensor:
        """values[:, :, j] at z (offsets None) or at z + u_j: [N, C, 8, H, W]."""
        if offsets is None:
            return values[..., 1 : height + 1, 1 : width + 1]
        return torch.stack(
            [values[:, :, j, 1 + DIRECTIONS[j][0] : height + 1 + DIRECTIONS[j][0],
                    1 + DIRECTIONS[j][1] : width + 1 + DIRECTIONS[j][1]] for j in offsets], dim=2,
        )  # fmt: skip

    order = torch.arange(ORIENTATIONS)
    rise = at(diffs)
    strength = rise.abs()
    here = at(magnitude)
    beaten = torch.zeros(rise.shape, dtype=torch.uint8)
    for turn in (2, 6, 4):  # |D_{j+2}|, |D_{j+6}|, |D_{j+4}| at z
        beaten += strength > here[:, :, (order + turn) % ORIENTATIONS]
    for turn in (2, 6, 0):  # |D_{j+2}|, |D_{j+6}|, |D_j| at y = z + u_j
        rolled = magnitude[:, :, (order + turn) % ORIENTATIONS]  # channel j holds |D_{j+turn}|
        beaten += strength > at(rolled, tuple(range(ORIENTATIONS)))
    fires = (rise > minimum_contrast) & (beaten >= k)
    return fires.any(dim=1).float()  # OR over colour channels


def spread(edges: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Morphological dilation of binary maps [N, F, H, W] by a (2r+1) x (2r+1) box (r = 0: unchanged)."""
    if radius < 0:
        raise ValueError(f"spread radius must be >= 0, got {radius}")
    if radius == 0:
        return edges
    return F.max_pool2d(edges, 2 * radius + 1, stride=1, padding=radius)


def edge_permutation(steps: int) -> torch.Tensor:
    """Channel order after rotating the image by 45 ``steps`` degrees: feature j becomes j + steps (mod 8)."""
    return (torch.arange(ORIENTATIONS) - steps) % ORIENTATIONS  # new[j] = old[j - steps]


def polarity_permutation() -> torch.Tensor:
    """Channel order after inverting the intensities (1 - I): rising along u becomes rising along -u."""
    return (torch.arange(ORIENTATIONS) + ORIENTATIONS // 2) % ORIENTATIONS
