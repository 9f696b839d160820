"""Joint (image, target-dict) augmentation built on torchvision.transforms.v2.

Labels are ``tv_tensors.Mask`` so v2 resizes them with nearest neighbour only; depth is a ``Depth`` (a Mask
subclass) so it moves with the labels but pads with 0 (unknown) instead of the ignore value. Plain tensors
in the target (e.g. tags) pass through untouched because an ``Image`` is always present.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F
from torchvision.transforms.v2._utils import query_size

from pixelwise.data.tensors import Depth


class RandomScale(v2.Transform):
    """Resize everything by one random factor in ``scale`` (aspect ratio kept).

    Unlike ``v2.RandomResize`` (absolute shorter-side sizes) this is relative to the input, which is what
    scale jitter means when the dataset already loads images at a fixed base size.
    """

    def __init__(self, scale: tuple[float, float]) -> None:
        super().__init__()
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}")
        self.scale = scale

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = query_size(flat_inputs)
        factor = float(torch.empty(()).uniform_(*self.scale))
        return {"size": [max(1, round(height * factor)), max(1, round(width * factor))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        # NEAREST_EXACT samples at pixel centres like bilinear does, so labels stay aligned with the image.
        exact = isinstance(inpt, tv_tensors.Mask)
        mode = InterpolationMode.NEAREST_EXACT if exact else InterpolationMode.BILINEAR
        return self._call_kernel(F.resize, inpt, size=params["size"], interpolation=mode, antialias=True)


def train_transforms(
    crop: tuple[int, int],
    scale: tuple[float, float] = (0.5, 2.0),
    hflip: bool = True,
    color_jitter: float = 0.2,
    ignore_index: int = 255,
) -> v2.Compose:
    """Scale jitter -> random crop (padded where too small) -> horizontal flip -> colour jitter.

    Called as ``image, target = t(image, target)``. Padding fills the image with 0, labels with
    ``ignore_index`` and depth with 0. Colour jitter changes brightness/contrast/saturation, never hue,
    because hue is a class cue (and the colorization target on synthetic data).
    """
    fill = {tv_tensors.Image: 0, tv_tensors.Mask: ignore_index, Depth: 0}
    steps: list[v2.Transform] = [RandomScale(scale), v2.RandomCrop(crop, pad_if_needed=True, fill=fill)]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if color_jitter > 0:
        steps.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    return v2.Compose(steps)


def eval_transforms() -> v2.Compose:
    """No-op: evaluation uses the dataset's base size (``size=`` at load time) and full images."""
    return v2.Compose([v2.Identity()])
