"""The evaluation loop: one confusion matrix (and boundary counts) accumulated over the split, all-reduced.

Labels are scored at their own resolution; the image may be rescaled for inference (``scales``) and the
prediction is upsampled back, so numbers are comparable across training resolutions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from pixelwise.engine.distributed import all_reduce_sum
from pixelwise.engine.inference import predict_probabilities
from pixelwise.metrics import BoundaryAccuracy, confusion_matrix, segmentation_scores


@dataclass
class EvalOptions:
    scales: Sequence[float] = (1.0,)
    flip: bool = False
    window: Sequence[int] | None = None
    boundary_widths: Sequence[int] = (2, 5, 10)
    progress: bool = True
    examples: int = 0  # return this many (image, prediction, label) triples for overlays


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    num_classes: int,
    device: torch.device,
    ignore_index: int = 255,
    options: EvalOptions | None = None,
    class_names: Sequence[str] | None = None,
) -> tuple[dict, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """Score ``model`` on ``loader``; returns (scores, confusion matrix, example triples). Shards are all-reduced."""
    options = options or EvalOptions()
    model.eval()
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    examples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    boundary = BoundaryAccuracy(num_classes, options.boundary_widths, ignore_index)
    boundary.reset(
        device
    )  # on the device now: a rank whose shard is empty still all-reduces (nccl needs CUDA)
    for images, targets in tqdm(loader, desc="eval", leave=False, disable=not options.progress):
        images = images.to(device, non_blocking=True)
        labels = targets["seg"].to(device, non_blocking=True)
        probs = predict_probabilities(
            model, images, options.scales, options.flip, options.window, labels.shape[-2:]
        )
        preds = probs.argmax(dim=1)
        cm += confusion_matrix(preds, labels, num_classes, ignore_index)
        boundary.update(preds, labels)
        if len(examples) < options.examples:
            # Fused inputs (RGB + extra channels, Long §3.4) are shown by their RGB part.
            examples.extend(zip(images[:, :3].cpu(), preds.cpu(), labels.cpu()))
    all_reduce_sum(cm)
    for state in boundary.state_tensors():
        all_reduce_sum(state)
    scores = segmentation_scores(cm.cpu(), class_names)
    scores.update(boundary.compute())
    return scores, cm.cpu(), examples[: options.examples]
