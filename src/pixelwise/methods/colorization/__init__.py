"""Automatic colorization and colorization pretraining (Larsson thesis Ch. 2-3).

- :mod:`.losses`: colour bins, window histograms, the hue/chroma KL of Eq. 2.3, Lab KL, L2 regression;
- :mod:`.decoding`: sample / mode / median / expectation, circular hue, chromatic fading, PSNR, RMSE ab;
- :mod:`.model`: the grey-input hypercolumn network;
- :mod:`.task`: sparse-point pretraining on images without labels, validated by PSNR.
"""

from pixelwise.methods.colorization.decoding import *  # noqa: F403
from pixelwise.methods.colorization.losses import *  # noqa: F403
from pixelwise.methods.colorization.model import ColorizationModel, ColorizerConfig, target_outputs
from pixelwise.methods.colorization.task import (
    ColorizationTask,
    gather_points,
    point_histograms,
    sparse_colour_loss,
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
