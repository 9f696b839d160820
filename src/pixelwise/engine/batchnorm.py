"""Re-estimating the BatchNorm statistics of frozen layers on the training data.

Frozen layers keep their BatchNorm running statistics (the training loop holds them in eval mode). For a backbone
pretrained on these images that is right; for a random backbone the statistics are the untouched defaults (mean 0,
variance 1), so nothing normalises its activations, and a comparison "frozen pretrained vs frozen random" measures
the calibration as much as the features. One pass without gradients, the frozen BatchNorm layers alone in train
mode with a cumulative average (momentum None), gives them the statistics of the data they will see.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn
from tqdm import tqdm


@torch.no_grad()
def recalibrate_batchnorm(
    net: nn.Module,
    frozen: Sequence[nn.Module],
    batches: Iterable[tuple[torch.Tensor, object]],
    device: torch.device,
    progress: bool = True,
) -> int:
    """Reset and re-estimate the running statistics of every BatchNorm inside ``frozen`` from ``batches`` of
    images run through ``net``; returns the number of layers recalibrated. Everything else stays in eval mode."""
    layers = [
        m for module in frozen for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    if not layers:
        return 0
    was_training = net.training
    momenta = [layer.momentum for layer in layers]
    net.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over every batch of the pass
        layer.train()
    for images, _ in tqdm(batches, desc="BatchNorm recalibration", leave=False, disable=not progress):
        net(images.to(device, non_blocking=True))
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
        layer.eval()
    net.train(was_training)
    return len(layers)
