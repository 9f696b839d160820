"""File-backed segmentation dataset with load-time resizing and an in-memory uint8 cache."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F
from tqdm import tqdm

from pixelwise.data.info import DatasetInfo
from pixelwise.data.label_maps import LabelMap
from pixelwise.data.validation import (
    DatasetError,
    binary_mask_message,
    check_label,
    check_same_size,
    load_image,
    load_label,
    skip_report,
)

Sample = tuple[tv_tensors.Image, dict[str, torch.Tensor]]


class SegmentationDataset(Dataset):
    """(image, label) pairs from disk.

    Items are ``(Image float32 [3,H,W] in [0,1], {"seg": Mask int64 [H,W]})``. Files are decoded, checked
    and resized to ``size`` once; with ``cache=True`` the uint8 result is kept per instance, so epochs after
    the first cost no decoding. Call :meth:`preload` before creating a multi-worker DataLoader so that
    forked workers share one decoded copy instead of each filling its own. With ``cache=False`` (validation)
    every access decodes from disk, so a split of full-resolution images is never held in memory.

    Bad files raise :class:`DatasetError` naming the file; :meth:`preload` and :meth:`check` look at every
    sample first and, inside :func:`~pixelwise.data.validation.skip_bad_samples`, drop the bad ones instead.
    They (and :meth:`validate`) also refuse a dataset whose labels hold nothing but 0 and the ignore value 255:
    every file passes on its own, yet the foreground of such 0/255 binary masks would never be trained or scored.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[Path, Path]],
        info: DatasetInfo,
        *,
        size: tuple[int, int] | None = None,
        transform: Callable | None = None,
        cache: bool = True,
        label_map: Mapping[int, int] | LabelMap | None = None,
    ) -> None:
        self.pairs = [(Path(i), Path(lab)) for i, lab in pairs]
        self.info = info
        self.names = [img.stem for img, _ in self.pairs]
        self.size = size
        self.transform = transform
        self.cache = cache
        # Raw file value -> class id: a dict for a few values (CamVid void 11 -> 255, the rest kept), a LabelMap
        # when every value must be named (--label-map, Cityscapes labelIds, ADE20K).
        self.label_map = label_map if isinstance(label_map, LabelMap) else dict(label_map or {})
        self._cache: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.pairs)
        # Class ids present in each decoded label (after label_map), for the dataset-wide 0/255 check.
        self._values: list[frozenset[int] | None] = [None] * len(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Sample:
        image_u8, label_u8 = self.load_uint8(index)
        image = F.to_dtype(tv_tensors.Image(image_u8), torch.float32, scale=True)
        target = {"seg": tv_tensors.Mask(label_u8.long())}
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target

    def load_uint8(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoded, checked and resized (image uint8 [3,H,W], label uint8 [H,W]), from the cache if present."""
        cached = self._cache[index]
        if cached is not None:
            return cached
        item = self._decode(index)
        if self.cache:
            self._cache[index] = item
        return item

    def load_label(self, index: int) -> torch.Tensor:
        """The stored (resized, untransformed) label map uint8 [H,W], e.g. for class frequencies."""
        return self.load_uint8(index)[1]

    def _decode(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, label_path = self.pairs[index]
        image = load_image(image_path)
        label = load_label(label_path, self.info.palette)
        check_same_size(image, label, image_path, label_path)
        if isinstance(self.label_map, LabelMap):
            label = self.label_map.apply(label, label_path)
        elif self.label_map:
            raw_label, label = label, label.copy()
            for raw, mapped in self.label_map.items():
                label[raw_label == raw] = mapped
        check_label(label, label_path, self.info.num_classes, self.info.ignore_index)
        self._values[index] = frozenset(np.flatnonzero(np.bincount(label.ravel(), minlength=256)).tolist())
        image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        label_t = torch.from_numpy(label.astype(np.uint8))
        if self.size is not None and tuple(image_t.shape[-2:]) != tuple(self.size):
            image_t = F.resize_image(image_t, list(self.size), InterpolationMode.BILINEAR, antialias=True)
            # NEAREST_EXACT samples pixel centres, so labels stay aligned with the bilinear image.
            label_t = F.resize_image(label_t[None], list(self.size), InterpolationMode.NEAREST_EXACT)[0]
        return image_t.contiguous(), label_t.contiguous()

    def preload(self, progress: bool = True) -> None:
        """Decode every sample into the cache now (implies caching), e.g. before forking DataLoader workers.

        Raises one :class:`DatasetError` (the first bad file, and how many more) or drops the bad samples
        inside ``skip_bad_samples()``; see :meth:`check`.
        """
        self.cache = True
        self.check(progress, desc="decoding")

    def check(self, progress: bool = False, desc: str = "checking") -> None:
        """Decode and check every sample now (kept only if ``cache``), so bad files surface before training.

        Outside ``skip_bad_samples()`` the first bad sample raises, its message saying how many others are bad;
        inside it, bad samples are removed from this dataset and their messages added to the block's report.
        """
        problems: dict[int, str] = {}
        for index in tqdm(range(len(self)), desc=f"{desc} {self.info.name}", disable=not progress):
            try:
                self.load_uint8(index)
            except DatasetError as exc:
                problems[index] = str(exc)
        binary = self.label_set_problem()
        if binary is not None:  # the whole dataset is wrong: no sample can be skipped to fix it
            raise DatasetError(binary)
        if not problems:
            return
        first = next(iter(problems.values()))
        report = skip_report()
        if report is None:
            more = len(problems) - 1
            others = f"{more} more bad sample(s) in this dataset, " if more else ""
            raise DatasetError(
                f"{first} [{others}list them all with `pixelwise datasets --data SPEC --validate`, "
                f"or pass --skip-bad to train without them]"
            )
        if len(problems) == len(self):
            raise DatasetError(f"{first} [all {len(self)} samples of this dataset are bad; nothing to use]")
        self.drop(problems)
        report.extend(problems.values())

    def drop(self, indices: Collection[int]) -> None:
        """Remove samples (e.g. bad files) from this dataset; later indices shift down."""
        bad = set(indices)
        keep = [i for i in range(len(self.pairs)) if i not in bad]
        self.pairs = [self.pairs[i] for i in keep]
        self.names = [self.names[i] for i in keep]
        self._cache = [self._cache[i] for i in keep]
        self._values = [self._values[i] for i in keep]

    def validate(self, progress: bool = False) -> list[str]:
        """Check every sample; return one message per bad sample (empty list = all good)."""
        problems = []
        for index in tqdm(range(len(self)), desc=f"checking {self.info.name}", disable=not progress):
            try:
                self.load_uint8(index)
            except DatasetError as exc:
                problems.append(str(exc))
        binary = self.label_set_problem()
        return problems if binary is None else [*problems, binary]

    def label_set_problem(self) -> str | None:
        """The refusal of 0/255 binary masks, judged on the labels decoded so far; None when they look fine.

        One file holding only 0 and 255 may be a background-only image with a void border; every file doing so
        is a mask format in which 255 meant foreground, yet 255 is what losses and metrics ignore.
        """
        ignore = self.info.ignore_index
        decoded = [(pair[1], v) for pair, v in zip(self.pairs, self._values) if v is not None]
        present = frozenset().union(*(v for _, v in decoded))
        if ignore != 255 or present != {0, ignore}:
            return None
        example = next(path for path, values in decoded if ignore in values)
        return binary_mask_message(example, len(decoded), ignore)
