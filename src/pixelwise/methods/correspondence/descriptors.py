"""Hand-made dense descriptors on a conv stage's grid: the baselines of conv flow (thesis §2.2; spec P2-P4).

§2.2 computes SIFT "at the same locations, the grid of convnet rf centers", so both feature types go through the
same MRF. Here:

- **SIFT** (OpenCV, upright: no orientation, as SIFT flow's dense SIFT) at every cell centre of a reference
  :class:`FeatureGrid`. The thesis gives SIFT by its *radius* (20 px for alignment). OpenCV's descriptor spans
  4 x 4 bins of 3 * (size / 2) px, i.e. a square of side 6 * size, so ``radius`` (half that side) = 3 * size.
- **Grey patches** (spec P2/P3 "grey-patch flow"): the ``size`` x ``size`` lightness patch around each centre,
  mean-subtracted.

Both come back L2-normalised, so their data term has the conv features' [0, 2] scale (beta is still re-chosen per
feature type, spec §2.2). Lightness is (R + G + B) / 3, as grey pixelwise models see it.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from pixelwise.methods.correspondence.features import FeatureGrid
from pixelwise.methods.correspondence.reconstruction import crop_patches, patch_start


def _lightness(images: torch.Tensor) -> torch.Tensor:
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be [N, 1 or 3, H, W] in [0, 1], got {tuple(images.shape)}")
    return images.float().mean(dim=1)  # [N, H, W]


def sift_descriptors(images: torch.Tensor, reference: FeatureGrid, radius: float) -> FeatureGrid:
    """Upright SIFT [N, 128, h, w] of ``images`` at the cell centres of ``reference`` (same grid and shape)."""
    if radius <= 0:
        raise ValueError(f"SIFT radius must be positive, got {radius}")
    grey = _lightness(images)
    if tuple(grey.shape[-2:]) != reference.image_size:
        raise ValueError(
            f"images are {tuple(grey.shape[-2:])} but the grid belongs to {reference.image_size} ones"
        )
    h, w = reference.shape
    centres = reference.centres().reshape(-1, 2).tolist()
    sift = cv2.SIFT_create()
    out = []
    for image in grey:
        pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        points = [cv2.KeyPoint(float(col), float(row), radius / 3) for row, col in centres]
        kept, descriptors = sift.compute(pixels, points)
        if descriptors is None or len(kept) != len(points):  # OpenCV may drop points: refuse, never misalign
            raise ValueError(
                f"OpenCV SIFT kept {0 if descriptors is None else len(kept)} of {len(points)} points"
            )
        out.append(torch.from_numpy(np.ascontiguousarray(descriptors)).T.reshape(128, h, w))
    return replace(reference, features=F.normalize(torch.stack(out), dim=1))


def grey_patch_descriptors(images: torch.Tensor, reference: FeatureGrid, size: int) -> FeatureGrid:
    """Mean-subtracted lightness patches [N, size^2, h, w] centred on the cell centres of ``reference``."""
    if size < 1:
        raise ValueError(f"patch size must be >= 1, got {size}")
    grey = _lightness(images)
    h, w = reference.shape
    starts = patch_start(reference.centres().reshape(-1, 2), size)
    out = []
    for image in grey:
        patches = crop_patches(image[None], starts, size).reshape(h * w, size * size)
        patches = patches - patches.mean(dim=1, keepdim=True)
        out.append(patches.T.reshape(size * size, h, w))
    return replace(reference, features=F.normalize(torch.stack(out), dim=1))
