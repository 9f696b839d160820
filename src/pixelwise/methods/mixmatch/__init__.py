"""Mix-and-Match tuning (Zhan, Liu, Luo, Loy & Tang, AAAI 2018) between self-supervised pretraining and
segmentation fine-tuning: pretrain (e.g. colorization) -> M&M on the labelled target set -> fine-tune.

- :mod:`.sampler`: the 'mix' step, K random square patches per image labelled by their centre pixel, pooled;
- :mod:`.graph`: the 'match' step, the class-wise connected graph (one triplet per node) and random triplets;
- :mod:`.loss`: the perceptual distance of Eq. 2 on normalised pool5 features and the triplet loss of Eq. 1;
- :mod:`.model`: the backbone up to pool5 (``taps.backbone.*`` keys, so ``pixelwise train --init-from`` loads it);
- :mod:`.task`: the training task behind ``pixelwise tune``;
- :mod:`.diagnose`: nearest-class-centroid accuracy and intra/inter distance ratio of val patch features.
"""

from pixelwise.methods.mixmatch.diagnose import DiagnoseConfig, centroid_diagnostic, diagnose, patch_features
from pixelwise.methods.mixmatch.graph import TRIPLET_SAMPLERS, class_wise_connected_triplets, random_triplets
from pixelwise.methods.mixmatch.loss import MARGIN, perceptual_distance, perceptual_features, triplet_loss
from pixelwise.methods.mixmatch.model import MixMatchConfig, MixMatchModel, default_feature_layer
from pixelwise.methods.mixmatch.sampler import Patches, PatchSampler, crop_patches, sample_patches
from pixelwise.methods.mixmatch.task import MixMatchTask

__all__ = [
    "MARGIN",
    "TRIPLET_SAMPLERS",
    "DiagnoseConfig",
    "MixMatchConfig",
    "MixMatchModel",
    "MixMatchTask",
    "PatchSampler",
    "Patches",
    "centroid_diagnostic",
    "class_wise_connected_triplets",
    "crop_patches",
    "default_feature_layer",
    "diagnose",
    "patch_features",
    "perceptual_distance",
    "perceptual_features",
    "random_triplets",
    "sample_patches",
    "triplet_loss",
]
