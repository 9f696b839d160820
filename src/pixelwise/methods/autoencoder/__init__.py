"""The (shortcut) autoencoder as a pretraining baseline (Larsson thesis §1.3).

- :mod:`.model`: an image autoencoder on any backbone (through ``FeatureTaps``) with a mirrored decoder and
  shortcut reconstructions through truncated paths that share its weights (1.11-1.12);
- :mod:`.task`: ``pixelwise pretrain --method autoencoder`` on images without labels, validated by PSNR.
"""

from pixelwise.methods.autoencoder.model import (
    FULL,
    Autoencoder,
    AutoencoderConfig,
    reconstruction_losses,
    shortcut_objective,
)
from pixelwise.methods.autoencoder.task import AutoencoderTask

__all__ = [
    "FULL",
    "Autoencoder",
    "AutoencoderConfig",
    "AutoencoderTask",
    "reconstruction_losses",
    "shortcut_objective",
]
