"""Datasets, metadata and joint transforms for pixel-wise prediction.

Every dataset has ``.info``, ``.names``, ``len()``, ``preload()``, ``validate()`` and returns
``(Image float32 [3,H,W] in [0,1], {"seg": Mask int64 [H,W], ...})``; see :func:`build_dataset`.
"""

from pixelwise.data.ade20k import ADE20K_INFO
from pixelwise.data.build import build_dataset, has_splits, validation_spec
from pixelwise.data.camvid import camvid_dataset
from pixelwise.data.cityscapes import CITYSCAPES_INFO
from pixelwise.data.info import CAMVID_INFO, SYNTHETIC_INFO, DatasetInfo
from pixelwise.data.label_maps import LabelMap, read_label_map
from pixelwise.data.segmentation import SegmentationDataset
from pixelwise.data.synthetic import SyntheticScenes, class_tags
from pixelwise.data.tensors import Depth
from pixelwise.data.transforms import RandomScale, eval_transforms, train_transforms
from pixelwise.data.validation import DatasetError
from pixelwise.data.voc import VOC_INFO

__all__ = [
    "ADE20K_INFO",
    "CAMVID_INFO",
    "CITYSCAPES_INFO",
    "SYNTHETIC_INFO",
    "VOC_INFO",
    "DatasetError",
    "DatasetInfo",
    "Depth",
    "LabelMap",
    "RandomScale",
    "SegmentationDataset",
    "SyntheticScenes",
    "build_dataset",
    "camvid_dataset",
    "class_tags",
    "eval_transforms",
    "has_splits",
    "read_label_map",
    "train_transforms",
    "validation_spec",
]
