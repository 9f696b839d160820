"""Automatic colorization and colorization pretraining (Larsson thesis Ch. 2-3).

- :mod:`.losses`: colour bins, window histograms, the hue/chroma KL of Eq. 2.3, Lab KL, L2 regression;
- :mod:`.decoding`: sample / mode / median / expectation, circular hue, chromatic fading, PSNR, RMSE ab;
- :mod:`.model`: the grey-input hypercolumn network;
- :mod:`.task`: sparse-point pretraining on images without labels, validated by PSNR.
"""

from pixelwise.lazy import lazy_exports

# Imported on first use: `pixelwise CMD --help` reads the options module alone (no torch).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "expectation": "decoding",
        "median": "decoding",
        "mode": "decoding",
        "sample": "decoding",
        "circular_hue": "decoding",
        "chromatic_fading": "decoding",
        "hue_uncertainty": "decoding",
        "ab_rmse": "decoding",
        "psnr": "decoding",
        "hue_chroma_plane": "decoding",
        "lab_plane": "decoding",
        "rgb_from_plane": "decoding",
        "HUE_CHROMA_BINS": "losses",
        "LAB_SIGMA": "losses",
        "HUE_WEIGHT": "losses",
        "uniform_centres": "losses",
        "gaussian_quantile_centres": "losses",
        "nearest_bin": "losses",
        "window_histograms": "losses",
        "ColorTargets": "losses",
        "hue_chroma_targets": "losses",
        "kl_divergence": "losses",
        "hue_chroma_loss": "losses",
        "lab_histogram_loss": "losses",
        "regression_loss": "losses",
        "ColorizationModel": "model",
        "ColorizerConfig": "model",
        "target_outputs": "model",
        "ColorizationTask": "task",
        "gather_points": "task",
        "point_histograms": "task",
        "sparse_colour_loss": "task",
    },
)

__all__ = [  # noqa: F405
    "ColorizationModel",
    "ColorizationTask",
    "ColorizerConfig",
    "gather_points",
    "point_histograms",
    "sparse_colour_loss",
    "target_outputs",
]
