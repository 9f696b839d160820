"""Autoencoder pretraining as a training task (Larsson thesis §1.3): images without labels in, a backbone out.

``pixelwise pretrain --method autoencoder [--shortcuts layer1 layer2 layer3] [--shortcut-weight λ]``: per step the
(shortcut) autoencoder reconstructs the crop through the full path and each shortcut's truncated path; the loss is
ℓ_L + λ Σ ℓ_k (1.12) with squared L2. Validation reconstructs the val frames and reports each path's mean squared
error (standardised units: ``loss_full`` is ℓ_L, the number the "converges faster" claim compares at equal steps)
and the full path's PSNR in image units (selects ``best.safetensors``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from tqdm import tqdm

from pixelwise.engine.distributed import all_reduce_sum
from pixelwise.methods.autoencoder.model import (
    FULL,
    Autoencoder,
    AutoencoderConfig,
    reconstruction_losses,
    shortcut_objective,
)
from pixelwise.methods.pretrain import PretrainConfig, unlabelled_images
from pixelwise.models.weights import load_backbone_weights


class AutoencoderTask:
    """``pixelwise pretrain --method autoencoder``: scored by the full path's val PSNR (dB, higher is better)."""

    score_key = "psnr"

    def __init__(self, config: PretrainConfig) -> None:
        self.config = config
        self.name = "images"
        self.model_config = AutoencoderConfig(
            backbone=config.backbone,
            in_channels=3,
            output_stride=config.output_stride,
            shortcuts=tuple(config.shortcuts),
            shortcut_weight=config.shortcut_weight,
            dropout=config.ae_dropout,
        )
        Autoencoder(self.model_config)  # refuse bad --shortcuts before any data is read

    def datasets(self) -> tuple[Dataset, Dataset]:
        parts, val = unlabelled_images(self.config)
        self.name = parts[0].info.name
        return ConcatDataset(parts), val  # labels are loaded with the images but never read

    def build_model(self) -> tuple[Autoencoder, float]:
        model = Autoencoder(self.model_config)
        if self.config.weights:
            load_backbone_weights(model.backbone, self.config.weights, self.config.allow_partial)
        return model, self.config.lr

    def loss(self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        outputs, target = net(images)
        return shortcut_objective(reconstruction_losses(outputs, target), self.model_config.shortcut_weight)

    @torch.no_grad()
    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, progress: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        model.eval()
        paths = model.paths()
        sums = torch.zeros(
            len(paths) + 2, dtype=torch.float64, device=device
        )  # per path, image-unit MSE, count
        examples: list[Any] = []
        std = model.inputs.std
        for images, _ in tqdm(loader, desc="reconstruct val", leave=False, disable=not progress):
            images = images.to(device)
            outputs, target = model(images)
            losses = reconstruction_losses(outputs, target)
            count = images.shape[0]
            image_mse = (((outputs[FULL].float() - target.float()) * std) ** 2).mean()  # back to [0, 1] units
            sums[:-1] += torch.stack([*(losses[p] for p in paths), image_mse]).double() * count
            sums[-1] += count
            for index in range(count):
                if len(examples) < self.config.num_examples:
                    unscale = lambda x: (x * std[0] + model.inputs.mean[0]).clamp(0, 1).cpu()  # noqa: E731
                    examples.append([unscale(target[index])] + [unscale(outputs[p][index]) for p in paths])
        all_reduce_sum(sums)
        total = sums[-1].clamp(min=1)
        scores: dict[str, Any] = {f"loss_{p}": float(sums[i] / total) for i, p in enumerate(paths)}
        mse = float(sums[-2] / total)
        scores.update(psnr=10 * math.log10(1 / max(mse, 1e-12)), images=int(sums[-1]))
        return scores, examples

    def save_examples(self, examples: list[Any], folder: Path) -> None:
        from pixelwise.report.images import save_panel, to_uint8_image

        titles = ["input", *(f"{p} path" for p in Autoencoder.path_order(self.model_config))]
        for index, images in enumerate(examples):
            panels = [to_uint8_image(x) for x in images]
            save_panel(panels, titles[: len(panels)], Path(folder) / f"{index:02d}.png")

    def summary(self, scores: dict[str, Any]) -> str:
        paths = " ".join(f"{k[5:]} {v:.4f}" for k, v in scores.items() if k.startswith("loss_"))
        return f"val PSNR {scores['psnr']:.2f} dB; MSE per path: {paths}"

    def metadata(self) -> dict[str, Any]:
        return {"dataset": {"name": self.name}}
