"""Digits without downloads (specs/mixture-models.md, "Testing it here, offline"): scikit-learn's bundled digits,
font digits, the MNIST-style variations and their compositing, image folders and stratified splits."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.data.digits import (
    camvid_backgrounds,
    font_digits,
    font_paths,
    image_folder,
    load_digit_data,
    make_variation,
    per_class_subset,
    rotate,
    sklearn_digits,
    stratified_split,
)


def test_sklearn_digits_are_upsampled_and_padded_to_the_mnist_layout() -> None:
    pytest.importorskip("sklearn", reason="scikit-learn is the optional 'digits' dependency")
    images, labels = sklearn_digits()
    assert images.shape == (1797, 1, 28, 28) and labels.shape == (1797,)
    assert images.min() >= 0 and images.max() <= 1 and images.max() > 0.9
    assert (
        images[..., :2, :].abs().sum() == 0 and images[..., :, -2:].abs().sum() == 0
    )  # 2 px of zero padding
    assert torch.equal(torch.bincount(labels) > 170, torch.ones(10, dtype=torch.bool))


def test_font_digits_are_balanced_deterministic_and_inked() -> None:
    assert len(font_paths()) >= 12  # DejaVu x 12 at least
    images, labels = font_digits(40, seed=3)
    again, _ = font_digits(40, seed=3)
    other, _ = font_digits(40, seed=4)
    assert images.shape == (40, 1, 28, 28) and torch.equal(torch.bincount(labels), torch.full((10,), 4))
    assert torch.equal(images, again) and not torch.equal(images, other)
    assert (images.flatten(1).amax(dim=1) > 0.5).all()  # every digit has ink
    assert images[..., 0, :].max() < 0.2  # and it stays inside the frame


def test_rotate_turns_content_clockwise_on_screen_and_keeps_size() -> None:
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 1, 3:5] = 1  # a bar at the top
    turned = rotate(image, torch.tensor(math.pi / 2))
    assert torch.allclose(turned, torch.rot90(image, -1, dims=(-2, -1)), atol=1e-5)
    assert turned[0, 0, 3:5, 6].min() > 0.99  # now at the right


def test_variations_rotate_then_compose_with_the_maximum() -> None:
    digits, _ = font_digits(20, seed=0)
    rotated, angles = make_variation(digits, "rot", seed=1)
    assert ((angles >= 0) & (angles < 2 * math.pi)).all() and angles.std() > 1
    assert torch.allclose(rotated, rotate(digits, angles).clamp(0, 1))
    noisy, zero = make_variation(digits, "bg-rand", seed=1)
    assert (
        torch.equal(zero, torch.zeros(20)) and (noisy >= digits).all() and noisy.mean() > digits.mean() + 0.3
    )
    frames = torch.rand(3, 1, 40, 50)
    cluttered, _ = make_variation(digits, "bg-img", seed=2, backgrounds=frames)
    background = cluttered.clone()
    assert (cluttered >= digits).all() and torch.allclose(torch.maximum(digits, background), cluttered)
    both, angles = make_variation(digits, "bg-img-rot", seed=2, backgrounds=frames)
    assert (both >= rotate(digits, angles).clamp(0, 1) - 1e-6).all()
    with pytest.raises(ValueError, match="--backgrounds"):
        make_variation(digits, "bg-img")
    with pytest.raises(ValueError, match="choose from"):
        make_variation(digits, "mnist-rot")


def test_missing_backgrounds_are_none(tmp_path: Path) -> None:
    assert camvid_backgrounds(None) is None and camvid_backgrounds(tmp_path / "absent") is None


@pytest.mark.camvid
def test_camvid_frames_give_grey_backgrounds(camvid_root: Path) -> None:
    frames = camvid_backgrounds(camvid_root, limit=2)
    assert frames is not None and frames.shape == (2, 1, 180, 240) and 0 <= frames.min() < frames.max() <= 1


def test_image_folders_load_and_refuse_mixed_sizes(tmp_path: Path) -> None:
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for index in range(2):
            Image.fromarray(np.full((12, 10), 40 * index, np.uint8)).save(tmp_path / name / f"{index}.png")
    images, labels, classes = image_folder(tmp_path)
    assert images.shape == (4, 1, 12, 10) and labels.tolist() == [0, 0, 1, 1] and classes == ["cat", "dog"]
    assert load_digit_data(f"folder:{tmp_path}")[2] == ["cat", "dog"]
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "dog" / "small.png")
    with pytest.raises(ValueError, match="resize them to one size"):
        image_folder(tmp_path)
    with pytest.raises(ValueError, match="fonts:N"):
        load_digit_data("fonts:many")


def test_stratified_split_holds_out_every_class_and_ranks_the_training_part() -> None:
    labels = torch.arange(100) % 5
    train, test = stratified_split(labels, 0.2, seed=0)
    assert len(set(train.tolist()) | set(test.tolist())) == 100 and not set(train.tolist()) & set(
        test.tolist()
    )
    assert torch.equal(torch.bincount(labels[test]), torch.full((5,), 4))
    assert torch.equal(labels[train[:5]].sort().values, torch.arange(5))  # rank 0 of every class first
    few = per_class_subset(train, labels, 3)
    assert torch.equal(torch.bincount(labels[few]), torch.full((5,), 3)) and torch.equal(few, train[:15])


def test_the_parts_options_offer_every_digit_variant() -> None:
    from pixelwise.data.digits import VARIANTS
    from pixelwise.methods.mixtures.config import VARIANTS as OFFERED  # torch-free copy for `parts --help`

    assert OFFERED == VARIANTS
