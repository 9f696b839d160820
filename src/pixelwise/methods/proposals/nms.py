"""Linear-time greedy NMS on the region grids (Long thesis §4.3.5; spec region-proposals.md "NMS").

Regions lie on fixed grids, so the regions that can overlap a given one are known in advance: on its own pathway,
centres within one window; on another pathway, those whose windows intersect, again a rectangle of centres. Greedy
NMS therefore compares a candidate only with the kept regions flagged in those rectangles (each pathway's kept flags
[h, w] are the spatial hash, one bucket per cell), a bounded number for bounded windows, so its cost is linear in
the number of regions. It runs on the coarse masks, before upsampling. :func:`brute_force_nms` is the quadratic
reference, with an independent IoU implementation.

Pixel geometry (the convention of :mod:`.regions` and :mod:`pixelwise.models.receptive_field`: pixel p's centre is
p). On a pathway with stride s and offset o, cell i's centre pixel is ``floor(o + 1/2) + s i`` and the cell owns the
s pixels from ``first_pixel(s, o) + s i``, where ``first_pixel(s, o) = floor(o + 1/2) - s // 2`` (for integer and
half-integer o, the s pixels nearest the cell centre; for even s the extra one goes up / left). Region (i, j)'s
W x W window therefore starts at pixel ``first_pixel + s (i - r)`` and is W s pixels wide.

The overlap of two regions is the IoU of their pixel-space masks, each coarse cell an s x s block, so it is exact
for any integer strides and offsets. Within a pathway that is the IoU at its own resolution; across pathways, at the
finer one's resolution with the coarser mask nearest-upsampled by the stride ratio where their cells align (e.g.
offsets (s - 1) / 2), the finer cells split at the coarser cells' edges where they do not (ResNet's offset-0 grids
are half a fine cell apart). The reference computes it on the common refinement of the two cell grids; the grid
NMS from per-cell pixel counts (:class:`_Coverage`). Windows reaching past the image are compared as they are (no
clipping). A region suppresses a candidate when their IoU is strictly above the threshold.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pixelwise.metrics.proposals import WindowMask

Region = tuple[int, int, int]  # (level, i, j)


@dataclass(frozen=True)
class GridRegions:
    """One pathway's binarised coarse masks. ``masks`` bool [h, w, W, W]: region (i, j)'s W x W window (W odd,
    r = W//2) covers this pathway's cells (i - r .. i + r, j - r .. j + r); ``scores`` [h, w]; ``stride`` s (px
    per cell) and ``offset`` o (pixel centre of cell 0: cell i is at pixel o + s*i); ``valid`` bool [h, w] which
    centres are candidates (density subsampling, empty masks)."""

    masks: torch.Tensor
    scores: torch.Tensor
    stride: int
    offset: float
    valid: torch.Tensor | None = None


def first_pixel(stride: int, offset: float) -> int:
    """The first pixel of cell 0's s x s block: floor(o + 1/2) - s // 2 (see the module doc)."""
    return math.floor(offset + 0.5) - stride // 2


class _Level:
    """A pathway as numpy arrays, with its window geometry in pixels."""

    def __init__(self, regions: GridRegions) -> None:
        masks = regions.masks
        if masks.dim() != 4 or masks.shape[2] != masks.shape[3] or masks.shape[2] % 2 == 0:
            raise ValueError(f"masks must be bool [h, w, W, W] with W odd, got {tuple(masks.shape)}")
        if tuple(regions.scores.shape) != tuple(masks.shape[:2]):
            raise ValueError(
                f"scores {tuple(regions.scores.shape)} must be [h, w] = {tuple(masks.shape[:2])}"
            )
        if regions.stride < 1:
            raise ValueError(f"stride must be >= 1, got {regions.stride}")
        self.masks = masks.detach().cpu().bool().numpy()
        self.counts = self.masks.sum(axis=(2, 3))
        self.stride, self.size = int(regions.stride), int(masks.shape[2])
        self.radius, self.extent = self.size // 2, self.size * self.stride
        self.base = first_pixel(self.stride, regions.offset)
        valid = regions.valid
        self.valid = np.ones(masks.shape[:2], bool) if valid is None else valid.detach().cpu().bool().numpy()
        if self.valid.shape != masks.shape[:2]:
            raise ValueError(f"valid {self.valid.shape} must be [h, w] = {tuple(masks.shape[:2])}")
        self.scores = regions.scores.detach().cpu().double().numpy()

    def corner(self, i: int, j: int) -> tuple[int, int]:
        """Top-left pixel of region (i, j)'s window."""
        return self.base + self.stride * (i - self.radius), self.base + self.stride * (j - self.radius)


