"""Weak supervision from image-level tags (Mostajabi thesis Ch. 4): localise, sample diverse points, train on them."""

from pixelwise.lazy import lazy_exports

# Imported on first use: `pixelwise CMD --help` reads the options module alone (no torch).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "TagLocaliser": "localisation",
        "TagLocaliserConfig": "localisation",
        "global_softmax_log_probs": "localisation",
        "tag_loss": "localisation",
        "background_points": "sampling",
        "diverse_points": "sampling",
        "normalised_features": "sampling",
        "TagLocalisationTask": "task",
        "sample_point_labels": "task",
        "write_point_labels": "task",
    },
)

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
