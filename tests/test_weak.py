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


def test_top_k_takes_the_best_scores_and_dense_labels_every_location_with_its_best_tagged_class() -> None:
    from pixelwise.methods.weak.sampling import dense_labels, top_points

    assert sorted(top_points(torch.tensor([0.1, 3.0, 2.0, -1.0]), 2).tolist()) == [1, 2]
    scores = torch.tensor([[9.0, 9.0, 9.0], [1.0, 0.0, 2.0], [0.0, 1.0, 1.0]])  # class 0 is not tagged
    assert dense_labels(scores, [1, 2]).tolist() == [1, 2, 1]


def test_each_crop_is_an_image_of_its_own_whose_tags_are_the_classes_inside_it() -> None:
    from pixelwise.data import class_tags
    from pixelwise.methods.weak.crops import labelled_views

    labels = torch.zeros(40, 60, dtype=torch.long)
    labels[:, 30:] = 1  # left half class 0, right half class 1
    image = torch.rand(3, 40, 60)
    views = list(labelled_views("f", image, labels, 6, (20, 20), torch.Generator().manual_seed(0)))
    assert [name for name, _, _ in views] == [f"f_crop{i}" for i in range(6)]
    for _, view, truth in views:
        assert view.shape == (3, 20, 20) and truth.shape == (20, 20)
    tags = [class_tags(truth, 2).tolist() for _, _, truth in views]
    assert [1.0, 0.0] in tags or [0.0, 1.0] in tags  # some crops miss a class the whole frame has
    [(name, whole, truth)] = labelled_views("f", image, labels, 0, (20, 20), torch.Generator())
    assert name == "f" and whole is image and truth is labels
    with pytest.raises(ValueError, match="larger than"):
        list(labelled_views("f", image, labels, 1, (50, 20), torch.Generator()))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["top-k", "dense"])
def test_points_from_crops_with_each_sampling_strategy(tmp_path: Path, strategy: str) -> None:
    from pixelwise.engine.checkpoint import save_checkpoint
    from pixelwise.methods.weak import TagLocaliser, TagLocaliserConfig

    model = TagLocaliser(TagLocaliserConfig("resnet18", 6, 3, 16))
    save_checkpoint(tmp_path / "loc.safetensors", model.state_dict(), {"model": model.config.to_dict()})
    out = tmp_path / "points"
    command = ["weak", "points", "--checkpoint", str(tmp_path / "loc.safetensors"), "--data", "synthetic:4:48x64",
               "--strategy", strategy, "--crops", "3", "--crop-size", "24", "32", "--points-per-class", "2",
               "--output", str(out)]  # fmt: skip
    assert main(command) == 0
    lines = [line for line in (out / "train.txt").read_text().split("\n") if line]
    assert len(lines) == 12 and lines[0] == "images/00000_crop0.png labels/00000_crop0.png"
    label = np.asarray(Image.open(out / "labels" / "00000_crop0.png"))
    assert label.shape == (24, 32)
    labelled = (label != 255).mean()
    assert labelled == 1.0 if strategy == "dense" else 0 < labelled < 0.5
