"""Example panels (image | prediction | ground truth) saved at every evaluation (peers-and-users #13)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixelwise.data import DatasetInfo
from pixelwise.report.images import add_legend, overlay, save_panel, save_png


def save_examples(
    examples: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], info: DatasetInfo, folder: str | Path
) -> list[Path]:
    """One PNG per (image [3,H,W], prediction [H,W], label [H,W]) triple; returns the paths written."""
    paths = []
    for index, (image, pred, label) in enumerate(examples):
        if image.shape[-2:] != label.shape[-2:]:  # inference ran at another scale: show it at label size
            image = torch.nn.functional.interpolate(image[None], size=label.shape[-2:], mode="bilinear")[0]
        panels = [
            (image.clamp(0, 1).permute(1, 2, 0).mul(255).round().byte().numpy()),
            overlay(image, pred, info.palette, 0.6, info.ignore_index),
            overlay(image, label, info.palette, 0.6, info.ignore_index),
        ]
        titles = ["image", "prediction", "ground truth"]
        panel = save_panel(panels, titles, Path(folder) / f"{index:02d}.png")
        # The legend names every class drawn in either map, under the whole panel.
        legend = add_legend(np.asarray(Image.open(panel)), info.class_names, info.palette, [pred, label],
                            info.ignore_index)  # fmt: skip
        paths.append(save_png(legend, panel))
    return paths
