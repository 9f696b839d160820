"""Superpixel zoom-out (Mostajabi thesis §3.3-3.4): pooling, superpixel labels, sub-scene boxes, mirror-max, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pixelwise.cli.main import main
from pixelwise.data import build_dataset
from pixelwise.methods.zoomout import SuperpixelZoomOut, SuperpixelZoomOutConfig
from pixelwise.methods.zoomout.pooling import pool_boxes, pool_superpixels, superpixel_pooling_matrix
from pixelwise.methods.zoomout.superpixels import (
    majority_labels,
    rectangle_superpixels,
    region_boxes,
    slic_superpixels,
)
from pixelwise.models.receptive_field import Grid


@pytest.mark.parametrize("stride", [2, 4, 32])
def test_sparse_pooling_equals_upsampling_then_averaging(stride: int) -> None:
    """The area-weighted matrix is Fig. 3.4's upsample-and-average, without the full-resolution map."""
    torch.manual_seed(0)
    segments = rectangle_superpixels(45, 61, 30)
    cells = (-(-64 // stride), -(-64 // stride))  # a map of the input padded to 64x64
    feature = torch.randn(5, *cells)
    pooled = pool_superpixels(feature, superpixel_pooling_matrix(segments, cells, Grid.block(stride)))
    dense = F.interpolate(feature[None], scale_factor=stride, mode="bilinear", align_corners=False)[
        0, :, :45, :61
    ]
    expected = torch.stack([dense[:, segments == k].mean(dim=1) for k in range(int(segments.max()) + 1)])
    torch.testing.assert_close(pooled, expected, rtol=1e-5, atol=1e-5)


def test_box_pooling_averages_the_cells_under_the_box() -> None:
    feature = torch.randn(3, 12, 16)
    boxes = torch.tensor([[0, 0, 7, 7], [4, 8, 11, 63], [47, 0, 47, 0]])  # pixel boxes at stride 4
    pooled = pool_boxes(feature, boxes, Grid.block(4))
    expected = [feature[:, 0:2, 0:2], feature[:, 1:3, 2:16], feature[:, 11:12, 0:1]]
    torch.testing.assert_close(pooled, torch.stack([e.mean(dim=(1, 2)) for e in expected]))


def test_majority_labels_ignore_void_and_unlabelled_superpixels() -> None:
    segments = rectangle_superpixels(4, 4, 4)  # four 2x2 blocks
    labels = torch.tensor([[1, 1, 255, 255], [1, 2, 255, 255], [0, 0, 2, 2], [255, 0, 2, 1]])
    assert majority_labels(segments, labels, 3, 255).tolist() == [1, 255, 0, 2]


def test_subscene_boxes_grow_with_the_graph_radius() -> None:
    segments = rectangle_superpixels(10, 50, 5)  # a row of five 10x10 superpixels
    assert region_boxes(segments, 1)[2].tolist() == [0, 10, 9, 39]  # itself and its two neighbours
    assert region_boxes(segments, 2)[0].tolist() == [0, 0, 9, 29]
    assert region_boxes(segments, 3)[0].tolist() == [
        0,
        0,
        9,
        39,
    ]  # §3.4.1.4: neighbours of neighbours' neighbours


def test_slic_gives_contiguous_ids_near_the_requested_count() -> None:
    image = build_dataset("synthetic:4:96x128", "val")[0][0]
    segments = slic_superpixels(image, count=60)
    ids = segments.unique()
    assert segments.shape == (96, 128) and ids.tolist() == list(range(len(ids)))
    assert 20 <= len(ids) <= 120


def test_mirror_max_descriptors_do_not_depend_on_the_side() -> None:
    """max(descriptor(image), descriptor(mirror)) is the same for an image and its mirror (§3.4.1.4)."""
    torch.manual_seed(0)
    model = SuperpixelZoomOut(SuperpixelZoomOutConfig(num_classes=3, hidden=16)).eval()
    image = build_dataset("synthetic:4:64x96", "val")[0][0][None]  # a multiple of 32: padding is symmetric
    segments = model.superpixels_of(image)
    with torch.no_grad():
        plain, _ = model.descriptors(image, segments)
        mirrored, _ = model.descriptors(image.flip(-1), segments.flip(-1))
    deepest = model.taps.channels["layer4"]
    width = sum(model.taps.channels.values()) + 2 * deepest
    assert plain.shape == (int(segments.max()) + 1, width)  # every stage + sub-scene + scene
    torch.testing.assert_close(plain, mirrored, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_zoomout_command_trains_reports_the_oracle_and_evaluates(tmp_path: Path, capsys) -> None:
    run = tmp_path / "zoomout"
    data = ["--data", "synthetic:16:48x64"]
    flags = ["--superpixels", "40", "--epochs", "3", "--hidden", "64", "--batch-size", "64", "--threads", "1"]
    assert main(["zoomout", *data, *flags, "--output", str(run)]) == 0
    scores = json.loads((run / "metrics.json").read_text())
    assert scores["oracle_mean_iou"] > 0.6 and scores["oracle_mean_iou"] > scores["mean_iou"] > 0.15
    assert main(["eval", "--checkpoint", str(run), *data, "--output", str(tmp_path / "eval")]) == 0
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["mean_iou"] == pytest.approx(scores["mean_iou"], abs=1e-6)  # the checkpoint is the model
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(run), "--output", str(tmp_path / "m.onnx")]) == 2
    assert "cannot be expressed in ONNX" in capsys.readouterr().err
