"""Proposal metrics (thesis §4.4.5): R@x, ABO and AR by hand, continuous vs sampled AR, window-crop IoU."""

from __future__ import annotations

import math

import pytest
import torch

from pixelwise.metrics.proposals import (
    WindowMask,
    abo,
    ar_at_k,
    average_recall,
    average_recall_sampled,
    best_ious,
    best_matches,
    instance_areas,
    instance_masks,
    mask_box,
    proposal_scores,
    recall_at,
    recall_by_size,
    window_iou,
)


def _full_iou(proposal: WindowMask, gt: torch.Tensor, void: torch.Tensor | None = None) -> float:
    """The reference: paste the proposal into the image frame (dropping what lies outside) and compare."""
    height, width = gt.shape
    canvas = torch.zeros(height + 200, width + 200, dtype=torch.bool)
    h, w = proposal.mask.shape
    canvas[proposal.top + 100 : proposal.top + 100 + h, proposal.left + 100 : proposal.left + 100 + w] = (
        proposal.mask
    )
    pred = canvas[100 : 100 + height, 100 : 100 + width]
    keep = torch.ones_like(gt) if void is None else ~void
    union = int(((pred | gt) & keep).sum())
    return int((pred & gt & keep).sum()) / union if union else 0.0


def _scene() -> torch.Tensor:
    """A 10 x 12 instance map: GT 3 is a 4 x 4 square, GT 7 a 2 x 5 bar, a void strip, an unmatched GT 9."""
    instances = torch.zeros(10, 12, dtype=torch.long)
    instances[1:5, 1:5] = 3
    instances[7:9, 2:7] = 7
    instances[0:10, 10] = 255
    instances[0, 8] = 9
    return instances


def test_instance_masks_skip_background_and_void() -> None:
    masks, ids = instance_masks(_scene())
    assert ids.tolist() == [3, 7, 9]
    assert masks.shape == (3, 10, 12) and masks.sum(dim=(1, 2)).tolist() == [16, 10, 1]
    assert instance_areas(_scene()).tolist() == [16, 10, 1]
    assert mask_box(masks[1]) == (7, 2, 9, 7)


def test_best_ious_by_hand() -> None:
    instances = _scene()
    # The square exactly; a 2 x 6 box over the bar (10 of 12 px: 10/12); a window off the left edge.
    exact = WindowMask(torch.ones(4, 4, dtype=torch.bool), 1, 1)
    bar = WindowMask(torch.ones(2, 6, dtype=torch.bool), 7, 2)
    edge = WindowMask(
        torch.ones(4, 6, dtype=torch.bool), 1, -2
    )  # 4 x 4 inside the image, 3 cols on the square
    best = best_ious([edge, bar, exact], instances)
    assert best.tolist() == pytest.approx([1.0, 10 / 12, 0.0])
    assert best_ious([edge], instances).tolist() == pytest.approx([12 / 20, 0.0, 0.0])  # 12 / (16 + 16 - 12)
    assert best_ious([edge, bar, exact], instances, k=2).tolist() == pytest.approx([12 / 20, 10 / 12, 0.0])
    matches = best_matches([edge, bar, exact], instances, ks=(1, None))
    assert matches[None][1].tolist() == [2, 1, -1] and matches[1][1].tolist() == [0, -1, -1]


def test_void_is_ignored() -> None:
    instances = _scene()
    # The bar's box widened over the void column (col 10) and background: void pixels are no false positives.
    over_void = WindowMask(torch.ones(2, 9, dtype=torch.bool), 7, 2)  # cols 2..10: 10 bar, 3 bg, 1 void x 2
    assert best_ious([over_void], instances)[1].item() == pytest.approx(10 / 16)
    gt = instances == 7
    assert window_iou(over_void, gt, void_mask=instances == 255) == pytest.approx(10 / 16)


