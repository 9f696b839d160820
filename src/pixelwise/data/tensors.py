"""tv_tensor types specific to pixelwise."""

from __future__ import annotations

from torchvision import tv_tensors


class Depth(tv_tensors.Mask):
    """Metric depth [1, H, W] float32, 0 = unknown.

    A subclass of ``Mask`` so every v2 geometric transform treats it like a label (nearest-neighbour
    resizing, same crop/flip), while still being a distinct type so padding can fill it with 0 ("no depth")
    instead of the label ignore value 255.
    """
