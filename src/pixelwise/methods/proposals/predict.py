"""From a forward pass to ranked object proposals (Long thesis §4.3.5, Table 4.2).

Per pathway: region logits binarised at p = 0.5 on the coarse grid, centres kept on the density lattice, NMS on the
coarse masks in the order of the scoring pathway (:func:`~.nms.grid_nms`), then each kept region's logits are
upsampled bilinearly (the training geometry, :mod:`.regions`) and binarised into a full-resolution
:class:`~pixelwise.metrics.proposals.WindowMask`, best first.

Density (Table 4.2, "stride at the lowest layer"): with the lowest pathway's natural stride s0 and a requested
lowest stride L (a multiple of s0), every pathway keeps every (L / s0)-th centre per axis; the pyramid doubles its
stride per level, so each higher pathway is then at twice the previous stride, as in the table. Subsampling after
the transpose is exact: the convolution stays dense, so p(x + Delta, .) exists for every kept x.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pixelwise.methods.proposals.model import RegionNet
from pixelwise.methods.proposals.nms import GridRegions, grid_nms
from pixelwise.methods.proposals.regions import Window, region_patches, upsample_regions
from pixelwise.metrics.proposals import WindowMask


@dataclass(frozen=True)
class ProposalOptions:
    """How proposals are read out: NMS IoU (None: off), how many to keep, the density's lowest stride (None: the
    natural one)."""

    nms_threshold: float | None = 0.7
    top_k: int = 1000
    lowest_stride: int | None = None


@dataclass(frozen=True)
class Proposals:
    """One image's proposals, best first: full-resolution window ``masks``, objectness ``scores``, the pathway
    (``levels``) and centre cell (``cells``) of each."""

    masks: list[WindowMask]
    scores: list[float]
    levels: list[int]
    cells: list[tuple[int, int]]


def pathway_windows(model: RegionNet) -> list[Window]:
    return [Window(grid, size) for grid, size in zip(model.grids, model.config.windows)]


def density_step(windows: list[Window], lowest_stride: int | None) -> int:
    """Centres kept per axis: every k-th, k = lowest_stride / (the lowest pathway's stride)."""
    natural = min(w.grid.stride for w in windows)
    if lowest_stride is None:
        return 1
    if lowest_stride % natural:
        raise ValueError(f"--lowest-stride must be a multiple of the finest pathway's stride {natural}")
    return lowest_stride // natural


def grid_regions(
    logits: torch.Tensor, score: torch.Tensor, window: Window, image_size: tuple[int, int], step: int
) -> GridRegions:
    """One image's pathway (logits [W^2, h, w], objectness [1, h, w]) as NMS candidates."""
    size, (h, w) = window.size, logits.shape[-2:]
    masks = (logits > 0).permute(1, 2, 0).reshape(h, w, size, size)
    rows, cols = window.centre_pixels(h), window.centre_pixels(w)
    inside = ((rows >= 0) & (rows < image_size[0]))[:, None] & ((cols >= 0) & (cols < image_size[1]))[None, :]
    lattice = torch.zeros(h, w, dtype=torch.bool)
    lattice[::step, ::step] = True
    valid = inside & lattice & masks.flatten(2).any(-1)
    return GridRegions(masks, torch.sigmoid(score[0].float()), window.grid.stride, window.grid.offset, valid)


def window_masks(logits: torch.Tensor, window: Window, cells: list[tuple[int, int]]) -> list[WindowMask]:
    """Full-resolution masks of regions ``cells`` (bilinear upsampling of their logits, binarised at p = 0.5)."""
    if not cells:
        return []
    rows, cols = (torch.tensor(v) for v in zip(*cells))
    masks = upsample_regions(region_patches(logits, rows, cols).float(), window) > 0
    s, corner = window.grid.stride, window.origin + window.first
    return [WindowMask(mask, int(corner + s * i), int(corner + s * j)) for mask, (i, j) in zip(masks, cells)]


def ranked_masks(logits: list[torch.Tensor], windows: list[Window], kept: list[tuple[int, int, int]]):
    """The kept (level, i, j) as window masks, in NMS order, upsampled one batch per pathway."""
    out: list[WindowMask | None] = [None] * len(kept)
    for level, window in enumerate(windows):
        mine = [n for n, (lv, _, _) in enumerate(kept) if lv == level]
        for n, mask in zip(mine, window_masks(logits[level], window, [kept[n][1:] for n in mine])):
            out[n] = mask
    return out


def read_out(
    outputs: dict[str, list[torch.Tensor]],
    windows: list[Window],
    image_size: tuple[int, int],
    options: ProposalOptions = ProposalOptions(),
) -> list[Proposals]:
    """Ranked proposals of every image of a forward pass ``outputs`` (``RegionNet``'s) on images of ``image_size``."""
    step = density_step(windows, options.lowest_stride)
    found = []
    for index in range(len(outputs["regions"][0])):
        logits = [r[index].float().cpu() for r in outputs["regions"]]
        levels = [
            grid_regions(p, s[index].cpu(), window, image_size, step)
            for p, s, window in zip(logits, outputs["scores"], windows)
        ]
        kept = grid_nms(levels, options.nms_threshold, options.top_k)
        found.append(
            Proposals(
                ranked_masks(logits, windows, kept),
                [float(levels[lv].scores[i, j]) for lv, i, j in kept],
                [lv for lv, _, _ in kept],
                [(i, j) for _, i, j in kept],
            )
        )
    return found


@torch.no_grad()
def propose(
    model: RegionNet, images: torch.Tensor, options: ProposalOptions = ProposalOptions()
) -> list[Proposals]:
    """Ranked proposals of every image [N, C, H, W] in [0, 1]."""
    model.eval()
    image_size = (int(images.shape[-2]), int(images.shape[-1]))
    return read_out(model(images), pathway_windows(model), image_size, options)
