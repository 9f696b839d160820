"""SyntheticScenes: a deterministic, dependency-free stand-in for a road-scene dataset."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F
from tqdm import tqdm

from pixelwise.data.info import SYNTHETIC_INFO
from pixelwise.data.scene import (
    PERSON,
    VARIANTS,
    VEHICLE,
    ObjectKeypoints,
    Scene,
    render_scene,
    render_scene_full,
)
from pixelwise.data.tensors import Depth

_Raw = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class SyntheticScenes(Dataset):
    """Procedural road scenes with labels, metric depth and image-level tags.

    Items are ``(Image float32 [3,H,W], {"seg": Mask int64 [H,W], "depth": Depth float32 [1,H,W] (metres;
    0 only where a transform padded), "tags": float32 [num_classes] multi-hot})``. Sample ``i`` depends only
    on ``(seed, split, i)``, not on access order, worker count or caching. ``tags`` is computed after the
    transform, so it always describes the returned (possibly cropped) ``seg``.

    Instance maps and analytic keypoints (spec correspondence-keypoints.md P4) are not in the items, so
    existing callers see the same dicts: :meth:`instances` and :meth:`keypoints` give them, for the
    untransformed frame.
    """

    def __init__(
        self,
        length: int,
        size: tuple[int, int] = (120, 160),
        seed: int = 0,
        split: str = "train",
        *,
        transform: Callable | None = None,
        cache: bool = True,
        variant: str = "default",
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown synthetic variant {variant!r}; choose from {', '.join(VARIANTS)}")
        self.variant = variant  # "hard": per-scene camera height, texture in metres (data/scene.py)
        if length < 0 or seed < 0:
            raise ValueError(f"length and seed must be >= 0, got length={length}, seed={seed}")
        self.length, self.size, self.seed, self.split = length, tuple(size), seed, split
        self.transform = transform
        self.cache = cache
        self.info = SYNTHETIC_INFO
        self.names = [f"{split}_{i:05d}" for i in range(length)]
        self._split_key = split_key(split)
        self._cache: list[_Raw | None] = [None] * length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict[str, torch.Tensor]]:
        image_u8, seg_u8, depth = self.load_raw(index)
        image = F.to_dtype(tv_tensors.Image(image_u8), torch.float32, scale=True)
        target: dict[str, torch.Tensor] = {"seg": tv_tensors.Mask(seg_u8.long()), "depth": Depth(depth[None])}
        if self.transform is not None:
            image, target = self.transform(image, target)
        target["tags"] = class_tags(target["seg"], self.info.num_classes)
        return image, target

    def load_raw(self, index: int) -> _Raw:
        """(image uint8 [3,H,W], seg uint8 [H,W], depth float32 [H,W]) for sample ``index``."""
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} synthetic scenes")
        index %= self.length
        cached = self._cache[index]
        if cached is not None:
            return cached
        image, seg, depth = render_scene(
            scene_generator(self.seed, self.split, index), *self.size, self.variant
        )
        item = (
            torch.from_numpy(image.transpose(2, 0, 1).copy()),
            torch.from_numpy(seg),
            torch.from_numpy(depth),
        )
        if self.cache:
            self._cache[index] = item
        return item

    def scene(self, index: int) -> Scene:
        """Sample ``index``'s full description (camera, surfaces; see :func:`render_scene_full`), rendered
        anew: its ``image``, ``seg`` and ``depth`` equal :meth:`load_raw`'s."""
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} synthetic scenes")
        generator = scene_generator(self.seed, self.split, index % self.length)
        return render_scene_full(generator, *self.size, self.variant)

    def instances(self, index: int) -> torch.Tensor:
        """Sample ``index``'s (untransformed) instance map int64 [H,W]: object ids in painting order, 0 = sky
        and ground, occlusion-correct (see :class:`~pixelwise.data.scene.Scene`); rendered anew."""
        instances = self.scene(index).instances
        assert instances is not None  # render_scene_full always paints one
        return torch.from_numpy(instances.astype(np.int64))

    def keypoints(self, index: int, classes: tuple[int, ...] = (VEHICLE, PERSON)) -> list[ObjectKeypoints]:
        """The analytic keypoints of sample ``index``'s vehicles and people (``classes``), in the
        untransformed frame, with visibility from its instance map
        (:func:`~pixelwise.data.scene.object_keypoints`)."""
        return self.scene(index).keypoints(classes)

    def load_label(self, index: int) -> torch.Tensor:
        """The generated (untransformed) label map uint8 [H,W], e.g. for class frequencies."""
        return self.load_raw(index)[1]

    def preload(self, progress: bool = True) -> None:
        """Render everything into the cache now (implies caching), e.g. before forking DataLoader workers."""
        self.cache = True
        for index in tqdm(range(len(self)), desc="rendering synthetic", disable=not progress):
            self.load_raw(index)

    def validate(self, progress: bool = False) -> list[str]:
        """Same interface as file datasets; generated samples are valid by construction."""
        return []


def split_key(split: str) -> int:
    """A stable integer for a split name: crc32 rather than hash(), which Python salts per process and would
    break reproducibility."""
    return zlib.crc32(split.encode("utf-8"))


def scene_generator(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator that renders scene ``index`` of (``seed``, ``split``): a scene depends on these alone."""
    return np.random.default_rng([seed, split_key(split), index])


def class_tags(seg: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Multi-hot float32 [num_classes] of the class ids present in ``seg`` (ignore values skipped)."""
    ids = seg.as_subclass(torch.Tensor).flatten()
    ids = ids[(ids >= 0) & (ids < num_classes)]
    return (torch.bincount(ids, minlength=num_classes) > 0).float()
