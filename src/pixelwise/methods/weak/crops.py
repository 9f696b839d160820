"""Weakly labelled crops: tags that say something on datasets whose every frame holds every class.

Every CamVid val frame contains all 11 classes and a train frame misses ~1.4 of them, so a whole frame's tags
carry almost nothing; a quarter-frame crop misses several. Treating each crop as an image of its own (its tags
are the classes inside it) tests the thesis' Ch. 4 claims on real street scenes.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def crop_boxes(
    height: int, width: int, size: tuple[int, int], count: int, generator: torch.Generator
) -> list[tuple[int, int]]:
    """``count`` seeded top-left corners of ``size`` crops inside a ``height`` x ``width`` image."""
    crop_h, crop_w = size
    if crop_h > height or crop_w > width:
        raise ValueError(
            f"crop {crop_h}x{crop_w} is larger than the {height}x{width} image; use a smaller crop"
        )
    tops = torch.randint(0, height - crop_h + 1, (count,), generator=generator)
    lefts = torch.randint(0, width - crop_w + 1, (count,), generator=generator)
    return list(zip(tops.tolist(), lefts.tolist()))


def labelled_views(
    name: str,
    image: torch.Tensor,
    labels: torch.Tensor,
    crops: int,
    size: tuple[int, int],
    generator: torch.Generator,
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, image [C, h, w], labels [h, w]) of the whole image (``crops`` = 0) or of each of its crops."""
    if crops == 0:
        yield name, image, labels
        return
    crop_h, crop_w = size
    for index, (top, left) in enumerate(crop_boxes(*labels.shape[-2:], size, crops, generator)):
        box = (slice(top, top + crop_h), slice(left, left + crop_w))
        yield f"{name}_crop{index}", image[(slice(None), *box)], labels[box]
