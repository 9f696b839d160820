"""A non-learned proposal baseline: SLIC superpixels and their adjacent pairs and triples (spec protocol 6, the
stand-in for MCG in Table 4.3).

Each proposal is a union of 1, 2 or 3 mutually adjacent superpixels (4-adjacency of their pixels), as a
:class:`~pixelwise.metrics.proposals.WindowMask` over its bounding box. Ranking (for AR@k): singles, then pairs,
then triples, each group largest first: no objectness is learned, so the order is a fixed prior.
"""

from __future__ import annotations

import torch

from pixelwise.methods.zoomout.superpixels import slic_superpixels
from pixelwise.metrics.proposals import WindowMask


def adjacency(segments: torch.Tensor) -> set[tuple[int, int]]:
    """Pairs (a < b) of superpixel ids that touch horizontally or vertically."""
    pairs = set()
    for a, b in ((segments[:, :-1], segments[:, 1:]), (segments[:-1], segments[1:])):
        differ = a != b
        low, high = torch.minimum(a[differ], b[differ]), torch.maximum(a[differ], b[differ])
        pairs.update(zip(low.tolist(), high.tolist()))
    return pairs


def _window(mask: torch.Tensor) -> WindowMask:
    rows, cols = torch.nonzero(mask, as_tuple=True)
    top, left, bottom, right = int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1
    return WindowMask(mask[top:bottom, left:right].clone(), top, left)


def slic_proposals(image: torch.Tensor, count: int = 150, compactness: float = 15.0, max_triples: int = 3000
                   ) -> list[WindowMask]:  # fmt: skip
    """Ranked proposals of ``image`` [3, H, W] in [0, 1]: SLIC regions, adjacent pairs, adjacent triples."""
    segments = slic_superpixels(image, count, compactness)
    ids = segments.unique().tolist()
    touching = adjacency(segments)
    neighbours: dict[int, set[int]] = {i: set() for i in ids}
    for a, b in touching:
        neighbours[a].add(b)
        neighbours[b].add(a)
    triples = set()
    for a, b in sorted(touching):
        for c in neighbours[a] | neighbours[b]:
            if c not in (a, b):
                triples.add(tuple(sorted((a, b, c))))
        if len(triples) >= max_triples:
            break
    sizes = torch.bincount(segments.flatten(), minlength=max(ids) + 1)
    groups = [[(i,) for i in ids], sorted(touching), sorted(triples)]
    ranked = []
    for group in groups:
        ranked += sorted(group, key=lambda members: -int(sum(sizes[m] for m in members)))
    return [_window(torch.isin(segments, torch.tensor(members))) for members in ranked]
