"""Nonparametric reconstruction from nearest-neighbour feature cells (thesis §2.1, Fig. 2.1).

Each query cell owns the s x s patch (s = the stage stride) centred on its rf centre. The patch is replaced by the
mean of the centre patches of its k nearest database cells by cosine similarity (k in {1, 5}); the database holds
every cell of other images. The "uniform rf" control uses the same neighbours but takes each neighbour's patch at
a uniformly random offset inside an rf of a given size (the thesis: conv3-sized, 99 px in AlexNet, which is also
ResNet-18 layer2's rf): the best features with no spatial information inside their rf could give.

A patch of even size s centred on pixel c covers ``floor(c - (s-1)/2 + 1/2)`` .. that + s - 1 (its centre is
within half a pixel of c); consecutive cells' patches then tile the image. Patches that reach past a database
image's border replicate its edge pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from pixelwise.methods.correspondence.features import FeatureGrid, FrozenFeatures, dense_features


@dataclass(frozen=True)
class PatchDatabase:
    """Cells of database images: ``features`` [M, C] (L2-normalised), the ``image`` [M] each came from and its
    rf centre ``centres`` [M, 2] (row, col pixels); ``images`` are the database images; ``patch`` = stride."""

    features: torch.Tensor
    image: torch.Tensor
    centres: torch.Tensor
    images: tuple[torch.Tensor, ...]
    patch: int


def patch_start(centre: torch.Tensor, size: int) -> torch.Tensor:
    """First pixel of the ``size``-pixel patch centred (within half a pixel) on ``centre`` (any shape)."""
    return torch.floor(centre - (size - 1) / 2 + 0.5).long()


def build_database(extractor: FrozenFeatures, images: Sequence[torch.Tensor], stage: str) -> PatchDatabase:
    """Every cell of ``stage`` on each of ``images`` ([C, H, W] in [0, 1], any sizes), with its rf centre."""
    if stage not in extractor.stages:
        raise ValueError(f"stage {stage!r} is not tapped; the extractor has {list(extractor.stages)}")
    features, owners, centres = [], [], []
    for index, image in enumerate(images):
        grid = dense_features(extractor, image[None])[stage]
        features.append(grid.features[0].flatten(1).T)
        centres.append(grid.centres().reshape(-1, 2))
        owners.append(torch.full((centres[-1].shape[0],), index, dtype=torch.long))
    stride = extractor.grids[stage].stride
    return PatchDatabase(torch.cat(features), torch.cat(owners), torch.cat(centres), tuple(images), stride)


def nearest_cells(
    query: torch.Tensor, database: torch.Tensor, k: int, query_chunk: int = 512, database_chunk: int = 65536
) -> torch.Tensor:
    """Indices [Q, k] of the ``k`` most cosine-similar database rows [M, C] for each (normalised) query row
    [Q, C], most similar first; chunked so a million-cell database never needs a Q x M matrix."""
    if k > database.shape[0]:
        raise ValueError(f"asked for {k} neighbours from a database of {database.shape[0]} cells")
    results = []
    for q in query.split(query_chunk):
        best_score = torch.empty(q.shape[0], 0)
        best_index = torch.empty(q.shape[0], 0, dtype=torch.long)
        for start in range(0, database.shape[0], database_chunk):
            score = q @ database[start : start + database_chunk].T
            top = score.topk(min(k, score.shape[1]), dim=1)
            best_score = torch.cat([best_score, top.values], dim=1)
            best_index = torch.cat([best_index, top.indices + start], dim=1)
            keep = best_score.topk(min(k, best_score.shape[1]), dim=1)
            best_score, best_index = keep.values, best_index.gather(1, keep.indices)
        results.append(best_index)
    return torch.cat(results)


def crop_patches(image: torch.Tensor, starts: torch.Tensor, size: int) -> torch.Tensor:
    """Patches [n, C, size, size] of ``image`` [C, H, W] with top-left corners ``starts`` [n, 2] (edge replicated)."""
    steps = torch.arange(size)
    rows = (starts[:, 0, None] + steps).clamp(0, image.shape[1] - 1)  # [n, size]
    cols = (starts[:, 1, None] + steps).clamp(0, image.shape[2] - 1)
    return image[:, rows[:, :, None], cols[:, None, :]].permute(1, 0, 2, 3)


def neighbour_patches(
    database: PatchDatabase, indices: torch.Tensor, jitter: torch.Tensor | None = None
) -> torch.Tensor:
    """Patches [*indices.shape, C, s, s] of the database cells ``indices``, centred on their rf centres, or shifted
    by ``jitter`` [*indices.shape, 2] pixels (the uniform-rf control)."""
    flat = indices.reshape(-1)
    centres = database.centres[flat]
    if jitter is not None:
        centres = centres + jitter.reshape(-1, 2)
    starts = patch_start(centres, database.patch)
    first = database.images[0]
    out = torch.empty(flat.numel(), first.shape[0], database.patch, database.patch, dtype=first.dtype)
    owners = database.image[flat]
    for owner in owners.unique().tolist():  # one gather per database image
        chosen = (owners == owner).nonzero(as_tuple=True)[0]
        out[chosen] = crop_patches(database.images[owner], starts[chosen], database.patch)
    return out.reshape(*indices.shape, *out.shape[1:])


def uniform_jitter(shape: tuple[int, ...], rf: int, patch: int, generator: torch.Generator) -> torch.Tensor:
    """Integer offsets [*shape, 2], uniform over the positions keeping an s x s patch inside an ``rf`` x ``rf``
    window centred on the rf centre (§2.1 "uniform rf")."""
    reach = max(0, (rf - patch) // 2)
    return torch.randint(-reach, reach + 1, (*shape, 2), generator=generator).float()


@dataclass(frozen=True)
class Reconstruction:
    """The reconstructed ``image`` [C, H, W] and the pixels its patches cover (``mask`` [H, W])."""

    image: torch.Tensor
    mask: torch.Tensor


def paste(patches: torch.Tensor, query: FeatureGrid) -> Reconstruction:
    """Tile per-cell patches [h, w, C, s, s] at the query cells' patch positions, cropped to the image."""
    h, w, channels, size, _ = patches.shape
    height, width = query.image_size
    top = int(patch_start(query.rows()[:1], size)[0])
    left = int(patch_start(query.cols()[:1], size)[0])
    canvas = patches.permute(2, 0, 3, 1, 4).reshape(channels, h * size, w * size)  # consecutive patches tile
    image = torch.zeros(channels, height, width, dtype=patches.dtype)
    mask = torch.zeros(height, width, dtype=torch.bool)
    r0, c0 = max(0, top), max(0, left)
    r1, c1 = min(height, top + h * size), min(width, left + w * size)
    image[:, r0:r1, c0:c1] = canvas[:, r0 - top : r1 - top, c0 - left : c1 - left]
    mask[r0:r1, c0:c1] = True
    return Reconstruction(image, mask)