class _Overlaps:
    """Exact pixel-space IoUs between regions, counting evaluations in ``counter["iou"]``."""

    def __init__(self, levels: Sequence[_Level], counter: MutableMapping[str, int] | None = None) -> None:
        self.levels = levels
        self.counter = counter
        self._cuts: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _refine(self, la: int, lb: int, shift: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """1-D common refinement of two windows, b starting ``shift`` px after a: (a's cell, b's cell, length in
        px) of each piece of their overlap. Depends on the relative position only, so it is cached."""
        key = (la, lb, shift)
        if key not in self._cuts:
            a, b = self.levels[la], self.levels[lb]
            lo, hi = max(0, shift), min(a.extent, shift + b.extent)
            edges = {lo, hi}
            edges.update(e for e in range(0, a.extent + 1, a.stride) if lo < e < hi)
            edges.update(e for e in range(shift, shift + b.extent + 1, b.stride) if lo < e < hi)
            cuts = np.array(sorted(edges))
            starts = cuts[:-1]
            self._cuts[key] = (starts // a.stride, (starts - shift) // b.stride, np.diff(cuts))
        return self._cuts[key]

    def areas(self, region: Region) -> int:
        level, i, j = region
        return int(self.levels[level].counts[i, j]) * self.levels[level].stride ** 2

    def iou(self, ra: Region, rb: Region) -> float:
        """IoU of two regions' pixel-space masks (0 when their windows do not meet or both are empty)."""
        if self.counter is not None:
            self.counter["iou"] = self.counter.get("iou", 0) + 1
        a, b = self.levels[ra[0]], self.levels[rb[0]]
        (ya, xa), (yb, xb) = a.corner(ra[1], ra[2]), b.corner(rb[1], rb[2])
        if yb >= ya + a.extent or ya >= yb + b.extent or xb >= xa + a.extent or xa >= xb + b.extent:
            return 0.0
        area_a, area_b = self.areas(ra), self.areas(rb)
        if area_a == 0 or area_b == 0:
            return 0.0
        rows_a, rows_b, heights = self._refine(ra[0], rb[0], yb - ya)
        cols_a, cols_b, widths = self._refine(ra[0], rb[0], xb - xa)
        both = a.masks[ra[1], ra[2]][np.ix_(rows_a, cols_a)] & b.masks[rb[1], rb[2]][np.ix_(rows_b, cols_b)]
        inter = int(heights @ both.astype(np.int64) @ widths)
        return inter / (area_a + area_b - inter)

    def suppresses(self, kept: Region, candidate: Region, threshold: float) -> bool:
        """IoU > threshold. IoU <= min(area) / max(area), so a size mismatch settles it without the masks (exact:
        correctly rounded division is monotone)."""
        small, large = sorted((self.areas(kept), self.areas(candidate)))
        if large == 0 or small / large <= threshold:
            if self.counter is not None:
                self.counter["iou"] = self.counter.get("iou", 0) + 1
            return False
        return self.iou(kept, candidate) > threshold


def _prepare(levels: Sequence[GridRegions]) -> tuple[list[_Level], list[Region]]:
    """The levels as numpy, and every valid region in greedy order: score descending, ties by (level, i, j)."""
    prepared = [_Level(regions) for regions in levels]
    keys = []
    for index, level in enumerate(prepared):
        rows, cols = np.nonzero(level.valid)
        keys.append((np.full(len(rows), index), rows, cols, level.scores[rows, cols]))
    level_ids, rows, cols, scores = (np.concatenate(parts) for parts in zip(*keys)) if keys else ([],) * 4
    order = np.lexsort((cols, rows, level_ids, -np.asarray(scores, dtype=np.float64)))  # last key is primary
    return prepared, [(int(level_ids[k]), int(rows[k]), int(cols[k])) for k in order]


def _off(iou_threshold: float | None) -> bool:
    return iou_threshold is None or iou_threshold >= 1


def grid_nms(
    levels: Sequence[GridRegions],
    iou_threshold: float | None = 0.7,
    top_k: int | None = None,
    counter: MutableMapping[str, int] | None = None,
) -> list[Region]:
    """Greedy NMS over all levels' regions in descending score order (ties by (level, i, j)); returns the kept
    (level, i, j) in that order, at most ``top_k``. A candidate is compared only with kept regions whose windows
    can intersect it: each level's kept flags [h, w] are the spatial hash (a bucket per cell), and those centres
    form one rectangle of bounded size, so the cost is linear in the number of regions. ``iou_threshold`` None or
    >= 1: off, every valid region is kept. An empty mask has IoU 0 with everything, so it is never suppressed:
    mark empty masks invalid. ``counter``: if given, ``counter["iou"]`` counts the pairwise IoU evaluations."""
    prepared, order = _prepare(levels)
    if _off(iou_threshold):
        return order[:top_k]
    coverage = _Coverage(prepared)
    flags = [np.zeros(level.valid.shape, bool) for level in prepared]
    kept: list[Region] = []
    for candidate in order:
        if top_k is not None and len(kept) >= top_k:
            break
        own = candidate[0]
        suppressed = False
        for index in (own, *(n for n in range(len(prepared)) if n != own)):  # its own level suppresses most
            rows, cols = coverage.neighbours(candidate, index, flags[index])
            if len(rows) == 0:
                continue
            if counter is not None:
                counter["iou"] = counter.get("iou", 0) + len(rows)
            rows, cols = coverage.comparable(candidate, index, rows, cols, iou_threshold)
            if len(rows) and (coverage.ious(candidate, index, rows, cols) > iou_threshold).any():
                suppressed = True
                break
        if not suppressed:
            kept.append(candidate)
            flags[own][candidate[1], candidate[2]] = True
    return kept


class _Coverage:
    """Batched exact IoUs of one candidate with many regions of one level.

    A level-L region's mask is constant on each L cell (an s_L x s_L block), so its intersection with the
    candidate is the sum, over its window's cells, of the candidate's pixel count in each cell: one count map
    C [L cells] per (candidate, level), C = R_y M R_x^T with R the 1-D overlap lengths between L cells and the
    candidate's cells, and one multiply-and-sum per neighbour.
    """

    def __init__(self, levels: Sequence[_Level]) -> None:
        self.levels = levels
        self._cover: dict[tuple[int, int, int], np.ndarray] = {}

    def neighbours(self, candidate: Region, index: int, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flagged centres of level ``index`` whose windows intersect the candidate's (rows, cols)."""
        (i0, i1), (j0, j1) = (self._centre_range(candidate, index, axis) for axis in (0, 1))
        rows, cols = np.nonzero(flags[i0:i1, j0:j1])
        return rows + i0, cols + j0

    def _centre_range(self, candidate: Region, index: int, axis: int) -> tuple[int, int]:
        # Centre c's window spans [b + s (c - r), b + s (c + r + 1)); it meets [start, start + extent) iff
        # s (c + r + 1) > start - b and s (c - r) < start + extent - b, i.e. low <= c < high in integers.
        level, other = self.levels[candidate[0]], self.levels[index]
        start = level.corner(candidate[1], candidate[2])[axis]
        s, r, cells = other.stride, other.radius, other.valid.shape[axis]
        low = (start - other.base) // s - r
        high = -((other.base - start - level.extent) // s) + r  # ceil((start + extent - b) / s) + r
        return max(0, low), min(cells, high)

    def comparable(
        self, candidate: Region, index: int, rows: np.ndarray, cols: np.ndarray, threshold: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """The regions whose area ratio with the candidate could give IoU > threshold (as in
        :meth:`_Overlaps.suppresses`)."""
        level, other = self.levels[candidate[0]], self.levels[index]
        area = int(level.counts[candidate[1], candidate[2]]) * level.stride**2
        areas = other.counts[rows, cols] * other.stride**2
        small, large = np.minimum(areas, area), np.maximum(areas, area)
        keep = (large > 0) & (np.divide(small, large, out=np.zeros(len(rows)), where=large > 0) > threshold)
        return rows[keep], cols[keep]

    def _rows(self, own: int, index: int, start: int) -> tuple[np.ndarray, int]:
        """(R [cells of level ``index`` touched, W_own]: pixels of each own-window cell in each of them; the
        first touched cell) for an own window starting at pixel ``start``; cached by the phase."""
        level, other = self.levels[own], self.levels[index]
        first = (start - other.base) // other.stride
        phase = start - other.base - other.stride * first  # in [0, s_other)
        key = (own, index, phase)
        if key not in self._cover:
            touched = -(-(level.extent + phase) // other.stride)
            cell_lo = np.arange(touched)[:, None] * other.stride - phase  # relative to the window start
            own_lo = np.arange(level.size)[None, :] * level.stride
            lengths = np.minimum(cell_lo + other.stride, own_lo + level.stride) - np.maximum(cell_lo, own_lo)
            self._cover[key] = np.clip(lengths, 0, None).astype(np.int32)  # int32: sums < 2**31
        return self._cover[key], first

    def ious(self, candidate: Region, index: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """IoU of the candidate with regions (rows, cols) of level ``index`` (their windows must meet its)."""
        level, other = self.levels[candidate[0]], self.levels[index]
        top, left = level.corner(candidate[1], candidate[2])
        ry, fy = self._rows(candidate[0], index, top)
        rx, fx = self._rows(candidate[0], index, left)
        counts = ry @ level.masks[candidate[1], candidate[2]].astype(np.int32) @ rx.T
        pad = other.size - 1  # every intersecting window's slice then lies inside the padded map
        padded = np.pad(counts, pad)
        views = np.lib.stride_tricks.sliding_window_view(padded, (other.size, other.size))
        slices = views[rows - other.radius - fy + pad, cols - other.radius - fx + pad]  # [K, W, W]
        inter = (slices * other.masks[rows, cols]).sum(axis=(1, 2), dtype=np.int64)
        area = int(level.counts[candidate[1], candidate[2]]) * level.stride**2
        union = area + other.counts[rows, cols] * other.stride**2 - inter
        return np.divide(inter, union, out=np.zeros(len(rows)), where=union > 0)


def brute_force_nms(
    levels: Sequence[GridRegions],
    iou_threshold: float | None = 0.7,
    top_k: int | None = None,
    counter: MutableMapping[str, int] | None = None,
) -> list[Region]:
    """:func:`grid_nms` comparing every candidate with every kept region: the quadratic reference."""
    prepared, order = _prepare(levels)
    if _off(iou_threshold):
        return order[:top_k]
    overlaps = _Overlaps(prepared, counter)
    kept: list[Region] = []
    for candidate in order:
        if top_k is not None and len(kept) >= top_k:
            break
        if not any(overlaps.suppresses(other, candidate, iou_threshold) for other in kept):
            kept.append(candidate)
    return kept


def region_iou(levels: Sequence[GridRegions], a: Region, b: Region) -> float:
    """The exact pixel-space IoU of regions ``a`` and ``b`` (level, i, j), as NMS computes it."""
    prepared = [_Level(levels[a[0]]), _Level(levels[b[0]])]
    return _Overlaps(prepared).iou((0, a[1], a[2]), (1, b[1], b[2]))


def to_window_masks(
    levels: Sequence[GridRegions], kept: Sequence[Region], upsample: bool = True
) -> list[WindowMask]:
    """The ``kept`` regions as :class:`~pixelwise.metrics.proposals.WindowMask`, in order.

    ``upsample=True``: pixel space, each coarse cell an s x s block (nearest), window top-left at pixel
    (first_pixel(s, o) + s (i - r), first_pixel(s, o) + s (j - r)); exact, no interpolation. ``upsample=False``:
    the coarse W x W mask with its top-left in the pathway's cell coordinates, (i - r, j - r).
    """
    out = []
    for level_index, i, j in kept:
        regions = levels[level_index]
        mask = regions.masks[i, j].bool()
        r, s = mask.shape[0] // 2, int(regions.stride)
        if not upsample:
            out.append(WindowMask(mask, i - r, j - r))
            continue
        base = first_pixel(s, regions.offset)
        block = mask.repeat_interleave(s, dim=0).repeat_interleave(s, dim=1)
        out.append(WindowMask(block, base + s * (i - r), base + s * (j - r)))
    return out
