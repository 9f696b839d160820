"""Correspondence and keypoints from frozen convnet features (Long thesis Ch. 2; spec correspondence-keypoints.md).

- :mod:`.features`: a frozen backbone (any run's, or random) through ``FeatureTaps``; dense L2-normalised cells with
  their rf centres (``FeatureGrid``).
- :mod:`.cost`, :mod:`.mrf`, :mod:`.flow`: conv flow (§2.2): L2 data term, quadratic smoothness, bipartite min-sum
  BP with the separable squared-Euclidean distance transform; flows in cells and pixels.
- :mod:`.descriptors`: the baselines on the same grid and MRF: upright OpenCV SIFT, grey patches.
- :mod:`.warp`: backward warping of images and label maps by a dense flow.
- :mod:`.transfer`: keypoint transfer (25 neighbours, deformation-energy order, median of the top 5) and NN transfer.
- :mod:`.reconstruction`: nearest-neighbour patch reconstruction and the uniform-rf control (§2.1).
Metrics (PCK, EPE, label-transfer IoU, PSNR) live in :mod:`pixelwise.metrics.correspondence`.
"""

from pixelwise.lazy import lazy_exports

# Imported on first use: `pixelwise CMD --help` reads the options module alone (no torch).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "data_cost": "cost",
        "displacements": "cost",
        "grey_patch_descriptors": "descriptors",
        "sift_descriptors": "descriptors",
        "FeatureConfig": "features",
        "FeatureGrid": "features",
        "FrozenFeatures": "features",
        "dense_features": "features",
        "feature_extractor": "features",
        "stage_rf_sizes": "features",
        "Flow": "flow",
        "conv_flow": "flow",
        "zero_flow": "flow",
        "FlowEnergy": "mrf",
        "belief_propagation": "mrf",
        "flow_energy": "mrf",
        "min_convolve_1d": "mrf",
        "min_convolve_2d": "mrf",
        "PatchDatabase": "reconstruction",
        "build_database": "reconstruction",
        "reconstruct": "reconstruction",
        "Transfer": "transfer",
        "cosine_neighbours": "transfer",
        "global_descriptors": "transfer",
        "median_of_top": "transfer",
        "nn_transfer": "transfer",
        "transfer_keypoints": "transfer",
        "transfer_points": "transfer",
        "warp_image": "warp",
        "warp_labels": "warp",
    },
)

__all__ = [
    "FeatureConfig",
    "FeatureGrid",
    "Flow",
    "FlowEnergy",
    "FrozenFeatures",
    "PatchDatabase",
    "Transfer",
    "belief_propagation",
    "build_database",
    "conv_flow",
    "cosine_neighbours",
    "data_cost",
    "dense_features",
    "displacements",
    "feature_extractor",
    "flow_energy",
    "global_descriptors",
    "grey_patch_descriptors",
    "median_of_top",
    "min_convolve_1d",
    "min_convolve_2d",
    "nn_transfer",
    "reconstruct",
    "sift_descriptors",
    "stage_rf_sizes",
    "transfer_keypoints",
    "transfer_points",
    "warp_image",
    "warp_labels",
    "zero_flow",
]