def reconstruct(
    query: FeatureGrid,
    database: PatchDatabase,
    k: int = 1,
    uniform_rf: int | None = None,
    generator: torch.Generator | None = None,
    neighbours: torch.Tensor | None = None,
) -> Reconstruction:
    """§2.1: every query cell's patch replaced by the mean of its ``k`` NN database patches (cosine similarity).

    ``uniform_rf`` (pixels) switches to the uniform-rf control: the same neighbours, patches at uniformly random
    offsets within that rf (seeded by ``generator``). ``neighbours`` [h*w, >= k] are precomputed
    :func:`nearest_cells` indices (their first ``k`` are used), so the NN search over a large database runs once
    for several k and for the control.
    """
    if query.features.shape[0] != 1:
        raise ValueError("reconstruct takes one query image's FeatureGrid (use .image(i))")
    if query.grid.stride != database.patch:
        raise ValueError(
            f"query stride {query.grid.stride} != database patch size {database.patch}; same stage?"
        )
    h, w = query.shape
    cells = query.features[0].flatten(1).T  # [h*w, C]
    if neighbours is None:
        indices = nearest_cells(cells, database.features, k)
    elif neighbours.shape[0] != cells.shape[0] or neighbours.shape[1] < k:
        raise ValueError(f"neighbours must be [{cells.shape[0]}, >= {k}], got {tuple(neighbours.shape)}")
    else:
        indices = neighbours[:, :k]
    jitter = None
    if uniform_rf is not None:
        generator = generator or torch.Generator().manual_seed(0)
        jitter = uniform_jitter(tuple(indices.shape), uniform_rf, database.patch, generator)
    patches = neighbour_patches(database, indices, jitter).float().mean(dim=1)  # [h*w, C, s, s]
    return paste(patches.reshape(h, w, *patches.shape[1:]), query)
