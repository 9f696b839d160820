"""Ground-truth histogram transfer (Larsson §2.3.4): adapt a colorization to a known colour histogram.

The *source* is the prediction, the *target* the ground-truth image (only its global colour histogram is used).
(Q) lightness-normalised quantile matching works on any colorization; (E) energy minimisation (Eq. 2.6) adjusts
the predicted per-pixel distributions with one global bias per bin, so it needs the histogram predictions.
"""

from __future__ import annotations

import torch


def quantile_match(source_rgb: torch.Tensor, target_rgb: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """(Q): divide RGB by lightness, quantile-match each channel's marginal to the target's, multiply back.

    ``source_rgb`` [3, H, W] and ``target_rgb`` [3, H', W'] in [0, 1]; returns [3, H, W] clipped to [0, 1].
    """
    source_light = source_rgb.mean(dim=0, keepdim=True).clamp(min=eps)
    source = (source_rgb / source_light).flatten(1)
    target = (target_rgb / target_rgb.mean(dim=0, keepdim=True).clamp(min=eps)).flatten(1)
    matched = torch.empty_like(source)
    levels = torch.linspace(0, 1, source.shape[1], device=source.device)
    for channel in range(3):
        # the k-th smallest source value takes the target's value at the same quantile
        target_sorted = target[channel].sort().values
        positions = (levels * (target_sorted.numel() - 1)).round().long()
        matched[channel, source[channel].argsort()] = target_sorted[positions]
    return (matched.view_as(source_rgb) * source_light).clamp(0, 1)


def symmetric_chi2(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Symmetric chi-squared distance sum_k (p_k - q_k)^2 / (p_k + q_k) between two histograms."""
    return ((p - q) ** 2 / (p + q + eps)).sum()


def energy_transfer(
    logits: torch.Tensor, target: torch.Tensor, weight: float = 1.0, steps: int = 200, lr: float = 0.1
) -> torch.Tensor:
    """(E), Eq. 2.6: posteriors y* = softmax(log y + b) minimising mean KL(y* || y) + lambda chi2(<y*>, t).

    ``logits`` [K, ...] are one image's per-pixel predictions for one channel (bins first), ``target`` [K] the
    ground-truth histogram. Returns the posterior logits (log y + b) in the shape of ``logits``. Run once per
    channel for marginal histograms (hue and chroma, or a and b).
    """
    log_probs = logits.detach().float().log_softmax(dim=0).flatten(1)  # [K, N]
    target = target.float() / target.sum().clamp(min=1e-12)
    bias = torch.zeros(log_probs.shape[0], 1, device=log_probs.device, requires_grad=True)
    optimizer = torch.optim.Adam([bias], lr=lr)
    for _ in range(steps):
        posterior = (log_probs + bias).log_softmax(dim=0)
        kl = (posterior.exp() * (posterior - log_probs)).sum(dim=0).mean()
        energy = kl + weight * symmetric_chi2(posterior.exp().mean(dim=1), target)
        optimizer.zero_grad()
        energy.backward()
        optimizer.step()
    return (log_probs + bias.detach()).view_as(logits)


def global_histograms(rgb: torch.Tensor, target: str, bins: int) -> dict[str, torch.Tensor]:
    """The ground truth's global marginal histograms for ``target``'s channels, from one image [3, H, W].

    Hue is weighted by chroma, as in the loss (Eq. 2.3): the hue of a grey pixel is undefined.
    """
    from pixelwise.data.color import rgb_to_hcl, rgb_to_lab
    from pixelwise.methods.colorization.losses import gaussian_quantile_centres, nearest_bin, uniform_centres

    if target == "hue-chroma":
        hue, chroma, _ = rgb_to_hcl(rgb).flatten(1)
        centres = uniform_centres(bins).to(rgb)
        return {
            "hue": torch.bincount(nearest_bin(hue, centres, circular=True), chroma, minlength=bins),
            "chroma": torch.bincount(nearest_bin(chroma, centres), minlength=bins).float(),
        }
    if target == "lab":
        centres = gaussian_quantile_centres(bins).to(rgb)
        ab = rgb_to_lab(rgb)[1:].flatten(1)
        return {
            name: torch.bincount(nearest_bin(ab[i], centres), minlength=bins).float()
            for i, name in enumerate("ab")
        }
    raise ValueError(f"energy histogram transfer needs histogram predictions, not target {target!r}")


def energy_adjuster(histograms: dict[str, torch.Tensor], weight: float = 1.0):
    """A function that replaces every channel's dense logits [1, K, h, w] by its Eq. 2.6 posterior."""

    def adjust(outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            name: energy_transfer(value[0], histograms[name], weight)[None] for name, value in outputs.items()
        }

    return adjust
