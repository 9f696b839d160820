"""Backward warping by a dense pixel flow (thesis §2.2: "we warp target to source").

The warped image at source pixel x is the target read at x + u(x) (u from :meth:`Flow.dense`). Images are read
bilinearly with the edge replicated; label maps are read at the nearest pixel, and pixels whose x + u(x) leaves the
target get ``ignore_index``. Coordinates are pixel centres (pixel p's centre is p, as in ``Grid``), so sampling is
done here in pixel units rather than through ``grid_sample``'s normalised coordinates: an identity flow then reads
every pixel with weight exactly 1 (the identity, bit for bit). The flow's channels are (rows, cols), i.e. (dy, dx),
like every cell position here; an OpenCV flow (``data.flow.farneback_flow``) is (dx, dy): pass ``flow.flip(0)``.
"""

from __future__ import annotations

import torch


def _coordinates(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if flow.dim() != 3 or flow.shape[0] != 2:
        raise ValueError(
            f"flow must be a dense [2, H, W] pixel flow in (rows, cols) order (Flow.dense()), got {tuple(flow.shape)}"
        )
    height, width = flow.shape[1:]
    rows = torch.arange(height, dtype=flow.dtype, device=flow.device).view(-1, 1)
    cols = torch.arange(width, dtype=flow.dtype, device=flow.device).view(1, -1)
    return rows + flow[0], cols + flow[1]


def inside(rows: torch.Tensor, cols: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Whether each coordinate lies inside an image of ``size`` (within half a pixel of its edge pixels)."""
    return (rows >= -0.5) & (rows <= size[0] - 0.5) & (cols >= -0.5) & (cols <= size[1] - 0.5)


def bilinear(image: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``image`` [C, H_t, W_t] read at real pixel coordinates [H, W] -> [C, H, W] (edge replicated)."""
    height, width = image.shape[-2:]
    rows = rows.clamp(0, height - 1)
    cols = cols.clamp(0, width - 1)
    r0, c0 = rows.floor().long(), cols.floor().long()
    r1, c1 = (r0 + 1).clamp(max=height - 1), (c0 + 1).clamp(max=width - 1)
    wr, wc = (rows - r0).to(image.dtype), (cols - c0).to(image.dtype)
    top = image[:, r0, c0] * (1 - wc) + image[:, r0, c1] * wc
    bottom = image[:, r1, c0] * (1 - wc) + image[:, r1, c1] * wc
    return top * (1 - wr) + bottom * wr


def warp_image(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Target ``image`` [C, H_t, W_t] warped to the source frame of ``flow`` [2, H, W] -> [C, H, W]."""
    if image.dim() != 3:
        raise ValueError(f"image must be [C, H, W], got {tuple(image.shape)}")
    rows, cols = _coordinates(flow.to(torch.float32))
    return bilinear(image.float(), rows, cols)


def warp_labels(labels: torch.Tensor, flow: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Target ``labels`` [H_t, W_t] (integer) warped to the source frame [H, W]: nearest pixel, ``ignore_index``
    where x + u(x) leaves the target (spec P2/P3 label transfer)."""
    if labels.dim() != 2 or labels.is_floating_point():
        raise ValueError(f"labels must be an integer [H, W] map, got {labels.dtype} {tuple(labels.shape)}")
    rows, cols = _coordinates(flow.to(torch.float32))
    height, width = labels.shape
    # floor(x + 0.5): round half up, so a coordinate exactly between two pixels picks one consistently.
    r = (rows + 0.5).floor().long().clamp(0, height - 1)
    c = (cols + 0.5).floor().long().clamp(0, width - 1)
    out = labels[r, c]
    return out.masked_fill(~inside(rows, cols, (height, width)), ignore_index)
