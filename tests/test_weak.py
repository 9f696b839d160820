"""Weak supervision from image tags (Mostajabi thesis Ch. 4): global softmax, tag loss, diverse sampling, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.cli.main import main
from pixelwise.methods.weak import (
    background_points,
    diverse_points,
    global_softmax_log_probs,
    normalised_features,
    tag_loss,
)


def test_global_softmax_compares_the_two_maxima() -> None:
    """Eq. 4.3.2: p(c) = max e^S / (max e^S + max e^S-bar), whatever the other locations hold."""
    foreground = torch.tensor([[[[0.0, 2.0], [-5.0, 1.0]]]])
    background = torch.tensor([[[[1.0, -3.0], [0.5, 0.0]]]])
    expected = torch.tensor(2.0).exp() / (torch.tensor(2.0).exp() + torch.tensor(1.0).exp())
    log_p, log_not_p = global_softmax_log_probs(foreground, background)
    torch.testing.assert_close(log_p.exp(), expected.view(1, 1))
    torch.testing.assert_close(log_not_p.exp(), 1 - expected.view(1, 1))


def test_tag_loss_uses_tagged_positives_and_as_many_untagged_negatives() -> None:
    foreground = torch.zeros(1, 6, 2, 2, requires_grad=True)
    background = torch.zeros(1, 6, 2, 2)
    tags = torch.tensor([[1.0, 0, 1, 0, 0, 0]])
    tag_loss(foreground, background, tags, torch.Generator().manual_seed(0)).backward()
    touched = foreground.grad.flatten(2).abs().sum(dim=2)[0] > 0
    assert touched[0] and touched[2] and int(touched.sum()) == 4  # 2 positives + 2 of the 4 untagged classes


def test_diverse_points_start_at_the_maximum_and_avoid_repeating_a_feature() -> None:
    scores = torch.tensor([5.0, 4.9, 1.0, 0.5])
    features = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0], [1.0, 0.01], [0, 1.0], [0.7, 0.7]]), dim=1
    )
    chosen = diverse_points(scores, features, 2).tolist()
    assert chosen[0] == 0  # Eq. 4.3.3
    assert chosen[1] == 2  # 1 scores higher but has (almost) the same features as 0 (Eq. 4.3.4)


def test_background_points_are_the_least_like_the_foreground_points() -> None:
    features = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.6, 0.8]]), dim=1
    )
    assert background_points(features, torch.tensor([0]), 1).tolist() == [2]


def test_features_are_z_scored_then_unit_length() -> None:
    features = normalised_features(torch.randn(8, 5, 6) * 10 + 3)
    assert features.shape == (30, 8)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(30))


@pytest.mark.slow
def test_localise_points_then_train_on_the_points(tmp_path: Path) -> None:
    data = ["--data", "synthetic:16:48x64"]
    common = ["--batch-size", "8", "--crop", "48", "64", "--threads", "1", "--num-examples", "0"]
    assert (
        main(
            [
                "weak",
                "localise",
                *data,
                *common,
                "--head-width",
                "32",
                "--epochs",
                "2",
                "--output",
                str(tmp_path / "loc"),
            ]
        )
        == 0
    )
    scores = json.loads((tmp_path / "loc" / "metrics.json").read_text())
    assert 0 <= scores["point_precision"] <= 1 and scores["points"] > 0
    assert scores["tag_loss"] > 0 and scores["neg_tag_loss"] == -scores["tag_loss"]  # what chooses best
    points = tmp_path / "points"
    assert main(["weak", "points", "--checkpoint", str(tmp_path / "loc"), *data, "--points-per-class", "3",
                 "--output", str(points)]) == 0  # fmt: skip
    lines = (points / "train.txt").read_text().split("\n")
    assert len([line for line in lines if line]) == 16
    label = np.asarray(Image.open(points / "labels" / "00000.png"))
    labelled = label != 255
    assert 0 < labelled.mean() < 0.5  # sparse: void except at the points' cells
    assert (label[labelled] < 6).all()
    train = ["train", "--data", str(points / "train.txt"), "--val-data", "synthetic:16:48x64", *common[:-2]]
    assert main([*train, "--epochs", "1", "--output", str(tmp_path / "seg")]) == 0
    assert main(["eval", "--checkpoint", str(tmp_path / "loc"), *data]) == 2  # not a segmenter: one line


def test_classes_that_choose_the_same_cell_keep_the_higher_scoring_point() -> None:
    from pixelwise.methods.weak.task import resolve_collisions

    points = torch.tensor([[1, 0, 0], [2, 0, 0], [2, 3, 4], [0, 3, 4], [1, 5, 5]])
    scores = torch.tensor([0.2, 0.9, 0.1, float("-inf"), 0.5])  # -inf: a background point
    kept = resolve_collisions(points, scores)
    assert kept.tolist() == [[2, 0, 0], [2, 3, 4], [1, 5, 5]]
