"""Models: backbones (named stages), FeatureTaps, heads, and the segmentation model that combines them."""

from pixelwise.models.backbones import BACKBONES, Backbone, create_backbone
from pixelwise.models.segmenter import ARCHITECTURES, ModelConfig, SegmentationModel, create_model
from pixelwise.models.taps import FeatureTaps

__all__ = [
    "ARCHITECTURES",
    "BACKBONES",
    "Backbone",
    "FeatureTaps",
    "ModelConfig",
    "SegmentationModel",
    "create_backbone",
    "create_model",
]
