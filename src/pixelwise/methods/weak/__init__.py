"""Weak supervision from image-level tags (Mostajabi thesis Ch. 4): localise, sample diverse points, train on them."""

from pixelwise.methods.weak.localisation import (
    TagLocaliser,
    TagLocaliserConfig,
    global_softmax_log_probs,
    tag_loss,
)
from pixelwise.methods.weak.sampling import background_points, diverse_points, normalised_features
from pixelwise.methods.weak.task import TagLocalisationTask, sample_point_labels, write_point_labels

__all__ = [
    "TagLocalisationTask",
    "TagLocaliser",
    "TagLocaliserConfig",
    "background_points",
    "diverse_points",
    "global_softmax_log_probs",
    "normalised_features",
    "sample_point_labels",
    "tag_loss",
    "write_point_labels",
]
