"""The region loss (Long thesis §4.3.6, §4.4.1) and the scoring pathway's targets.

Per pathway and region centre g, and window pixel g + r: a binary logistic term, positive iff g + r lies in the
segment that contains g. Region g enters the loss only if (a) g lies in a segment **and** (b) that segment fits
entirely inside g's window, so regions are never trained to cut objects off at their window border and small
pathways can specialise on small objects. Void pixels (255) and pixels outside the image are not scored. The
ground truth is never downsampled: the coarse logits are upsampled bilinearly on the fly (:mod:`.regions`) and the
gradient flows back through the upsampling.

The loss is the mean over all (region, pixel) terms of the batch (spec: "ours"); the scoring pathway adds the mean
BCE of its objectness logit over every centre inside the image and off void, positive iff (a) and (b) hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pixelwise.methods.proposals.regions import Window, label_windows, region_patches, upsample_regions

VOID = 255


@dataclass(frozen=True)
class RegionTargets:
    """One image and pathway: which centres are scored (``scored`` [h, w]: inside the image, not void), which
    enter the region loss (``trained`` [h, w]: conditions (a) and (b)), and the segment id under each [h, w]."""

    scored: torch.Tensor
    trained: torch.Tensor
    ids: torch.Tensor


def segment_boxes(instances: torch.Tensor, void: int = VOID) -> dict[int, tuple[int, int, int, int]]:
    """(top, left, bottom, right) pixel extents, inclusive, of every segment id of [H, W] (0 and void are none)."""
    boxes = {}
    for value in instances.unique().tolist():
        if value in (0, void):
            continue
        rows, cols = torch.nonzero(instances == value, as_tuple=True)
        boxes[int(value)] = (int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max()))
    return boxes


def region_targets(
    instances: torch.Tensor,
    window: Window,
    cells: tuple[int, int],
    void: int = VOID,
    boxes: dict[int, tuple[int, int, int, int]] | None = None,
) -> RegionTargets:
    """:class:`RegionTargets` of an instance map [H, W] for a pathway grid of ``cells`` (h, w) centres
    (``boxes``: :func:`segment_boxes` of the map, if already computed)."""
    height, width = instances.shape
    rows, cols = window.centre_pixels(cells[0]), window.centre_pixels(cells[1])
    inside = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
    ids = torch.zeros(cells, dtype=torch.long)
    r_in, c_in = rows.clamp(0, height - 1), cols.clamp(0, width - 1)
    ids = torch.where(inside, instances[r_in[:, None], c_in[None, :]].long(), torch.full_like(ids, void))
    scored = inside & (ids != void)
    trained = scored & (ids != 0)
    low, high = window.first, window.first + window.pixels - 1  # window pixels relative to the centre
    boxes = segment_boxes(instances, void) if boxes is None else boxes
    for value, (top, left, bottom, right) in boxes.items():
        mine = trained & (ids == value)
        if not bool(mine.any()):
            continue
        fits_rows = (rows + low <= top) & (rows + high >= bottom)
        fits_cols = (cols + low <= left) & (cols + high >= right)
        trained = torch.where(mine, fits_rows[:, None] & fits_cols[None, :], trained)
    return RegionTargets(scored, trained, ids)


@dataclass
class LossSums:
    """Sums and counts of the terms over pathways and images, averaged once at the end."""

    region: torch.Tensor
    region_terms: int = 0
    score: torch.Tensor | None = None
    score_terms: int = 0

    def total(self, score_weight: float = 1.0) -> torch.Tensor:
        loss = self.region / max(self.region_terms, 1)
        if self.score is not None and self.score_terms:
            loss = loss + score_weight * self.score / self.score_terms
        return loss


def add_pathway_loss(
    sums: LossSums,
    logits: torch.Tensor,
    score: torch.Tensor,
    instances: torch.Tensor,
    window: Window,
    void: int = VOID,
    boxes: dict[int, tuple[int, int, int, int]] | None = None,
) -> RegionTargets:
    """Add one image's pathway terms to ``sums``: region logits [W^2, h, w], objectness [1, h, w], instances
    [H, W] on the CPU."""
    cells = (int(logits.shape[-2]), int(logits.shape[-1]))
    targets = region_targets(instances, window, cells, void, boxes)
    scored = targets.scored.to(score.device)
    if bool(scored.any()):
        objectness = score[0][scored].float()
        wanted = targets.trained.to(score.device)[scored].float()
        term = F.binary_cross_entropy_with_logits(objectness, wanted, reduction="sum")
        sums.score = term if sums.score is None else sums.score + term
        sums.score_terms += int(scored.sum())
    rows, cols = torch.nonzero(targets.trained, as_tuple=True)
    if len(rows):
        masks = upsample_regions(
            region_patches(logits, rows.to(logits.device), cols.to(logits.device)), window
        )
        truth = label_windows(instances, window, cells)[rows, cols]  # [M, Ws, Ws]
        ids = targets.ids[rows, cols].to(torch.int32)[:, None, None]
        weight = ((truth != void) & (truth >= 0)).to(masks.device)
        positive = (truth == ids).to(masks.device)
        term = F.binary_cross_entropy_with_logits(
            masks.float(), positive.float(), weight.float(), reduction="sum"
        )
        sums.region = sums.region + term
        sums.region_terms += int(weight.sum())
    return targets


def region_loss(
    outputs: dict[str, list[torch.Tensor]],
    instances: torch.Tensor,
    windows: list[Window],
    score_weight: float = 1.0,
    void: int = VOID,
) -> torch.Tensor:
    """The batch's loss: every pathway of every image (instances [N, H, W]); see the module docstring."""
    first = outputs["regions"][0]
    sums = LossSums(first.new_zeros(()).float())
    for index, image_instances in enumerate(instances.cpu()):
        boxes = segment_boxes(image_instances, void)
        for logits, score, window in zip(outputs["regions"], outputs["scores"], windows):
            add_pathway_loss(sums, logits[index], score[index], image_instances, window, void, boxes)
    if sums.region_terms == 0 and sums.score_terms == 0:  # keep the graph: every parameter gets a (zero) grad
        return sum(o.sum() for o in outputs["regions"] + outputs["scores"]) * 0.0
    return sums.total(score_weight)
