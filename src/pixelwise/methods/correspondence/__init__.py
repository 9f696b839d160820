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

from pixelwise.methods.correspondence.cost import data_cost, displacements
from pixelwise.methods.correspondence.descriptors import grey_patch_descriptors, sift_descriptors
from pixelwise.methods.correspondence.features import (
    FeatureConfig,
    FeatureGrid,
    FrozenFeatures,
    dense_features,
    feature_extractor,
    stage_rf_sizes,
)
from pixelwise.methods.correspondence.flow import Flow, conv_flow, zero_flow
from pixelwise.methods.correspondence.mrf import (
    FlowEnergy,
    belief_propagation,
    flow_energy,
    min_convolve_1d,
    min_convolve_2d,
)
from pixelwise.methods.correspondence.reconstruction import PatchDatabase, build_database, reconstruct
from pixelwise.methods.correspondence.transfer import (
    Transfer,
    cosine_neighbours,
    global_descriptors,
    median_of_top,
    nn_transfer,
    transfer_keypoints,
    transfer_points,
)
from pixelwise.methods.correspondence.warp import warp_image, warp_labels

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
