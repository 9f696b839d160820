"""The layers of a stacked mixture network (Larsson thesis §1.2.2, §1.2.5, §1.2.8): Edges, Mixture, RotMix, OR-pool.

Layers are fitted greedily and without labels (no gradients anywhere): a layer sees the binary output of the
layers below it, fixed.

- :class:`Edges`: 8 binary oriented edges per pixel, spread by a box dilation (:mod:`.edges`).
- :class:`Mixture`: a Bernoulli mixture of M parts over S x S patches of all incoming channels (1.1), fitted by EM
  on ~40 random non-blank patches per image; its activation is the one-hot code of the maximum-likelihood part
  (1.2) at every patch position, then OR-pooled (max) over 4 x 4 disjoint regions (§1.2.8).
- :class:`RotMix`: the same with a latent transformation among R rotations (x T polarities): parts are fitted by
  Permutation EM (:mod:`.bernoulli_mm`) on complete samples, and coded as R T M separate parts (A.4).

The complete sample of a patch (1.4) needs the patch under every transformation. Two ways (§1.2.5):

- ``recompute`` (option (b), the public code's choice): rotate (and invert) the *image* about the patch centre,
  bilinear, and recompute the edges; any R works.
- ``analytic`` (option (a)): rotate the *edge map* (nearest neighbour) and permute its orientation channels, which
  is only exact when each rotation moves the 8 edge directions onto each other: R must divide 8.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pixelwise.methods.mixtures.bernoulli_mm import PermutationMM, cyclic_group_table
from pixelwise.methods.mixtures.config import TRANSFORMS
from pixelwise.methods.mixtures.edges import (
    ORIENTATIONS,
    edge_permutation,
    oriented_edges,
    polarity_permutation,
    spread,
)


def or_pool(codes: torch.Tensor, size: int) -> torch.Tensor:
    """Element-wise OR (max) over ``size`` x ``size`` disjoint regions; a partial region at the border counts."""
    if size <= 1:
        return codes
    return F.max_pool2d(codes, size, stride=size, ceil_mode=True)


def check_transformations(rotations: int, polarities: int, transform: str) -> None:
    """Refuse a transformation group the chosen transform cannot realise, with the fix in one line."""
    if rotations < 1 or polarities not in (1, 2):
        raise ValueError(f"need rotations >= 1 and polarities 1 or 2, got {rotations} and {polarities}")
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; choose from {', '.join(TRANSFORMS)}")
    if transform == "analytic" and ORIENTATIONS % rotations:
        steps = ", ".join(str(r) for r in range(1, ORIENTATIONS + 1) if ORIENTATIONS % r == 0)
        raise ValueError(
            f"--rotations {rotations} with --transform analytic: the {ORIENTATIONS} edge orientations can only be "
            f"permuted by rotations of multiples of 45 degrees (rotations {steps}); use --transform recompute "
            "(rotates the image and recomputes the edges) or one of those rotation counts"
        )


class Edges:
    """Layer 1: ``Edges(images [N, C, H, W]) -> [N, 8, H, W]`` binary, spread by a (2r+1)^2 box (§1.2.8).

    Intensities are read at 8 bits (rounded to 1/255), as image files hold them: the k-of-6 rule compares
    differences, and bilinear images have exact ties (linear ramps) that float noise of 1e-7 from resampling
    would otherwise break at random, so a patch resampled at its own pixels gives exactly its own edges.
    """

    def __init__(self, k: int = 6, radius: int = 1, minimum_contrast: float = 0.0) -> None:
        self.k, self.radius, self.minimum_contrast = k, radius, minimum_contrast

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        levels = torch.round(images.float() * 255) / 255
        return spread(oriented_edges(levels, self.k, self.minimum_contrast), self.radius)


def _patch_positions(
    count: int, height: int, width: int, size: int, per_image: int, generator: torch.Generator
) -> torch.Tensor:
    """Random top-left corners [count, per_image, 2] of ``size`` x ``size`` patches inside an H x W map."""
    rows = torch.randint(0, height - size + 1, (count, per_image), generator=generator)
    cols = torch.randint(0, width - size + 1, (count, per_image), generator=generator)
    return torch.stack([rows, cols], dim=-1)


def extract_patches(maps: torch.Tensor, positions: torch.Tensor, size: int) -> torch.Tensor:
    """Patches [N, K, C S S] (channel-major, like ``unfold`` and conv weights) at ``positions`` [N, K, 2]."""
    offsets = torch.arange(size)
    rows = positions[..., 0, None, None] + offsets.view(-1, 1)  # [N, K, S, 1]
    cols = positions[..., 1, None, None] + offsets.view(1, -1)  # [N, K, 1, S]
    index = (rows * maps.shape[-1] + cols).flatten(2)  # [N, K, S S]
    flat = maps.flatten(2)  # [N, C, H W]
    gathered = flat.gather(2, index.flatten(1).unsqueeze(1).expand(-1, maps.shape[1], -1))  # [N, C, K S S]
    gathered = gathered.view(maps.shape[0], maps.shape[1], positions.shape[1], size * size)
    return gathered.permute(0, 2, 1, 3).flatten(2)


def _rotated_grids(
    centres: torch.Tensor, angles: torch.Tensor, crop: int, height: int, width: int
) -> torch.Tensor:
    """grid_sample grids [N, R, crop, crop, 2]: the crop x crop window about each centre (row, col), content
    rotated by +angle (the sense of :func:`pixelwise.data.digits.rotate`)."""
    offsets = torch.arange(crop, dtype=torch.float32) - (crop - 1) / 2
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    cos, sin = torch.cos(angles).view(1, -1, 1, 1), torch.sin(angles).view(1, -1, 1, 1)
    x = centres[:, 1].view(-1, 1, 1, 1) + dx * cos + dy * sin  # input at Rot(-angle) (dx, dy)
    y = centres[:, 0].view(-1, 1, 1, 1) - dx * sin + dy * cos
    return torch.stack([(2 * x + 1) / width - 1, (2 * y + 1) / height - 1], dim=-1)


class Mixture:
    """A Bernoulli mixture layer (§1.2.2, §1.2.8): M parts over S x S patches, one-hot coding (1.2), OR-pool.

    With ``rotations`` R > 1 (or ``polarities`` 2) it is :class:`RotMix`: Permutation EM over the complete samples
    and R T M parts at coding time.
    """

    def __init__(
        self,
        parts: int,
        patch_size: int = 6,
        pool: int = 4,
        rotations: int = 1,
        polarities: int = 1,
        transform: str = "recompute",
        iterations: int = 10,
        eps: float = 0.005,
        patches_per_image: int = 40,
        min_edges: int = 10,
        seed: int = 0,
    ) -> None:
        check_transformations(rotations, polarities, transform)
        self.parts, self.patch_size, self.pool = parts, patch_size, pool
        self.rotations, self.polarities, self.transform = rotations, polarities, transform
        self.iterations, self.eps, self.seed = iterations, eps, seed
        self.patches_per_image, self.min_edges = patches_per_image, min_edges
        self.mu: torch.Tensor | None = (
            None  # [R T M, 8, S, S]: the coding parts, index (f, t, r) -> f R T + R t + r
        )
        self.log_likelihoods: list[float] = []

    @property
    def transformations(self) -> int:
        return self.rotations * self.polarities

    @property
    def channels(self) -> int:
        return self.parts * self.transformations

    # ------------------------------------------------------------------ training data
    def complete_patches(
        self, images: torch.Tensor, edges: Edges, generator: torch.Generator, chunk: int = 256
    ) -> torch.Tensor:
        """Complete samples [K, P, 8 S S] (uint8) of random non-blank patches of ``images`` (1.4, A.1)."""
        size, blocks = self.patch_size, self.transformations
        height, width = images.shape[-2:]
        kept = []
        for start in range(0, images.shape[0], chunk):
            batch = images[start : start + chunk]
            maps = edges(batch)
            positions = _patch_positions(
                batch.shape[0], height, width, size, self.patches_per_image, generator
            )
            plain = extract_patches(maps, positions, size)  # [n, k, D]
            keep = plain.sum(dim=-1) >= self.min_edges  # blank patches teach nothing (public code)
            if blocks == 1:
                kept.append(plain[keep][:, None].to(torch.uint8))
                continue
            centres = positions.float() + (size - 1) / 2
            kept.append(self._transformed(batch, maps, centres, edges)[keep].to(torch.uint8))
        return (
            torch.cat(kept) if kept else torch.zeros(0, blocks, ORIENTATIONS * size * size, dtype=torch.uint8)
        )

    def _transformed(
        self, images: torch.Tensor, maps: torch.Tensor, centres: torch.Tensor, edges: Edges
    ) -> torch.Tensor:
        """Every block [n, k, P, D] of the complete samples of the patches centred at ``centres`` [n, k, 2] of
        each image; block index R t + r (rotation r, polarity t)."""
        size, rotations = self.patch_size, self.rotations
        count, per_image = centres.shape[:2]
        angles = torch.arange(rotations) * (2 * math.pi / rotations)
        margin = 2 + edges.radius  # an edge at z reads z + 2u, spreading reaches r more
        crop = size + 2 * margin if self.transform == "recompute" else size
        grids = _rotated_grids(centres.flatten(0, 1), angles, crop, *images.shape[-2:])  # [n k, R, c, c, 2]
        # One grid_sample per image over all its windows (stacked along the rows): no per-window image copies.
        grids = grids.view(count, per_image * rotations * crop, crop, 2)
        blocks = []
        for polarity in range(self.polarities):
            if self.transform == "recompute":
                source = images if polarity == 0 else 1 - images
                windows = F.grid_sample(
                    source, grids, mode="bilinear", padding_mode="border", align_corners=False
                )
                windows = windows.view(count, -1, per_image * rotations, crop, crop).transpose(1, 2)
                windows = windows.reshape(count * per_image * rotations, -1, crop, crop)
                window_maps = edges(windows)[..., margin : margin + size, margin : margin + size]
            else:  # option (a): move the edge map, then relabel its orientations
                moved = F.grid_sample(maps, grids, mode="nearest", padding_mode="zeros", align_corners=False)
                moved = moved.view(count, ORIENTATIONS, per_image * rotations, crop, crop).transpose(1, 2)
                window_maps = moved.reshape(count * per_image * rotations, ORIENTATIONS, crop, crop)
                steps = (torch.arange(rotations) * (ORIENTATIONS // rotations)).repeat(count * per_image)
                order = torch.stack([edge_permutation(int(s)) for s in steps])  # [n k R, 8]
                if polarity:
                    order = order[:, polarity_permutation()]
                window_maps = window_maps.gather(1, order.view(-1, ORIENTATIONS, 1, 1).expand_as(window_maps))
            blocks.append(window_maps.reshape(count, per_image, rotations, -1))
        return torch.cat(blocks, dim=2)

    # ------------------------------------------------------------------ fitting and coding
    def fit(self, images: torch.Tensor, edges: Edges) -> Mixture:
        """Fit the parts on random patches of ``images`` [N, C, H, W] (no labels)."""
        generator = torch.Generator().manual_seed(self.seed)
        samples = self.complete_patches(images, edges, generator)
        if samples.shape[0] < self.parts:
            raise ValueError(
                f"only {samples.shape[0]} non-blank {self.patch_size}x{self.patch_size} patches for {self.parts} "
                "parts: lower --min-edges or --parts, or give more images"
            )
        table = cyclic_group_table([self.rotations, self.polarities])
        model = PermutationMM(self.parts, self.transformations, table, self.iterations, self.eps, self.seed)
        model.fit(samples)
        self.log_likelihoods = model.log_likelihoods
        self.mu = model.parts().view(self.channels, ORIENTATIONS, self.patch_size, self.patch_size)
        return self

    def code(self, maps: torch.Tensor, chunk: int = 128) -> torch.Tensor:
        """One-hot codes of the maximum-likelihood part at every patch position (1.2), OR-pooled: uint8
        [N, R T M, ceil(H'/pool), ceil(W'/pool)] with H' = H - S + 1."""
        assert self.mu is not None, "fit first"
        weight = torch.log(self.mu) - torch.log1p(-self.mu)
        bias = torch.log1p(-self.mu).flatten(1).sum(dim=1)
        out = []
        for start in range(0, maps.shape[0], chunk):
            scores = F.conv2d(maps[start : start + chunk].float(), weight, bias)  # log p(patch | part), (1.1)
            best = scores.argmax(dim=1, keepdim=True)
            one_hot = torch.zeros_like(scores).scatter_(1, best, 1.0)
            out.append(or_pool(one_hot, self.pool).to(torch.uint8))
        return torch.cat(out)

    def state(self) -> dict[str, torch.Tensor]:
        assert self.mu is not None, "fit first"
        return {"mu": self.mu}

    def load(self, state: dict[str, torch.Tensor]) -> Mixture:
        self.mu = state["mu"].float()
        return self


class RotMix(Mixture):
    """The Bernoulli mixture with a latent rotation (§1.2.3-1.2.5, §1.2.8): R M parts at test time."""

    def __init__(self, parts: int, rotations: int = 16, **options) -> None:
        super().__init__(parts, rotations=rotations, **options)
