"""Colorization pretraining as a training task (Larsson Ch. 3): images without labels in, a backbone out.

Per step: S random pixels per image (§2.3.6), their target histograms from the image's own colours in an R x R
window (§2.3.2), the KL loss of Eq. 2.3 (or Lab KL, or L2 regression as the ablation). Validation colorizes the
val frames and reports PSNR against the grey-image baseline and RMSE in ab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from tqdm import tqdm

from pixelwise.data.color import rgb_to_hcl, rgb_to_lab
from pixelwise.engine.distributed import all_reduce_sum
from pixelwise.methods.colorization.decoding import ab_rmse, psnr
from pixelwise.methods.colorization.losses import (
    gaussian_quantile_centres,
    hue_chroma_loss,
    kl_divergence,
    nearest_bin,
    regression_loss,
    uniform_centres,
)
from pixelwise.methods.colorization.model import ColorizationModel, ColorizerConfig
from pixelwise.methods.pretrain import PretrainConfig, unlabelled_images
from pixelwise.models.heads.hypercolumn import random_points
from pixelwise.models.weights import load_backbone_weights


def gather_points(maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Values of dense maps [N, C, H, W] (or [N, H, W]) at points [N, S, 2] -> [N, S, C] (or [N, S])."""
    squeeze = maps.dim() == 3
    if squeeze:
        maps = maps.unsqueeze(1)
    index = (points[..., 0] * maps.shape[-1] + points[..., 1]).unsqueeze(1).expand(-1, maps.shape[1], -1)
    values = maps.flatten(2).gather(2, index).transpose(1, 2)
    return values[..., 0] if squeeze else values


