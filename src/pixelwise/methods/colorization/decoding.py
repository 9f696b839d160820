"""Colorization inference (Larsson §2.3.3): from predicted histograms to one colour per pixel, and the metrics.

Hue is decoded by its circular expectation (Eq. 2.4), chroma by the median, and chroma fades where the hue
distribution is spread out (chromatic fading, Eq. 2.5 with min). Lab histograms decode by expectation.
"""

from __future__ import annotations

import math

import torch

from pixelwise.methods.colorization.losses import uniform_centres


def expectation(probs: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Sum of bin centres weighted by the histogram (bins on dim 1)."""
    return torch.einsum("nk...,k->n...", probs, centres.to(probs))


def median(probs: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Value where the cumulative histogram crosses 1/2, linearly interpolated between bin centres (§2.3.3)."""
    cdf = probs.cumsum(dim=1)
    k = (cdf < 0.5).sum(dim=1, keepdim=True).clamp(max=probs.shape[1] - 1)
    upper = cdf.gather(1, k)
    lower = torch.where(k > 0, cdf.gather(1, (k - 1).clamp(min=0)), torch.zeros_like(upper))
    t = ((0.5 - lower) / (upper - lower).clamp(min=1e-12)).clamp(0, 1)
    c = centres.to(probs)
    below = torch.where(
        k > 0, c[(k - 1).clamp(min=0)], c[0] - (c[1] - c[0]) / 2
    )  # left edge of the first bin
    return (below + t * (c[k] - below)).squeeze(1)


def mode(probs: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Centre of the most probable bin."""
    return centres.to(probs)[probs.argmax(dim=1)]


def sample(
    probs: torch.Tensor, centres: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One draw per pixel from the histogram (noisy where the histogram has high entropy)."""
    flat = probs.movedim(1, -1).reshape(-1, probs.shape[1])
    draws = torch.multinomial(flat, 1, generator=generator).view(probs.shape[0], *probs.shape[2:])
    return centres.to(probs)[draws]


def circular_hue(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 2.4: z = (1/K) sum_k p_k exp(i theta_k); returns (hue = arg z in [0, 1), |z|)."""
    bins = probs.shape[1]
    theta = 2 * math.pi * uniform_centres(bins).to(probs)
    real = torch.einsum("nk...,k->n...", probs, theta.cos()) / bins
    imag = torch.einsum("nk...,k->n...", probs, theta.sin()) / bins
    hue = (torch.atan2(imag, real) / (2 * math.pi)) % 1.0
    return hue, torch.sqrt(real**2 + imag**2)


def chromatic_fading(chroma: torch.Tensor, z_abs: torch.Tensor, eta: float = 0.03) -> torch.Tensor:
    """C_faded = min(|z| / eta, 1) * C. Eq. 2.5 prints max, a misprint: max would never fade (spec errata)."""
    return (z_abs / eta).clamp(max=1.0) * chroma


def hue_uncertainty(hue_probs: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """Uncertainty map of Fig. 2.10: entropy of the predicted hue times the chroma."""
    entropy = -(hue_probs * hue_probs.clamp(min=1e-12).log()).sum(dim=1)
    return entropy * chroma


# ----------------------------------------------------------------------------------------------- metrics
def ab_rmse(pred_rgb: torch.Tensor, true_rgb: torch.Tensor) -> torch.Tensor:
    """Per-pixel RMSE in the (a, b) plane of Lab, averaged over pixels, scaled like the thesis' Table 2.2.

    The thesis reports 0.343 for no colorization on ImageNet, i.e. ab in units of 100 (a/b / 100).
    """
    from pixelwise.data.color import rgb_to_lab

    diff = (rgb_to_lab(pred_rgb)[:, 1:] - rgb_to_lab(true_rgb)[:, 1:]) / 100
    return diff.pow(2).sum(dim=1).sqrt().mean()


def psnr(pred_rgb: torch.Tensor, true_rgb: torch.Tensor) -> torch.Tensor:
    """PSNR in RGB per image ([N] dB, peak 1); average these arithmetically over a split (§2.4)."""
    mse = (pred_rgb - true_rgb).pow(2).flatten(1).mean(dim=1).clamp(min=1e-10)
    return 10 * torch.log10(1 / mse)


# ----------------------------------------------------------------------------------------------- colour planes
# Every target decodes to a 2-channel colour plane at 1/4 resolution: the chroma vector (C cos 2piH, C sin 2piH)
# for hue/chroma, (a, b) for Lab. Planes are upsampled bilinearly and recombined with the full-resolution
# lightness (§2.3.3). Upsampling the chroma *vector* rather than hue keeps the hue wrap-around (0 = 1) smooth.
def hue_chroma_plane(
    hue_logits: torch.Tensor, chroma_logits: torch.Tensor, eta: float = 0.03
) -> torch.Tensor:
    """Circular-expectation hue, median chroma, chromatic fading -> chroma vector [N, 2, h, w]."""
    hue, z_abs = circular_hue(hue_logits.softmax(dim=1))
    chroma = chromatic_fading(
        median(chroma_logits.softmax(dim=1), uniform_centres(chroma_logits.shape[1])), z_abs, eta
    )
    angle = 2 * math.pi * hue
    return torch.stack([chroma * angle.cos(), chroma * angle.sin()], dim=1)


def lab_plane(a_logits: torch.Tensor, b_logits: torch.Tensor) -> torch.Tensor:
    """Expectation of the a and b histograms (Gaussian-quantile bins) -> [N, 2, h, w] in Lab units."""
    from pixelwise.methods.colorization.losses import gaussian_quantile_centres

    centres = gaussian_quantile_centres(a_logits.shape[1])
    return torch.stack(
        [expectation(a_logits.softmax(dim=1), centres), expectation(b_logits.softmax(dim=1), centres)], dim=1
    )


def rgb_from_plane(plane: torch.Tensor, grey: torch.Tensor, target: str) -> torch.Tensor:
    """Recombine a full-resolution colour plane with the grey input [N, 1, H, W] (L = (R+G+B)/3) -> RGB."""
    from pixelwise.data.color import hcl_to_rgb, lab_to_rgb, rgb_to_lab

    if target == "hue-chroma":
        hue = torch.atan2(plane[:, 1], plane[:, 0]) / (2 * math.pi) % 1.0
        chroma = plane.norm(dim=1)
        return hcl_to_rgb(torch.stack([hue, chroma, grey[:, 0]], dim=1))
    lab_light = rgb_to_lab(grey.expand(-1, 3, -1, -1))[:, :1]  # L* of the grey input (a = b = 0 there)
    return lab_to_rgb(torch.cat([lab_light, plane], dim=1))
