"""Automatic colorization as a pretext task (Larsson thesis Ch. 2-3): targets, losses and decoders.

The network sees lightness L = (R+G+B)/3 and predicts, per pixel, a distribution over colour bins:
hue and chroma marginals (32 uniform bins on [0, 1], §2.3.2) or Lab a/b marginals (32 Gaussian-quantile bins,
sigma 25). Targets are empirical histograms in an R x R window (R = 7; R = 1 is plain log loss). L2 regression
on (a, b) is the ablation baseline (Eq. 2.1; Table 3.2: 48.0 vs 52.9 mIU as a proxy task).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

HUE_CHROMA_BINS = 32
LAB_SIGMA = 25.0
HUE_WEIGHT = 5.0  # lambda_H of Eq. 2.3: roughly 1 / E[chroma], so hue and chroma weigh the same


def uniform_centres(bins: int = HUE_CHROMA_BINS) -> torch.Tensor:
    """Centres (k + 0.5) / K of K uniform bins on [0, 1] (hue and chroma, §2.3.2)."""
    return (torch.arange(bins, dtype=torch.float32) + 0.5) / bins


def gaussian_quantile_centres(bins: int = 32, sigma: float = LAB_SIGMA) -> torch.Tensor:
    """Centres sigma * Phi^-1((k + 0.5) / K): equiprobable bins of N(0, sigma^2) for a and b (§2.3.2)."""
    quantiles = (torch.arange(bins, dtype=torch.float64) + 0.5) / bins
    return (sigma * math.sqrt(2) * torch.erfinv(2 * quantiles - 1)).float()


def nearest_bin(values: torch.Tensor, centres: torch.Tensor, circular: bool = False) -> torch.Tensor:
    """Index of the nearest centre for every value (hue distances wrap around 1)."""
    diff = (values.unsqueeze(-1) - centres.to(values)).abs()
    if circular:
        diff = torch.minimum(diff, 1 - diff)
    return diff.argmin(dim=-1)


def window_histograms(
    indices: torch.Tensor, bins: int, window: int = 7, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Empirical bin histogram of every R x R window: [N, H, W] bin indices -> [N, K, H, W] (rows sum to 1).

    ``weights`` [N, H, W] weights each pixel's vote (hue: by its chroma); a window whose weights are all 0 gets
    an all-zero histogram. Border windows are renormalised over the pixels inside the image.
    """
    votes = F.one_hot(indices, bins).permute(0, 3, 1, 2).float()
    if weights is not None:
        votes = votes * weights[:, None].float()
    if window > 1:
        votes = F.avg_pool2d(votes, window, stride=1, padding=window // 2, count_include_pad=False)
    total = votes.sum(dim=1, keepdim=True)
    return torch.where(total > 0, votes / total.clamp(min=1e-12), torch.zeros_like(votes))


@dataclass(frozen=True)
class ColorTargets:
    """What a colorization loss compares against, for pixels of one batch (dense [N, ...] maps)."""

    hue: torch.Tensor  # [N, K, H, W] window histogram of hue
    chroma: torch.Tensor  # [N, K, H, W] window histogram of chroma
    centre_chroma: torch.Tensor  # [N, H, W] the pixel's own chroma: the hue loss weight of Eq. 2.3


def hue_chroma_targets(hcl: torch.Tensor, bins: int = HUE_CHROMA_BINS, window: int = 7) -> ColorTargets:
    """Targets from an [N, 3, H, W] (hue, chroma, lightness) image (see :func:`pixelwise.data.color.rgb_to_hcl`)."""
    centres = uniform_centres(bins)
    hue_idx = nearest_bin(hcl[:, 0], centres, circular=True)
    chroma_idx = nearest_bin(hcl[:, 1], centres)
    # A grey pixel (chroma 0) has no hue: it must not vote for bin 0 ("red"); each vote weighs its own chroma.
    hue = window_histograms(hue_idx, bins, window, weights=hcl[:, 1])
    return ColorTargets(hue, window_histograms(chroma_idx, bins, window), hcl[:, 1])


def kl_divergence(target: torch.Tensor, logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """KL(y || softmax(logits)) along ``dim`` (Eq. 2.2), per sample; 0 log 0 = 0."""
    log_q = F.log_softmax(logits, dim=dim)
    log_p = torch.where(target > 0, target.clamp(min=1e-12).log(), torch.zeros_like(target))
    return (target * (log_p - log_q)).sum(dim=dim)


def hue_chroma_loss(
    hue_logits: torch.Tensor,
    chroma_logits: torch.Tensor,
    hue_target: torch.Tensor,
    chroma_target: torch.Tensor,
    centre_chroma: torch.Tensor,
    hue_weight: float = HUE_WEIGHT,
) -> torch.Tensor:
    """Eq. 2.3: KL(y_C || f_C) + lambda_H * y_C * KL(y_H || f_H), averaged over samples.

    Logits and targets have the bins on dim 1 ([S, K] for sparse points or [N, K, H, W] dense); ``centre_chroma``
    has the remaining shape. Grey pixels (y_C = 0) carry no hue loss: their hue is undefined.
    """
    chroma_term = kl_divergence(chroma_target, chroma_logits)
    hue_term = kl_divergence(hue_target, hue_logits)
    return (chroma_term + hue_weight * centre_chroma * hue_term).mean()


def lab_histogram_loss(a_logits, b_logits, a_target, b_target) -> torch.Tensor:
    """Marginal Lab histograms: KL(y_a || f_a) + KL(y_b || f_b) (Eq. 2.2 for each channel)."""
    return (kl_divergence(a_target, a_logits) + kl_divergence(b_target, b_logits)).mean()


def regression_loss(ab_pred: torch.Tensor, ab_target: torch.Tensor) -> torch.Tensor:
    """Eq. 2.1: squared L2 error of (a, b), summed over the two channels, averaged over pixels."""
    return (ab_pred - ab_target).pow(2).sum(dim=1).mean()
