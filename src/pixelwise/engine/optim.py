"""Optimiser, learning-rate schedule and class weights: the recipe pieces of the training loop."""

from __future__ import annotations

import torch
from torch import nn

from pixelwise.engine.config import RunConfig


def parameter_groups(model: nn.Module, config: RunConfig) -> list[dict]:
    """Weights get weight decay; biases and norm parameters get none and ``bias_lr_mult`` x lr (FCN's recipe)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    return [
        {"params": decay, "weight_decay": config.weight_decay, "lr_mult": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_mult": config.bias_lr_mult},
    ]


def build_optimizer(model: nn.Module, config: RunConfig, lr: float) -> torch.optim.Optimizer:
    groups = parameter_groups(model, config)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=lr)


def learning_rate(
    config: RunConfig,
    base_lr: float,
    iteration: int,
    total: int,
    iters_per_epoch: int,
    minutes_trained: float = 0.0,
) -> float:
    """The lr at ``iteration`` (0-based) of ``total``: warm-up, then poly / poly-time / step / constant."""
    if config.warmup_iters and iteration < config.warmup_iters:
        return base_lr * (iteration + 1) / config.warmup_iters
    if config.schedule == "poly":
        return base_lr * (1 - min(iteration, total - 1) / total) ** config.poly_power
    if config.schedule == "poly-time":  # the budget is minutes, not steps: the lr reaches ~0 as time runs out
        progress = min(minutes_trained / require_time_limit(config), 1 - 1 / total)
        return base_lr * (1 - progress) ** config.poly_power
    if config.schedule == "step":
        epoch = iteration // max(1, iters_per_epoch)
        return base_lr * 0.1 ** sum(epoch >= e for e in config.step_epochs)
    return base_lr


def require_time_limit(config: RunConfig) -> float:
    if not config.time_limit or config.time_limit <= 0:
        raise ValueError(
            "--schedule poly-time anneals over --time-limit MINUTES: set a positive --time-limit"
        )
    return config.time_limit


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)


def class_weights(pixel_counts: torch.Tensor, mode: str) -> torch.Tensor | None:
    """Loss weights from per-class pixel counts of the training labels: [C] in total, or [N, C] per image.

    median-frequency (Eigen & Fergus; SegNet's CamVid weights): w_c = median(f) / f_c, with f_c the pixels of
    class c over the pixels of the images where c is present (per-image counts needed; with totals only, the
    global frequency stands in for it); inverse-frequency (Mostajabi zoom-out §3.2): w_c proportional to 1 / f_c
    with the global frequency, normalised to mean 1. Classes never seen get weight 0 (they cannot be learnt and
    must not blow up the loss).
    """
    if mode == "none":
        return None
    counts = pixel_counts.double().reshape(-1, pixel_counts.shape[-1])  # [N, C]
    total = counts.sum(0)
    present = total > 0
    weights = torch.zeros_like(total)
    if mode == "median-frequency":
        pixels_of_images_with = ((counts > 0).double() * counts.sum(1, keepdim=True)).sum(0)
        freq = total / pixels_of_images_with.clamp(min=1)
        weights[present] = freq[present].median() / freq[present]
    elif mode == "inverse-frequency":
        freq = total / total.sum().clamp(min=1)
        weights[present] = 1 / freq[present]
        weights[present] /= weights[present].mean()
    else:
        raise ValueError(f"unknown class weighting {mode!r}")
    return weights.float()


def total_iterations(epochs: int, iters_per_epoch: int) -> int:
    return max(1, epochs * iters_per_epoch)
