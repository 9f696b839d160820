"""Datasets, metadata and joint transforms for pixel-wise prediction.

Every dataset has ``.info``, ``.names``, ``len()``, ``preload()``, ``validate()`` and returns
``(Image float32 [3,H,W] in [0,1], {"seg": Mask int64 [H,W], ...})``; see :func:`build_dataset`.
"""

from pixelwise.data.build import build_dataset, has_splits, validation_spec
from pixelwise.data.camvid import camvid_dataset
from pixelwise.data.info import CAMVID_INFO, SYNTHETIC_INFO, DatasetInfo
from pixelwise.data.segmentation import SegmentationDataset
from pixelwise.data.synthetic import SyntheticScenes, class_tags
from pixelwise.data.tensors import Depth
from pixelwise.data.transforms import RandomScale, eval_transforms, train_transforms
from pixelwise.data.validation import DatasetError

__all__ = [
    "CAMVID_INFO",
    "SYNTHETIC_INFO",
    "DatasetError",
    "DatasetInfo",
    "Depth",
    "RandomScale",
    "SegmentationDataset",
    "SyntheticScenes",
    "build_dataset",
    "camvid_dataset",
    "class_tags",
    "eval_transforms",
    "has_splits",
    "train_transforms",
    "validation_spec",
]
