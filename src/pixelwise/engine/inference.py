"""Dense inference shared by eval, predict and export: rescaling, flip / multi-scale TTA, sliding windows.

All functions take images in [0, 1] of shape [N, 3, H, W] and return class probabilities at the input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return model(images)["seg"].float().softmax(dim=1)


def sliding_window(
    model: nn.Module, images: torch.Tensor, window: Sequence[int], overlap: float = 1 / 3
) -> torch.Tensor:
    """Average softmax over overlapping ``window``-sized tiles (MMSeg's slide inference) for large images."""
    height, width = images.shape[-2:]
    win_h, win_w = min(window[0], height), min(window[1], width)
    step_h, step_w = max(1, int(win_h * (1 - overlap))), max(1, int(win_w * (1 - overlap)))
    tops = list(range(0, max(height - win_h, 0) + 1, step_h))
    lefts = list(range(0, max(width - win_w, 0) + 1, step_w))
    if tops[-1] + win_h < height:
        tops.append(height - win_h)
    if lefts[-1] + win_w < width:
        lefts.append(width - win_w)
    total: torch.Tensor | None = None
    count = images.new_zeros(1, 1, height, width)
    for top in tops:
        for left in lefts:
            tile = _probabilities(model, images[..., top : top + win_h, left : left + win_w])
            if total is None:
                total = images.new_zeros(images.shape[0], tile.shape[1], height, width)
            total[..., top : top + win_h, left : left + win_w] += tile
            count[..., top : top + win_h, left : left + win_w] += 1
    assert total is not None
    return total / count


def rescale(images: torch.Tensor, scale: float) -> torch.Tensor:
    """Images resized by ``scale`` for inference (bilinear, antialiased when shrinking): every validation path
    sees the same pixels as ``predict_probabilities``."""
    if scale == 1:
        return images
    # The kernel follows the output/input size ratio (not the nominal scale), as ONNX Resize does: an exported
    # model then sees the same pixels at odd sizes too (the two differ by up to 0.25 otherwise).
    return F.interpolate(
        images, scale_factor=scale, mode="bilinear", antialias=True, recompute_scale_factor=True
    )


@torch.no_grad()
def predict_probabilities(
    model: nn.Module,
    images: torch.Tensor,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    window: Sequence[int] | None = None,
    output_size: Sequence[int] | None = None,
) -> torch.Tensor:
    """Softmax averaged over ``scales`` (and horizontal flips), upsampled bilinearly to ``output_size``."""
    size = tuple(output_size or images.shape[-2:])
    total = None
    for scale in scales:
        scaled = rescale(images, scale)
        views = [scaled, scaled.flip(-1)] if flip else [scaled]
        for index, view in enumerate(views):
            probs = sliding_window(model, view, window) if window else _probabilities(model, view)
            if index == 1:
                probs = probs.flip(-1)
            probs = F.interpolate(probs, size=size, mode="bilinear", align_corners=False)
            total = probs if total is None else total + probs
    assert total is not None
    return total / (len(scales) * (2 if flip else 1))
