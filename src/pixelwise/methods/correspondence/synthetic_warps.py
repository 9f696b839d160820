"""Synthetic warps with exact flow: the spec's P2 substitute for §2.2's intraclass pairs (same scene, exact GT).

A pair is (B, A) with B(x) = A(x + u(x)): B is image A read at x + u(x), so the ground-truth flow from B to A is u,
in the convention of :mod:`.warp` and :meth:`.flow.Flow.dense` ((rows, cols) pixels, read backwards). u is

- an **affine** map about the image centre: scale in ``scale``, rotation up to ``rotation`` degrees, shift up to
  ``shift`` of the image size per axis; plus
- a smooth **elastic** field: Gaussian noise on a coarse ``elastic_cells`` x ``elastic_cells`` lattice, upsampled
  bicubically and scaled so its largest displacement is ``elastic`` px (spec: <= 8 px).

B then gets **photometric jitter**, so matching cannot rely on equal pixel values: a gain, a gamma, a Gaussian
blur and additive Gaussian noise. Labels of B are A's labels read at the nearest pixel of x + u(x) (``ignore`` where
that leaves A), which is what a perfect flow would transfer (spec P2 label transfer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from pixelwise.methods.correspondence.warp import inside, warp_image, warp_labels


@dataclass(frozen=True)
class WarpConfig:
    """Ranges of the random warp and photometric jitter (spec P2)."""

    scale: tuple[float, float] = (0.9, 1.1)
    rotation: float = 10.0  # degrees, either way
    shift: float = 0.1  # of the image height / width, either way
    elastic: float = 8.0  # px: the largest elastic displacement
    elastic_cells: int = 4
    gain: tuple[float, float] = (0.8, 1.2)
    gamma: tuple[float, float] = (0.8, 1.25)
    blur: tuple[float, float] = (0.0, 1.0)  # Gaussian sigma, px
    noise: float = 0.02  # std of additive noise, images in [0, 1]


@dataclass(frozen=True)
class WarpPair:
    """``warped`` B [C, H, W] and its ``labels`` [H, W]; ``flow`` u [2, H, W] from B to A (rows, cols);
    ``valid`` [H, W]: pixels whose x + u(x) lies inside A (the only ones with a true match)."""

    warped: torch.Tensor
    labels: torch.Tensor | None
    flow: torch.Tensor
    valid: torch.Tensor


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def affine_flow(
    size: tuple[int, int], scale: float, angle: float, shift: tuple[float, float]
) -> torch.Tensor:
    """u [2, H, W] of x_A = R(angle) x_B / scale about the centre, plus ``shift`` (rows, cols) px: B is A zoomed
    by ``scale`` and turned by ``angle`` radians."""
    height, width = size
    centre = torch.tensor([(height - 1) / 2, (width - 1) / 2], dtype=torch.float64)
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    y, x = rows - centre[0], cols - centre[1]
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    source_rows = cos * y - sin * x + centre[0] + shift[0]
    source_cols = sin * y + cos * x + centre[1] + shift[1]
    return torch.stack([source_rows - rows, source_cols - cols]).float()


def elastic_flow(
    size: tuple[int, int], magnitude: float, cells: int, generator: torch.Generator
) -> torch.Tensor:
    """A smooth random field [2, H, W] whose largest displacement is ``magnitude`` px (0: none)."""
    if magnitude <= 0:
        return torch.zeros(2, *size)
    coarse = torch.randn(1, 2, cells, cells, generator=generator)
    field = F.interpolate(coarse, size=size, mode="bicubic", align_corners=True)[0]
    return field * (magnitude / field.norm(dim=0).max().clamp(min=1e-8))


def random_flow(size: tuple[int, int], config: WarpConfig, generator: torch.Generator) -> torch.Tensor:
    """u [2, H, W]: a random affine map plus an elastic field (:class:`WarpConfig`)."""
    scale = _uniform(*config.scale, generator)
    angle = math.radians(_uniform(-config.rotation, config.rotation, generator))
    shift = (
        _uniform(-config.shift, config.shift, generator) * size[0],
        _uniform(-config.shift, config.shift, generator) * size[1],
    )
    return affine_flow(size, scale, angle, shift) + elastic_flow(
        size, config.elastic, config.elastic_cells, generator
    )


def photometric_jitter(image: torch.Tensor, config: WarpConfig, generator: torch.Generator) -> torch.Tensor:
    """``image`` [C, H, W] in [0, 1] with a random gain, gamma, blur and noise, clamped to [0, 1]."""
    out = (image * _uniform(*config.gain, generator)).clamp(0, 1) ** _uniform(*config.gamma, generator)
    sigma = _uniform(*config.blur, generator)
    if sigma > 0.05:
        kernel = 2 * math.ceil(3 * sigma) + 1
        out = TF.gaussian_blur(out, [kernel, kernel], [sigma, sigma])
    if config.noise > 0:
        out = out + config.noise * torch.randn(out.shape, generator=generator)
    return out.clamp(0, 1)


def warp_pair(
    image: torch.Tensor,
    labels: torch.Tensor | None = None,
    config: WarpConfig = WarpConfig(),
    generator: torch.Generator | None = None,
    ignore_index: int = 255,
) -> WarpPair:
    """B = jitter(A(x + u(x))) of image A [C, H, W] in [0, 1] (and its ``labels`` [H, W]) with exact flow u."""
    if image.dim() != 3:
        raise ValueError(f"image must be [C, H, W], got {tuple(image.shape)}")
    generator = generator or torch.Generator().manual_seed(0)
    size = (int(image.shape[1]), int(image.shape[2]))
    flow = random_flow(size, config, generator)
    warped = photometric_jitter(warp_image(image, flow), config, generator)
    rows = torch.arange(size[0]).view(-1, 1) + flow[0]
    cols = torch.arange(size[1]).view(1, -1) + flow[1]
    moved = None if labels is None else warp_labels(labels, flow, ignore_index)
    return WarpPair(warped, moved, flow, inside(rows, cols, size))