def test_scores_by_hand() -> None:
    best = torch.tensor([0.0, 0.4, 0.5, 0.7, 0.9, 1.0])
    assert recall_at(best, 0.5) == pytest.approx(4 / 6)
    assert recall_at(best, 0.7) == pytest.approx(3 / 6)
    assert abo(best) == pytest.approx(3.5 / 6)
    assert average_recall(best) == pytest.approx(2 * (0.2 + 0.4 + 0.5) / 6)
    # Sampled: 0.5 -> 4, 0.55..0.7 -> 3 each (4 thresholds), 0.75..0.9 -> 2 each (4), 0.95 -> 1; over 6 GTs.
    assert average_recall_sampled(best) == pytest.approx((4 + 4 * 3 + 4 * 2 + 1) / 60)
    scores = proposal_scores([best[:2], best[2:]])
    assert scores["r50"] == pytest.approx(4 / 6) and scores["ar"] == pytest.approx(average_recall(best))
    assert scores["gts"] == 6
    assert math.isnan(proposal_scores([])["ar"])


def test_continuous_and_sampled_ar_agree() -> None:
    """The sampled form is a left Riemann sum: 0 <= sampled - continuous <= 0.1 x (share in [0.5, 1)), always,
    about half that on smooth data: within 0.025 on random data like detector output (at most about 40% of the best IoUs in [0.5, 1))."""
    generator = torch.Generator().manual_seed(0)
    for draw in range(20):
        best = torch.rand(500, generator=generator, dtype=torch.float64) ** (1.5 + draw / 10)
        gap = average_recall_sampled(best) - average_recall(best)
        share = float(((best >= 0.5) & (best < 1)).double().mean())
        assert -1e-12 <= gap <= 0.1 * share + 1e-12
        assert abs(gap) <= 0.025


def test_window_crop_iou_equals_full_image_iou() -> None:
    generator = torch.Generator().manual_seed(1)
    instances = torch.randint(0, 4, (24, 30), generator=generator)
    instances[torch.rand(24, 30, generator=generator) < 0.1] = 255
    masks, ids = instance_masks(instances)
    void = instances == 255
    proposals = []
    for _ in range(40):
        h, w = (int(v) for v in torch.randint(1, 16, (2,), generator=generator))
        top, left = (
            int(torch.randint(-8, 24, (1,), generator=generator)),
            int(torch.randint(-8, 30, (1,), generator=generator)),
        )
        proposals.append(WindowMask(torch.rand(h, w, generator=generator) < 0.6, top, left))
    for proposal in proposals:
        for mask in masks:
            expected = _full_iou(proposal, mask, void)
            assert window_iou(proposal, mask, mask_box(mask), void) == pytest.approx(expected, abs=1e-12)
    expected_best = torch.tensor([max(_full_iou(p, m, void) for p in proposals) for m in masks])
    assert torch.allclose(best_ious(proposals, instances), expected_best.double())


def test_ar_at_k_and_recall_by_size() -> None:
    instances = _scene()
    exact = WindowMask(torch.ones(4, 4, dtype=torch.bool), 1, 1)
    bar = WindowMask(torch.ones(2, 5, dtype=torch.bool), 7, 2)
    miss = WindowMask(torch.ones(1, 1, dtype=torch.bool), 5, 5)
    scores = ar_at_k([[miss, exact, bar]], [instances], ks=(1, 2, 3))
    assert scores == pytest.approx({"ar@1": 0.0, "ar@2": 1 / 3, "ar@3": 2 / 3})
    best = best_ious([miss, exact, bar], instances)
    recall, count = recall_by_size(best, instance_areas(instances), bins=[0, 2, 4, 8])
    assert count.tolist() == [1, 1, 1]  # sqrt areas 1, 3.16, 4
    assert recall.tolist() == [0.0, 1.0, 1.0]
    recall, count = recall_by_size(best, instance_areas(instances), bins=[10, 20])
    assert count.tolist() == [0] and math.isnan(recall[0])


def test_float_masks_are_refused() -> None:
    with pytest.raises(ValueError, match="binarise"):
        best_ious([WindowMask(torch.ones(2, 2), 0, 0)], _scene())
