"""Proposal overlays people can look at: the top-k masks drawn on the image, each in its own colour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pixelwise.methods.proposals.predict import Proposals
from pixelwise.report.images import save_png, to_uint8_image


def paint_proposals(
    image: torch.Tensor, proposals: Proposals, top: int = 10, alpha: float = 0.45
) -> np.ndarray:
    """``image`` [3, H, W] in [0, 1] with its best ``top`` proposals blended in (best painted last, on top)."""
    canvas = to_uint8_image(image).astype(np.float32)
    height, width = canvas.shape[:2]
    colours = np.random.default_rng(0).integers(40, 256, (top, 3)).astype(np.float32)
    for rank in reversed(range(min(top, len(proposals.masks)))):
        window = proposals.masks[rank]
        mask = window.mask.numpy()
        y0, x0 = max(window.top, 0), max(window.left, 0)
        y1, x1 = min(window.top + mask.shape[0], height), min(window.left + mask.shape[1], width)
        if y0 >= y1 or x0 >= x1:
            continue
        inside = mask[y0 - window.top : y1 - window.top, x0 - window.left : x1 - window.left]
        region = canvas[y0:y1, x0:x1]
        region[inside] = (1 - alpha) * region[inside] + alpha * colours[rank]
    return canvas.clip(0, 255).astype(np.uint8)


def save_proposal_overlay(image: torch.Tensor, proposals: Proposals, path: str | Path, top: int = 10) -> Path:
    return save_png(paint_proposals(image, proposals, top), path)
