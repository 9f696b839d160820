"""Mix-and-Match tuning (Zhan, Liu, Luo, Loy & Tang, AAAI 2018) between self-supervised pretraining and
segmentation fine-tuning: pretrain (e.g. colorization) -> M&M on the labelled target set -> fine-tune.

- :mod:`.sampler`: the 'mix' step, K random square patches per image labelled by their centre pixel, pooled;
- :mod:`.graph`: the 'match' step, the class-wise connected graph (one triplet per node) and random triplets;
- :mod:`.loss`: the perceptual distance of Eq. 2 on normalised pool5 features and the triplet loss of Eq. 1;
- :mod:`.model`: the backbone up to pool5 (``taps.backbone.*`` keys, so ``pixelwise train --init-from`` loads it);
- :mod:`.task`: the training task behind ``pixelwise tune``;
- :mod:`.diagnose`: nearest-class-centroid accuracy and intra/inter distance ratio of val patch features
  (``from pixelwise.methods.mixmatch.diagnose import diagnose``: the function shares the submodule's name).
"""

from pixelwise.lazy import lazy_exports

# Imported on first use: `pixelwise CMD --help` reads the options module alone (no torch).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DiagnoseConfig": "config",
        "centroid_diagnostic": "diagnose",
        "patch_features": "diagnose",
        "TRIPLET_SAMPLERS": "graph",
        "class_wise_connected_triplets": "graph",
        "random_triplets": "graph",
        "MARGIN": "loss",
        "perceptual_distance": "loss",
        "perceptual_features": "loss",
        "triplet_loss": "loss",
        "MixMatchConfig": "model",
        "MixMatchModel": "model",
        "default_feature_layer": "model",
        "Patches": "sampler",
        "PatchSampler": "sampler",
        "crop_patches": "sampler",
        "sample_patches": "sampler",
        "MixMatchTask": "task",
    },
)

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
    "patch_features",
    "perceptual_distance",
    "perceptual_features",
    "random_triplets",
    "sample_patches",
    "triplet_loss",
]
