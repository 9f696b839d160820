"""Metrics of thesis §3.4.1, boundary ("trimap") accuracy and the §3.5 IU upper bound."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from pixelwise.metrics import (
    BoundaryAccuracy,
    boundary_mask,
    confusion_matrix,
    down_up_sample,
    iu_upper_bound,
    scores_to_json,
    segmentation_scores,
)

# ---------------------------------------------------------------------------------------------------------
# Hand-worked example (3 classes, one ignore pixel), 2 x 5 image:
#
#   target = 0 0 0 0 1      pred = 0 0 0 1 1
#            1 1 2 2 255           1 2 2 0 1     (the 255 pixel is dropped whatever pred says)
#
# n_ij (rows = ground truth i, columns = prediction j):
#            j=0 j=1 j=2 | t_i
#     i=0  [  3   1   0 ]   4
#     i=1  [  0   2   1 ]   3
#     i=2  [  1   0   1 ]   2
#   col sums  4   3   2     9 pixels
#
# pixel acc = (3 + 2 + 1) / 9                       = 2/3
# mean acc  = (3/4 + 2/3 + 1/2) / 3                 = 23/36
# IU_0 = 3 / (4 + 4 - 3) = 3/5, IU_1 = 2 / (3 + 3 - 2) = 1/2, IU_2 = 1 / (2 + 2 - 1) = 1/3
# mean IU   = (3/5 + 1/2 + 1/3) / 3                 = 43/90
# f.w. IU   = (4 * 3/5 + 3 * 1/2 + 2 * 1/3) / 9     = 137/270
# ---------------------------------------------------------------------------------------------------------
TARGET = torch.tensor([[0, 0, 0, 0, 1], [1, 1, 2, 2, 255]])
PRED = torch.tensor([[0, 0, 0, 1, 1], [1, 2, 2, 0, 1]])
CM = [[3, 1, 0], [0, 2, 1], [1, 0, 1]]


def _approx(value: Fraction) -> object:
    return pytest.approx(float(value), abs=1e-12)


def test_hand_example_confusion_matrix() -> None:
    cm = confusion_matrix(PRED, TARGET, num_classes=3)
    assert cm.dtype == torch.int64
    assert cm.tolist() == CM


def test_hand_example_scores() -> None:
    scores = segmentation_scores(torch.tensor(CM))
    assert scores["pixel_acc"] == _approx(Fraction(2, 3))
    assert scores["mean_acc"] == _approx(Fraction(23, 36))
    assert scores["mean_iou"] == _approx(Fraction(43, 90))
    assert scores["fw_iou"] == _approx(Fraction(137, 270))
    assert scores["per_class_iou"] == pytest.approx([3 / 5, 1 / 2, 1 / 3])
    assert scores["per_class_acc"] == pytest.approx([3 / 4, 2 / 3, 1 / 2])
    assert scores["present"] == [True, True, True]


def test_ignore_pixels_are_dropped_whatever_is_predicted() -> None:
    pred = PRED.clone()
    for value in (0, 2):  # the prediction at the ignore pixel does not matter
        pred[1, 4] = value
        assert confusion_matrix(pred, TARGET, 3).tolist() == CM
    all_ignored = torch.full_like(TARGET, 255)
    assert confusion_matrix(PRED, all_ignored, 3).sum() == 0


def test_custom_ignore_index() -> None:
    target = TARGET.masked_fill(TARGET == 255, -1)
    assert confusion_matrix(PRED, target, 3, ignore_index=-1).tolist() == CM


# Absent classes: same example with 4 classes; class 3 never occurs in the ground truth, but the GT-2 pixel
# previously predicted 0 is now predicted 3:
#            j=0 j=1 j=2 j=3 | t_i
#     i=0  [  3   1   0   0 ]  4      IU_0 = 3 / (4 + 3 - 3) = 3/4   (column 0 now sums to 3)
#     i=1  [  0   2   1   0 ]  3      IU_1 = 1/2
#     i=2  [  0   0   1   1 ]  2      IU_2 = 1 / (2 + 2 - 1) = 1/3   (the 3-prediction is its false negative)
#     i=3  [  0   0   0   0 ]  0      absent: IU_3 = NaN, left out of every mean (n_cl = 3)
# mean IU = (3/4 + 1/2 + 1/3) / 3 = 19/36   (counting class 3 as IU 0 would give 19/48)
# mean acc = (3/4 + 2/3 + 1/2) / 3 = 23/36; pixel acc = 6/9; f.w. IU = (4*3/4 + 3*1/2 + 2*1/3) / 9 = 31/54
def test_absent_class_excluded_from_means_but_its_false_positives_count() -> None:
    pred = PRED.clone()
    pred[1, 3] = 3
    cm = confusion_matrix(pred, TARGET, num_classes=4)
    assert cm.tolist() == [[3, 1, 0, 0], [0, 2, 1, 0], [0, 0, 1, 1], [0, 0, 0, 0]]
    scores = segmentation_scores(cm)
    assert scores["present"] == [True, True, True, False]
    assert math.isnan(scores["per_class_iou"][3]) and math.isnan(scores["per_class_acc"][3])
    assert scores["per_class_iou"][:3] == pytest.approx([3 / 4, 1 / 2, 1 / 3])
    assert scores["mean_iou"] == _approx(Fraction(19, 36))
    assert scores["mean_acc"] == _approx(Fraction(23, 36))
    assert scores["pixel_acc"] == _approx(Fraction(2, 3))
    assert scores["fw_iou"] == _approx(Fraction(31, 54))


def test_absent_and_unpredicted_class_changes_nothing() -> None:
    three = segmentation_scores(confusion_matrix(PRED, TARGET, 3))
    five = segmentation_scores(confusion_matrix(PRED, TARGET, 5))
    for key in ("pixel_acc", "mean_acc", "mean_iou", "fw_iou"):
        assert five[key] == pytest.approx(three[key])
    assert five["present"] == [True, True, True, False, False]
    assert all(math.isnan(v) for v in five["per_class_iou"][3:])


def test_perfect_prediction_scores_one() -> None:
    target = torch.randint(0, 4, (2, 7, 9))
    target[0, :2] = 255
    scores = segmentation_scores(confusion_matrix(target.clone(), target, 4))
    for key in ("pixel_acc", "mean_acc", "mean_iou", "fw_iou"):
        assert scores[key] == 1.0
    assert scores["per_class_iou"] == [1.0] * 4


def test_no_ground_truth_pixels_gives_nan() -> None:
    scores = segmentation_scores(torch.zeros(3, 3, dtype=torch.int64))
    assert all(math.isnan(scores[k]) for k in ("pixel_acc", "mean_acc", "mean_iou", "fw_iou"))


def test_out_of_range_target_raises_naming_values() -> None:
    target = TARGET.clone()
    target[0, 0] = 7
    target[0, 1] = -1
    with pytest.raises(ValueError, match=r"target .*-1, 7"):
        confusion_matrix(PRED, target, 3)


def test_out_of_range_pred_raises() -> None:
    pred = PRED.clone()
    pred[0, 0] = 3
    with pytest.raises(ValueError, match=r"pred .*: 3"):
        confusion_matrix(pred, TARGET, 3)


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(PRED[:, :4], TARGET, 3)
    with pytest.raises(TypeError, match="argmax"):
        confusion_matrix(PRED.float(), TARGET, 3)


def _numpy_confusion(pred: np.ndarray, target: np.ndarray, n: int, ignore: int) -> np.ndarray:
    """Independent reference: loop-free np.add.at over the kept pixels."""
    keep = target != ignore
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (target[keep], pred[keep]), 1)
    return cm


def test_accumulation_over_batches_matches_single_call_and_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (6, 11, 13), generator=gen)
    target[torch.rand(target.shape, generator=gen) < 0.1] = 255
    pred = torch.randint(0, 5, target.shape, generator=gen)
    whole = confusion_matrix(pred, target, 5)
    summed = confusion_matrix(pred[:2], target[:2], 5) + confusion_matrix(pred[2:], target[2:], 5)
    assert torch.equal(whole, summed)
    assert whole.numpy().tolist() == _numpy_confusion(pred.numpy(), target.numpy(), 5, 255).tolist()


def test_class_names_and_json() -> None:
    pred = PRED.clone()
    pred[1, 3] = 3
    scores = segmentation_scores(confusion_matrix(pred, TARGET, 4), ["sky", "road", "car", "bike"])
    assert scores["per_class_iou_named"]["sky"] == pytest.approx(3 / 4)
    assert math.isnan(scores["per_class_iou_named"]["bike"])
    as_json = scores_to_json(scores)
    assert as_json["per_class_iou"][3] is None and as_json["per_class_iou_named"]["bike"] is None
    assert json.loads(json.dumps(as_json, allow_nan=False))["mean_iou"] == pytest.approx(19 / 36)
    with pytest.raises(ValueError, match="class names"):
        segmentation_scores(torch.eye(3, dtype=torch.int64), ["a", "b"])


# --- boundary band ----------------------------------------------------------------------------------------
def _two_regions(height: int = 6, width: int = 10, split: int = 5) -> torch.Tensor:
    target = torch.zeros(height, width, dtype=torch.int64)
    target[:, split:] = 1
    return target


def _columns(mask: torch.Tensor) -> list[int]:
    """Columns that are entirely selected; asserts every column is all-or-nothing."""
    per_column = mask.all(dim=0) | ~mask.any(dim=0)
    assert bool(per_column.all()), "band must select whole columns for a vertical edge"
    return torch.nonzero(mask.all(dim=0)).flatten().tolist()


@pytest.mark.parametrize(
    ("width", "columns"), [(0, []), (1, [4, 5]), (2, [3, 4, 5, 6]), (4, list(range(1, 9)))]
)
def test_boundary_mask_two_regions_selects_width_columns_each_side(width: int, columns: list[int]) -> None:
    # Edge between columns 4 (class 0) and 5 (class 1): width w selects w columns on each side.
    mask = boundary_mask(_two_regions(), width)
    assert mask.dtype == torch.bool and mask.shape == (6, 10)
    assert _columns(mask) == columns


def test_boundary_mask_batched_and_uniform() -> None:
    batch = torch.stack([_two_regions(), torch.zeros(6, 10, dtype=torch.int64)])
    mask = boundary_mask(batch, 2)
    assert torch.equal(mask[0], boundary_mask(_two_regions(), 2))
    assert not mask[1].any()  # one label only: no edge


def test_boundary_mask_ignore_is_transparent_unless_void_as_edge() -> None:
    target = _two_regions()
    target[:, 4] = 255  # a void column between the regions (as VOC draws object outlines)
    assert _columns(boundary_mask(target, 1)) == []  # nearest other label is 2 columns away
    assert _columns(boundary_mask(target, 2)) == [3, 5]  # void pixels themselves are never in the band
    assert _columns(boundary_mask(target, 1, void_as_edge=True)) == [3, 5]


def _brute_force_band(target: np.ndarray, width: int, ignore: int) -> np.ndarray:
    height, wid = target.shape
    out = np.zeros_like(target, dtype=bool)
    for y in range(height):
        for x in range(wid):
            if target[y, x] == ignore:
                continue
            window = target[max(0, y - width) : y + width + 1, max(0, x - width) : x + width + 1]
            out[y, x] = bool(((window != ignore) & (window != target[y, x])).any())
    return out


@pytest.mark.parametrize("width", [1, 2, 3])
def test_boundary_mask_matches_brute_force_chebyshev_definition(width: int) -> None:
    gen = torch.Generator().manual_seed(width)
    target = torch.randint(0, 3, (9, 12), generator=gen)
    target[torch.rand(target.shape, generator=gen) < 0.2] = 255
    expected = _brute_force_band(target.numpy(), width, 255)
    assert boundary_mask(target, width).numpy().tolist() == expected.tolist()


# Trimap hand example: 4 x 6 map, class 0 in columns 0-2, class 1 in columns 3-5. pred = target except
# (0, 2) -> 1 (inside every band) and (0, 0) -> 1 (only inside the 3-px band, which covers the whole image).
#   width 1: columns 2-3, 8 pixels, 1 error  -> acc 7/8
#            band n_ij = [[3, 1], [0, 4]]: IU_0 = 3 / (4 + 3 - 3) = 3/4, IU_1 = 4 / (4 + 5 - 4) = 4/5
#            band mean IU = 31/40
#   width 2: columns 1-4, 16 pixels, 1 error -> acc 15/16
#   width 3: all 24 pixels, 2 errors         -> acc 22/24 = 11/12
def _trimap_example() -> tuple[torch.Tensor, torch.Tensor]:
    target = _two_regions(height=4, width=6, split=3)
    pred = target.clone()
    pred[0, 2] = 1
    pred[0, 0] = 1
    return pred, target


def test_trimap_accuracy_hand_example() -> None:
    pred, target = _trimap_example()
    metric = BoundaryAccuracy(num_classes=2, widths=(1, 2, 3))
    metric.update(pred, target)
    assert metric.counts.tolist() == [[7, 8], [15, 16], [22, 24]]
    result = metric.compute()
    assert result["trimap_acc@1px"] == _approx(Fraction(7, 8))
    assert result["trimap_acc@2px"] == _approx(Fraction(15, 16))
    assert result["trimap_acc@3px"] == _approx(Fraction(11, 12))
    assert result["trimap_miou@1px"] == _approx(Fraction(31, 40))


def test_trimap_accumulates_and_perfect_is_one() -> None:
    pred, target = _trimap_example()
    metric = BoundaryAccuracy(2, widths=(1, 2))
    metric.update(pred, target)
    metric.update(pred.unsqueeze(0), target.unsqueeze(0))  # batched input accumulates the same counts
    assert metric.counts.tolist() == [[14, 16], [30, 32]]
    assert all(t.dtype == torch.int64 for t in metric.state_tensors())
    metric.reset()
    metric.update(target.clone(), target)
    assert all(v == 1.0 for v in metric.compute().values())


def test_trimap_empty_band_is_nan() -> None:
    metric = BoundaryAccuracy(2, widths=(2,))
    metric.update(torch.zeros(4, 4, dtype=torch.int64), torch.zeros(4, 4, dtype=torch.int64))
    assert math.isnan(metric.compute()["trimap_acc@2px"])


# --- IU upper bound (§3.5) --------------------------------------------------------------------------------
def test_down_up_sample_takes_block_centres() -> None:
    target = torch.arange(16).reshape(4, 4)
    # factor 2, centre sampling: rows/cols 1 and 3 are sampled, each replicated over its 2 x 2 block.
    assert down_up_sample(target, 2).tolist() == [[5, 5, 7, 7], [5, 5, 7, 7], [13, 13, 15, 15]] + [
        [13, 13, 15, 15]
    ]
    assert down_up_sample(target, 2, sample="corner")[0].tolist() == [0, 0, 2, 2]
    assert down_up_sample(target, 3)[:, 3].tolist() == [7, 7, 7, 15]  # partial last cell: clamped sample


def _synthetic_scene(size: int = 96) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    label = torch.zeros(size, size, dtype=torch.int64)
    label[(yy - 40) ** 2 + (xx - 50) ** 2 < 22**2] = 1  # disc
    label[60:90, 10:35] = 2  # rectangle
    label[5:12, 5:90] = 3  # thin bar
    label[70:73, 50:95] = 255  # void strip
    return label


def test_iu_upper_bound_factor_one_is_exact() -> None:
    assert iu_upper_bound([_synthetic_scene()], 1, num_classes=4) == 1.0


def test_iu_upper_bound_non_increasing_in_factor() -> None:
    scene = _synthetic_scene()
    bounds = [iu_upper_bound(scene.unsqueeze(0), f, num_classes=4) for f in (1, 2, 4, 8, 16, 32)]
    assert all(a >= b for a, b in zip(bounds, bounds[1:])), bounds
    assert bounds[-1] < 0.9


def test_iu_upper_bound_counts_void_samples_as_misses() -> None:
    target = torch.tensor([[0, 0], [0, 255]])  # centre sample of the single 2x2 cell is the void pixel
    assert iu_upper_bound(target, 2, num_classes=1) == 0.0
    assert iu_upper_bound(target, 2, num_classes=1, sample="corner") == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_metrics_run_on_cuda_tensors() -> None:
    cm = confusion_matrix(PRED.cuda(), TARGET.cuda(), 3)
    assert cm.is_cuda and cm.tolist() == CM
    pred, target = _trimap_example()
    metric = BoundaryAccuracy(2, widths=(1, 2, 3))
    metric.update(pred.cuda(), target.cuda())
    assert metric.counts.is_cuda and metric.counts.tolist() == [[7, 8], [15, 16], [22, 24]]
    assert iu_upper_bound(_synthetic_scene().cuda(), 1, num_classes=4) == 1.0


def test_linear_cka_is_one_up_to_rotation_and_scale_and_near_zero_for_unrelated_features() -> None:
    from pixelwise.metrics import linear_cka

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(500, 16, generator=generator)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16, generator=generator))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ rotation + 5.0) == pytest.approx(1.0)
    assert linear_cka(x, torch.randn(500, 8, generator=generator)) < 0.1
    half = torch.cat([x[:, :8], torch.randn(500, 8, generator=generator)], dim=1)
    assert 0.2 < linear_cka(x, half) < 0.8  # shares half of its directions
