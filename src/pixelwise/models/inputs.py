"""Input handling shared by every model: RGB -> lightness for grey models, standardisation, stride padding.

Models own their input normalisation, so every caller (train, eval, predict, colorize, export) feeds images in
[0, 1], and they pad to a multiple of the backbone stride, so any input size works (peers' "divisible by 32").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class InputNormalizer(nn.Module):
    """``[N, C, H, W]`` in [0, 1] -> standardised, zero-padded (zero = the mean) to a multiple of ``stride``.

    ``image_channels`` says how many leading channels are the image: 3 (RGB, ImageNet statistics) or 1 (grey);
    the channels after them (one-hot labels, a predicted depth, HHA-like maps: Mostajabi §5.5, Long §3.4) arrive
    already scaled and are left as they are (mean 0, std 1). ``None`` keeps the rule older checkpoints were
    trained with: ImageNet statistics for 3 channels, the grey ones on every channel otherwise.
    """

    def __init__(self, in_channels: int, stride: int, image_channels: int | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.stride = stride
        self.image_channels = image_channels
        if image_channels is None:
            mean = IMAGENET_MEAN if in_channels == 3 else (sum(IMAGENET_MEAN) / 3,) * in_channels
            std = IMAGENET_STD if in_channels == 3 else (sum(IMAGENET_STD) / 3,) * in_channels
        else:
            if image_channels not in (0, 1, 3) or image_channels > in_channels:
                raise ValueError(
                    f"image_channels must be 0, 1 or 3 and at most in_channels ({in_channels}), got {image_channels}"
                )
            extra = in_channels - image_channels
            grey_mean, grey_std = (sum(IMAGENET_MEAN) / 3,), (sum(IMAGENET_STD) / 3,)
            mean = (IMAGENET_MEAN if image_channels == 3 else grey_mean * image_channels) + (0.0,) * extra
            std = (IMAGENET_STD if image_channels == 3 else grey_std * image_channels) + (1.0,) * extra
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # uint8 would pass through unscaled and give a silently wrong answer
        if not images.is_floating_point():
            raise TypeError(
                f"images must be floating-point in [0, 1], got {images.dtype}; convert with images.float() / 255"
            )
        height, width = images.shape[-2:]
        if self.in_channels == 1 and images.shape[1] == 3:  # grey models take L = (R+G+B)/3 (Larsson §2.3.1)
            images = images.mean(dim=1, keepdim=True)
        x = (images - self.mean) / self.std
        # Always pad (possibly by 0): a data-dependent branch would be frozen into an exported ONNX graph.
        return F.pad(x, (0, -width % self.stride, 0, -height % self.stride))
