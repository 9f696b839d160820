"""Colorization building blocks (Larsson §2.3): colour spaces, histogram targets, losses, decoders, metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import color

from pixelwise.data.color import hcl_to_rgb, lab_to_rgb, lightness, rgb_to_hcl, rgb_to_lab
from pixelwise.methods import colorization as col


@pytest.fixture
def rgb() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).random((2, 3, 6, 7)))


def test_lab_matches_scikit_image_and_round_trips(rgb: torch.Tensor) -> None:
    reference = np.stack([color.rgb2lab(im.transpose(1, 2, 0)).transpose(2, 0, 1) for im in rgb.numpy()])
    np.testing.assert_allclose(rgb_to_lab(rgb).numpy(), reference, atol=0.01)
    torch.testing.assert_close(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-5, rtol=0)


def test_hue_chroma_lightness_bicone(rgb: torch.Tensor) -> None:
    hcl = rgb_to_hcl(rgb)
    hsv = np.stack([color.rgb2hsv(im.transpose(1, 2, 0)).transpose(2, 0, 1) for im in rgb.numpy()])
    np.testing.assert_allclose(hcl[:, 0].numpy(), hsv[:, 0], atol=1e-9)
    torch.testing.assert_close(hcl[:, 1], rgb.amax(1) - rgb.amin(1))
    torch.testing.assert_close(hcl[:, 2:], lightness(rgb))
    torch.testing.assert_close(hcl_to_rgb(hcl), rgb)
    grey = torch.full((1, 3, 2, 2), 0.4, dtype=torch.float64)
    assert rgb_to_hcl(grey)[:, :2].abs().max() == 0  # hue 0 where chroma is 0


def test_bins_and_window_histograms() -> None:
    centres = col.gaussian_quantile_centres(32)
    torch.testing.assert_close(centres, -centres.flip(0))  # symmetric around 0
    assert centres[16] == pytest.approx(25 * 0.0392, abs=0.01)  # Phi^-1(16.5/32) * sigma
    indices = torch.randint(0, 8, (2, 9, 9))
    hist = col.window_histograms(indices, 8, window=7)
    torch.testing.assert_close(hist.sum(1), torch.ones(2, 9, 9))
    assert torch.equal(col.window_histograms(indices, 8, window=1).argmax(1), indices)
    assert col.nearest_bin(torch.tensor([0.99]), col.uniform_centres(32), circular=True).item() == 31
    assert col.nearest_bin(torch.tensor([0.001]), col.uniform_centres(32), circular=True).item() == 0


def test_kl_loss_is_zero_at_the_target_and_hue_ignored_for_grey_pixels() -> None:
    target = torch.softmax(torch.randn(5, 32), dim=1)
    assert col.kl_divergence(target, target.log()).abs().max() < 1e-6
    wrong = torch.randn(5, 32)
    grey = torch.zeros(5)
    loss_grey = col.hue_chroma_loss(wrong, target.log(), target, target, grey)
    assert loss_grey.abs() < 1e-6  # chroma right, hue wrong but weighted by chroma 0
    assert col.hue_chroma_loss(wrong, target.log(), target, target, torch.ones(5)) > 0.1


def test_decoders() -> None:
    centres = col.uniform_centres(4)  # 0.125 0.375 0.625 0.875
    peaked = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    assert col.mode(peaked, centres).item() == pytest.approx(0.375)
    assert col.expectation(peaked, centres).item() == pytest.approx(0.375)
    assert col.median(torch.tensor([[0.25, 0.25, 0.25, 0.25]]), centres).item() == pytest.approx(0.375)
    # Circular expectation: equal mass just below 1 and just above 0 averages to hue ~0, not 0.5.
    wrap = torch.zeros(1, 32)
    wrap[0, [0, 31]] = 0.5
    hue, z_abs = col.circular_hue(wrap)
    assert min(hue.item(), 1 - hue.item()) < 1e-6
    assert z_abs.item() == pytest.approx(math.cos(math.pi / 32) / 32, rel=1e-5)
    # Chromatic fading uses min (Eq. 2.5's max is a misprint): confident hue keeps chroma, diffuse hue fades it.
    assert col.chromatic_fading(torch.tensor(0.5), torch.tensor(1 / 32)).item() == pytest.approx(0.5)
    assert col.chromatic_fading(torch.tensor(0.5), torch.tensor(0.003)).item() == pytest.approx(0.05)


def test_colorization_metrics(rgb: torch.Tensor) -> None:
    rgb = rgb.float()
    assert col.ab_rmse(rgb, rgb).item() == pytest.approx(0.0, abs=1e-4)
    grey = lightness(rgb).expand_as(rgb)
    assert col.ab_rmse(grey, rgb) > 0.1
    assert torch.isfinite(col.psnr(grey, rgb)).all() and (col.psnr(rgb, rgb) > 90).all()
