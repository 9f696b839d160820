"""Linear-time grid NMS (thesis §4.3.5) against brute-force greedy NMS, its exact IoU, and its linear cost."""

from __future__ import annotations

import pytest
import torch

from pixelwise.methods.proposals.nms import (
    GridRegions,
    brute_force_nms,
    first_pixel,
    grid_nms,
    region_iou,
    to_window_masks,
)
from pixelwise.metrics.proposals import WindowMask


def _level(size: tuple[int, int], stride: int, window: int, offset: float, seed: int) -> GridRegions:
    """Random blob masks: each region a disc near its centre with random radius and a few flipped cells, so that
    neighbours (and regions of other levels) overlap often enough for NMS to suppress."""
    generator = torch.Generator().manual_seed(seed)
    h, w = size
    r = window // 2
    cells = torch.arange(window, dtype=torch.float64) - r
    shift = torch.rand(h, w, 2, generator=generator, dtype=torch.float64) * 2 - 1
    radius = 0.8 + torch.rand(h, w, generator=generator, dtype=torch.float64) * r
    dy = cells.view(1, 1, -1, 1) - shift[..., 0, None, None]
    dx = cells.view(1, 1, 1, -1) - shift[..., 1, None, None]
    masks = dy**2 + dx**2 <= radius[..., None, None] ** 2
    masks ^= torch.rand(h, w, window, window, generator=generator) < 0.05
    scores = torch.rand(h, w, generator=generator)
    scores[0, :2] = 0.5  # exact ties, broken by (level, i, j)
    valid = torch.rand(h, w, generator=generator) < 0.9
    return GridRegions(masks, scores, stride, offset, valid)


def _pyramid(seed: int, image: tuple[int, int] = (48, 64), offsets: str = "resnet") -> list[GridRegions]:
    levels = []
    for n, (stride, window) in enumerate([(4, 5), (8, 5), (16, 3)]):
        offset = {"resnet": 0.0, "vgg": (stride - 1) / 2, "odd": 1.0}[offsets]
        size = (-(-image[0] // stride), -(-image[1] // stride))
        levels.append(_level(size, stride, window, offset, 100 * seed + n))
    return levels


def _pixel_iou(a: WindowMask, b: WindowMask) -> float:
    top, left = min(a.top, b.top), min(a.left, b.left)
    bottom = max(a.top + a.mask.shape[0], b.top + b.mask.shape[0])
    right = max(a.left + a.mask.shape[1], b.left + b.mask.shape[1])
    canvases = []
    for m in (a, b):
        canvas = torch.zeros(bottom - top, right - left, dtype=torch.bool)
        canvas[
            m.top - top : m.top - top + m.mask.shape[0], m.left - left : m.left - left + m.mask.shape[1]
        ] = m.mask
        canvases.append(canvas)
    union = int((canvases[0] | canvases[1]).sum())
    return int((canvases[0] & canvases[1]).sum()) / union if union else 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("offsets", ["resnet", "vgg", "odd"])
def test_grid_nms_keeps_what_brute_force_keeps(seed: int, offsets: str) -> None:
    levels = _pyramid(seed, offsets=offsets)
    suppressed_some = False
    for threshold in (0.5, 0.7, 0.9, None):
        kept = grid_nms(levels, threshold)
        assert kept == brute_force_nms(levels, threshold)
        total = sum(int(level.valid.sum()) for level in levels)
        suppressed_some |= threshold is not None and len(kept) < total
        assert grid_nms(levels, threshold, top_k=7) == kept[:7]
    assert suppressed_some  # the test data exercise suppression, not only keep-all
    assert grid_nms(levels[1:2], 0.5) == brute_force_nms(levels[1:2], 0.5)  # one pathway alone


def test_off_keeps_all_valid_in_score_order_with_ties_by_position() -> None:
    levels = _pyramid(0)
    kept = grid_nms(levels, None)
    assert kept == grid_nms(levels, 1.0)
    assert len(kept) == sum(int(level.valid.sum()) for level in levels)
    keys = [(-float(levels[lv].scores[i, j]), lv, i, j) for lv, i, j in kept]
    assert keys == sorted(keys)


@pytest.mark.parametrize("offsets", ["resnet", "vgg", "odd"])
def test_iou_across_levels_equals_pixel_space_iou(offsets: str) -> None:
    levels = _pyramid(3, offsets=offsets)
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        a, b = (
            (lv, int(torch.randint(levels[lv].masks.shape[0], (1,), generator=generator)),
             int(torch.randint(levels[lv].masks.shape[1], (1,), generator=generator)))
            for lv in torch.randint(3, (2,), generator=generator).tolist()
        )  # fmt: skip
        pa, pb = to_window_masks(levels, [a, b])
        assert region_iou(levels, a, b) == pytest.approx(_pixel_iou(pa, pb), abs=1e-12)


def test_window_masks_follow_the_cell_rule() -> None:
    level = _pyramid(0)[1]  # stride 8, offset 0: cell i owns pixels 8i - 4 .. 8i + 3
    (mask,) = to_window_masks([level], [(0, 2, 3)])
    assert first_pixel(8, 0.0) == -4 and first_pixel(8, 3.5) == 0 and first_pixel(3, 0.0) == -1
    assert (mask.top, mask.left) == (8 * (2 - 2) - 4, 8 * (3 - 2) - 4)
    assert mask.mask.shape == (40, 40)
    assert torch.equal(mask.mask[::8, ::8], level.masks[2, 3])
    (coarse,) = to_window_masks([level], [(0, 2, 3)], upsample=False)
    assert (coarse.top, coarse.left) == (0, 1) and torch.equal(coarse.mask, level.masks[2, 3])


def test_comparisons_grow_linearly_not_quadratically() -> None:
    """Keep-all data (almost every region kept) are the worst case: brute force compares each candidate with all
    kept ones, the grid only with its bounded neighbourhood. Per region, the grid's count levels off (border
    regions have fewer neighbours, hence the rise from small grids) while brute force's grows with the grid."""
    per_region: dict[str, dict[int, float]] = {"grid": {}, "brute": {}}
    for side in (16, 32, 64):
        levels = [_level((side, side), 4, 5, 0.0, side), _level((side // 2, side // 2), 8, 3, 0.0, side + 1)]
        regions = sum(int(level.valid.sum()) for level in levels)
        counters: dict[str, dict[str, int]] = {"grid": {}, "brute": {}}
        kept = grid_nms(levels, 0.95, counter=counters["grid"])
        if side <= 32:  # brute force at 64 would take 16x as long as at 32
            assert kept == brute_force_nms(levels, 0.95, counter=counters["brute"])
        for name, counter in counters.items():
            if counter:
                per_region[name][side] = counter["iou"] / regions
    assert per_region["grid"][64] < 1.2 * per_region["grid"][32]
    assert per_region["brute"][32] > 3.5 * per_region["brute"][16]
    assert per_region["grid"][32] < per_region["brute"][32] / 10
