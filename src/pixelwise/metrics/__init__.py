"""Segmentation metrics: confusion matrix and §3.4.1 scores, boundary (trimap) accuracy, §3.5 IU bounds; depth
errors; representation similarity (linear CKA)."""

from pixelwise.metrics.boundary import BoundaryAccuracy, boundary_mask
from pixelwise.metrics.confusion import confusion_matrix, scores_to_json, segmentation_scores
from pixelwise.metrics.depth import DepthErrors
from pixelwise.metrics.similarity import linear_cka
from pixelwise.metrics.upper_bound import down_up_sample, iu_upper_bound, upper_bound_confusion

__all__ = [
    "BoundaryAccuracy",
    "DepthErrors",
    "boundary_mask",
    "confusion_matrix",
    "down_up_sample",
    "iu_upper_bound",
    "linear_cka",
    "scores_to_json",
    "segmentation_scores",
    "upper_bound_confusion",
]