def point_histograms(
    indices: torch.Tensor, points: torch.Tensor, bins: int, window: int, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Bin histograms [N, S, K] of the R x R windows of ``indices`` [N, H, W] centred on ``points`` [N, S, 2].

    Equals :func:`window_histograms` (with the same ``weights`` [N, H, W] per pixel vote) followed by
    :func:`gather_points` (pixels outside the image are left out, like ``count_include_pad=False``; a window
    whose weights are all 0 gets an all-zero histogram) but only touches S * R^2 pixels per image, not the whole
    dense map: the training loss needs the targets at the sparse points only.
    """
    height, width = indices.shape[-2:]
    offsets = torch.arange(window, device=indices.device) - window // 2
    rows = points[..., 0, None, None] + offsets.view(-1, 1)  # [N, S, R, 1]
    cols = points[..., 1, None, None] + offsets.view(1, -1)  # [N, S, 1, R]
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)  # [N, S, R, R]
    flat = rows.clamp(0, height - 1) * width + cols.clamp(0, width - 1)
    values = indices.flatten(1).gather(1, flat.flatten(1)).view(flat.shape)
    vote = inside.float()
    if weights is not None:  # e.g. hue votes weighted by each pixel's own chroma (a grey pixel has no hue)
        vote = vote * weights.float().flatten(1).gather(1, flat.flatten(1)).view(flat.shape)
    counts = (F.one_hot(values, bins) * vote.unsqueeze(-1)).sum(dim=(2, 3))
    total = counts.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, counts / total.clamp(min=1e-12), torch.zeros_like(counts))


def sparse_colour_loss(
    outputs: dict[str, torch.Tensor], images: torch.Tensor, points: torch.Tensor, target: str, window: int
) -> torch.Tensor:
    """The colorization loss at sparse points; ``outputs`` are the head's [N, S, K] logits at ``points``."""
    flat = {k: v.float().flatten(0, 1) for k, v in outputs.items()}  # [N*S, K]: bins on dim 1
    bins = next(iter(flat.values())).shape[1]
    if target == "hue-chroma":
        hcl = rgb_to_hcl(images)
        centres = uniform_centres(bins).to(images.device)
        # Eq. 2.3 with grey pixels left out of the hue votes: each votes with its own chroma (spec colorization.md).
        hue_bins = nearest_bin(hcl[:, 0], centres, circular=True)
        hue = point_histograms(hue_bins, points, bins, window, weights=hcl[:, 1])
        chroma = point_histograms(nearest_bin(hcl[:, 1], centres), points, bins, window)
        weight = gather_points(hcl[:, 1], points).flatten()
        return hue_chroma_loss(flat["hue"], flat["chroma"], hue.flatten(0, 1), chroma.flatten(0, 1), weight)
    ab = rgb_to_lab(images)[:, 1:]
    if target == "l2":
        return regression_loss(flat["ab"], gather_points(ab / 100, points).flatten(0, 1))
    centres = gaussian_quantile_centres(bins).to(images.device)
    loss = images.new_zeros(())
    for channel, name in enumerate(("a", "b")):
        histogram = point_histograms(nearest_bin(ab[:, channel], centres), points, bins, window)
        loss = loss + kl_divergence(histogram.flatten(0, 1), flat[name]).mean()
    return loss


class ColorizationTask:
    """``pixelwise pretrain --method colorization``: scored by val PSNR (dB, higher is better)."""

    score_key = "psnr"

    def __init__(self, config: PretrainConfig) -> None:
        self.config = config
        self.name = "images"

    def datasets(self) -> tuple[Dataset, Dataset]:
        parts, val = unlabelled_images(self.config)
        self.name = parts[0].info.name
        return ConcatDataset(parts), val  # labels are loaded with the images but never read

    def build_model(self) -> tuple[ColorizationModel, float]:
        config = self.config
        model = ColorizationModel(
            ColorizerConfig(
                config.backbone, config.output_stride, config.loss, tuple(config.taps), config.hidden
            )
        )
        if config.weights:
            load_backbone_weights(model.backbone, config.weights, config.allow_partial)
        return model, config.lr

    def loss(self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        batch, _, height, width = images.shape
        points = random_points(batch, self.config.samples, (height, width)).to(images.device)
        outputs = net(images, points=points)
        return sparse_colour_loss(outputs, images, points, self.config.loss, self.config.window)

    @torch.no_grad()
    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, progress: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        model.eval()
        sums = torch.zeros(4, dtype=torch.float64, device=device)  # PSNR, grey PSNR, RMSE ab, images
        examples = []
        for images, _ in tqdm(loader, desc="colorize val", leave=False, disable=not progress):
            images = images.to(device)
            colour = model.colorize(images, self.config.eval_scale)
            grey = images.mean(dim=1, keepdim=True).expand_as(images)
            for pred, grey_image, truth in zip(colour, grey, images):
                pair = (pred[None], truth[None])
                sums += torch.stack([psnr(*pair)[0], psnr(grey_image[None], truth[None])[0], ab_rmse(*pair),
                                     torch.ones((), device=device)]).double()  # fmt: skip
                if len(examples) < self.config.num_examples:
                    examples.append((pred.cpu(), truth.cpu()))
        all_reduce_sum(sums)
        count = sums[3].clamp(min=1)
        scores = {
            "psnr": float(sums[0] / count),
            "grey_psnr": float(sums[1] / count),
            "ab_rmse": float(sums[2] / count),
            "images": int(sums[3]),
        }
        return scores, examples

    def save_examples(self, examples: list[Any], folder: Path) -> None:
        from pixelwise.report.images import save_colorization_panel

        for index, (pred, truth) in enumerate(examples):
            save_colorization_panel(pred, truth, Path(folder) / f"{index:02d}.png")

    def summary(self, scores: dict[str, Any]) -> str:
        return (
            f"val PSNR {scores['psnr']:.2f} dB (grey baseline {scores['grey_psnr']:.2f} dB), "
            f"RMSE ab {scores['ab_rmse']:.4f}"
        )

    def metadata(self) -> dict[str, Any]:
        return {"dataset": {"name": self.name}}
