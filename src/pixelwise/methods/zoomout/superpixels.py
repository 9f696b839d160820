"""Superpixels and what zoom-out needs from them (Mostajabi thesis §3.3-3.4).

SLIC (§3.4.1: ~500 per image, compactness m = 15) gives regions of nearly uniform size, so one classifier suits them
all. Each superpixel is labelled by the majority of its labelled pixels (§3.3.2); painting every superpixel with its
majority label is the "oracle", the bound the superpixel commitment puts on mean IoU (Table 3.3). The sub-scene
level looks at the bounding box of the superpixels within graph radius 3 (§3.4.1.4).
"""

from __future__ import annotations

import numpy as np
import torch


def slic_superpixels(image: torch.Tensor, count: int = 500, compactness: float = 15.0) -> torch.Tensor:
    """SLIC over-segmentation of one RGB image [3, H, W] in [0, 1]: ids 0..K-1, int64 [H, W]."""
    from skimage.segmentation import slic

    pixels = image.detach().float().cpu().permute(1, 2, 0).numpy().astype(np.float64)
    segments = slic(pixels, n_segments=count, compactness=compactness, start_label=0, convert2lab=True)
    _, contiguous = np.unique(segments, return_inverse=True)  # SLIC can skip ids after enforcing connectivity
    return torch.from_numpy(contiguous.reshape(segments.shape).astype(np.int64))


def rectangle_superpixels(height: int, width: int, count: int = 500) -> torch.Tensor:
    """An equal number of rectangles instead of SLIC regions (Table 3.3's comparison), int64 [H, W]."""
    rows = max(1, round((count * height / width) ** 0.5))
    cols = max(1, round(count / rows))
    row = torch.arange(height) * rows // height
    col = torch.arange(width) * cols // width
    return row[:, None] * cols + col[None, :]


def majority_labels(
    segments: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int
) -> torch.Tensor:
    """Majority label of each superpixel's labelled pixels [K]; ``ignore_index`` where none is labelled."""
    count = int(segments.max()) + 1
    labelled = labels != ignore_index
    votes = torch.zeros(count * num_classes, dtype=torch.long, device=segments.device)
    votes.index_add_(0, (segments[labelled] * num_classes + labels[labelled]).flatten(), torch.ones_like(
        labels[labelled].flatten()
    ))  # fmt: skip
    votes = votes.view(count, num_classes)
    majority = votes.argmax(dim=1)
    return majority.masked_fill(votes.sum(dim=1) == 0, ignore_index)


def region_boxes(segments: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """[K, 4] (top, left, bottom, right), inclusive: the bounding box of the superpixels within ``radius`` steps
    of each superpixel in the region adjacency graph (§3.4.1.4: neighbours, theirs, and theirs)."""
    count = int(segments.max()) + 1
    adjacent = torch.eye(count, dtype=torch.bool, device=segments.device)
    for a, b in ((segments[1:], segments[:-1]), (segments[:, 1:], segments[:, :-1])):
        touching = a != b
        adjacent[a[touching], b[touching]] = True
        adjacent[b[touching], a[touching]] = True
    reach = adjacent.clone()
    for _ in range(radius - 1):
        reach = (reach.float() @ adjacent.float()) > 0
    rows = torch.arange(segments.shape[0], device=segments.device)[:, None].expand_as(segments).flatten()
    cols = torch.arange(segments.shape[1], device=segments.device)[None, :].expand_as(segments).flatten()
    flat = segments.flatten()
    big = segments.numel()
    own = torch.stack(
        [
            torch.full((count,), big, device=segments.device).scatter_reduce(0, flat, rows, "amin"),
            torch.full((count,), big, device=segments.device).scatter_reduce(0, flat, cols, "amin"),
            torch.full((count,), -1, device=segments.device).scatter_reduce(0, flat, rows, "amax"),
            torch.full((count,), -1, device=segments.device).scatter_reduce(0, flat, cols, "amax"),
        ],
        dim=1,
    )  # each superpixel's own box
    low = torch.where(reach[..., None], own[None, :, :2], big).amin(dim=1)
    high = torch.where(reach[..., None], own[None, :, 2:], -1).amax(dim=1)
    return torch.cat([low, high], dim=1)
