"""The tuning loss of Mix-and-Match (Zhan et al. 2018, §3 "The Tuning Loss"): perceptual distance, triplet hinge.

Eq. 2: D(P_i, P_j) = || x_i / ||x_i||_2 - x_j / ||x_j||_2 ||^2, with x the CNN representation of a patch: the
"pool5" blob (§4), flattened whole (C x H x W) and L2-normalised. Eq. 1: L = (1/N) sum_i max(D(a, p) - D(a, n)
+ alpha, 0) over the N triplets of the graph, alpha = 2.1 (§4).

Why alpha = 2.1 never saturates: pool5 features follow a ReLU (and max pooling; ResNet's last stage ends with a
ReLU too), so they are non-negative, the cosine of two of them is in [0, 1] and D = 2 - 2 cos is in [0, 2]. Hence
D(a, p) - D(a, n) >= -2 > -alpha and every triplet stays inside the hinge: the loss is the linear
alpha + mean(D(a, p) - D(a, n)), which keeps pulling same-class patches together and pushing other classes away
however well they are separated already. We reproduce the paper's value and expose alpha (``--margin``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MARGIN = 2.1  # alpha of Eq. 1 (Zhan §4)


def perceptual_features(features: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] (or [N, D]) -> [N, C*H*W], each row L2-normalised (Eq. 2's x / ||x||_2)."""
    return F.normalize(features.float().flatten(1), dim=1)


def perceptual_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. 2 on already-normalised features [..., D] (broadcast): squared Euclidean distance, in [0, 4] ([0, 2] if >= 0)."""
    return (a - b).pow(2).sum(dim=-1)


def triplet_loss(embeddings: torch.Tensor, triplets: torch.Tensor, margin: float = MARGIN) -> torch.Tensor:
    """Eq. 1: mean over triplets [T, 3] (anchor, positive, negative indices) of max(D(a,p) - D(a,n) + alpha, 0).

    ``embeddings`` [N, D] are normalised features (:func:`perceptual_features`). No triplet (a single-class
    graph) gives a zero that is still connected to ``embeddings``, so backward and DDP work unchanged.
    """
    if len(triplets) == 0:
        return embeddings.sum() * 0.0
    triplets = triplets.to(embeddings.device)
    anchor, positive, negative = (embeddings[triplets[:, i]] for i in range(3))
    hinge = perceptual_distance(anchor, positive) - perceptual_distance(anchor, negative) + margin
    return hinge.clamp(min=0).mean()
