"""The 'mix' step of Mix-and-Match (Zhan et al. 2018, §3 "The Mix Step"): patches sampled across images.

"A large number of image patches with various spatial sizes are randomly sampled from a batch of images. Heavily
overlapped patches are discarded. [...] assigned with unique class labels based on the corresponding label map.
The patches across all images are mixed to decouple any intra-image dependency."

Per image, K square patches of a random side (uniform in ``sides``), each centred on a labelled pixel whose class
is the patch's label (§4: "the central pixel labels"), resized to ``size`` x ``size``. Gaps the paper leaves are
filled from the authors' code (specs/mix-and-match.md): a patch is never centred on an ignore pixel; where a
background class exists about ``background_share`` of the patches are centred on it; overlap rejection draws
``oversample`` x K candidates, keeps them greedily unless more than ``max_overlap`` of a candidate's area (inside
the image) is already covered by kept patches, and refills from the rejected ones (least covered first) if too
few survive; a crop that leaves the image is zero-padded (black, in the [0, 1] image). The patches of all B
images form one pool: one graph per iteration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align


@dataclass(frozen=True)
class PatchSampler:
    """How the 'mix' step draws patches (defaults: the paper's K = 10 at a CamVid-sized 180 x 240 crop)."""

    patches_per_image: int = 10
    sides: tuple[int, int] = (24, 96)  # min, max side in pixels (authors: 64-256 on 512 crops)
    size: int = 64  # output side (paper: 128 on 512 crops)
    max_overlap: float = 0.6
    oversample: int = 5
    background_class: int | None = None
    background_share: float = 0.1
    ignore_index: int = 255

    def __post_init__(self) -> None:
        low, high = self.sides
        if not 1 <= low <= high:
            raise ValueError(f"patch sides must satisfy 1 <= min <= max, got {self.sides}")
        if self.patches_per_image < 1 or self.size < 1 or self.oversample < 1:
            raise ValueError("patches per image, patch size and oversampling must be >= 1")
        if not 0.0 <= self.max_overlap <= 1.0 or not 0.0 <= self.background_share <= 1.0:
            raise ValueError("max overlap and background share are fractions in [0, 1]")

    @classmethod
    def from_options(cls, options: dict[str, Any], ignore_index: int = 255) -> PatchSampler:
        """From ``pixelwise tune`` options (a :class:`~pixelwise.engine.config.TuneConfig` as a dict); missing
        keys keep the defaults."""
        defaults = cls()
        background = options.get("background_class", -1)
        return cls(
            patches_per_image=options.get("patches_per_image", defaults.patches_per_image),
            sides=tuple(options.get("patch_sides", defaults.sides)),  # type: ignore[arg-type]
            size=options.get("patch_size", defaults.size),
            max_overlap=options.get("max_overlap", defaults.max_overlap),
            oversample=options.get("oversample", defaults.oversample),
            background_class=background if background is not None and background >= 0 else None,
            background_share=options.get("background_share", defaults.background_share),
            ignore_index=ignore_index,
        )


@dataclass
class Patches:
    """The mixed patch pool of one iteration: N nodes of the graph."""

    crops: torch.Tensor  # [N, C, size, size] in the images' range, zero outside the image
    labels: torch.Tensor  # [N] class of the centre pixel
    image_index: torch.Tensor  # [N] which image of the batch each patch comes from
    boxes: torch.Tensor  # [N, 3] (top, left, side); the centre pixel is (top + side // 2, left + side // 2)
    refilled: torch.Tensor  # [N] bool: kept only to reach K, although it broke the overlap rule

    def __len__(self) -> int:
        return int(self.labels.numel())


def _draw_centres(
    label: torch.Tensor, count: int, sampler: PatchSampler, generator: torch.Generator | None
) -> torch.Tensor:
    """``count`` flat pixel indices of labelled pixels (never ignore), ~background_share on the background."""
    flat = label.flatten()
    valid = flat != sampler.ignore_index
    if sampler.background_class is not None:
        background = flat == sampler.background_class
        back, fore = background.nonzero().flatten(), (valid & ~background).nonzero().flatten()
        if len(back) and len(fore):  # both present: each patch picks its pool by the background share
            on_background = torch.rand(count, generator=generator) < sampler.background_share
            back = back[torch.randint(len(back), (count,), generator=generator)]
            fore = fore[torch.randint(len(fore), (count,), generator=generator)]
            return torch.where(on_background, back, fore)
    pool = valid.nonzero().flatten()
    return pool[torch.randint(len(pool), (count,), generator=generator)]


def _select_boxes(
    boxes: torch.Tensor, height: int, width: int, sampler: PatchSampler
) -> tuple[list[int], list[bool]]:
    """Greedy overlap rejection over candidate boxes [M, 3] (top, left, side); returns (kept indices, refilled)."""
    covered = torch.zeros(height, width, dtype=torch.bool)
    kept: list[int] = []
    rejected: list[tuple[float, int]] = []
    for index, (top, left, side) in enumerate(boxes.tolist()):
        if len(kept) == sampler.patches_per_image:
            break
        y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + side, height), min(left + side, width)
        # Covered area / own area, both inside the image: a patch hanging over the border is judged by the
        # image content it shows (zero padding is never "covered", so it must not dilute the fraction).
        overlap = covered[y0:y1, x0:x1].sum().item() / max(1, (y1 - y0) * (x1 - x0))
        if overlap > sampler.max_overlap:
            rejected.append((overlap, index))
            continue
        kept.append(index)
        covered[y0:y1, x0:x1] = True
    refill = [index for _, index in sorted(rejected)][: sampler.patches_per_image - len(kept)]
    return kept + refill, [False] * len(kept) + [True] * len(refill)


def sample_patches(
    images: torch.Tensor,
    labels: torch.Tensor,
    sampler: PatchSampler,
    generator: torch.Generator | None = None,
) -> Patches:
    """The mix step on a batch: ``images`` [B, C, H, W], ``labels`` [B, H, W] -> the pooled patches of all B images.

    Geometry is drawn on the CPU (``generator``, default: torch's global RNG, so a resumed run repeats it); the
    crops are cut and resized on the images' device in one ``roi_align`` call. Images without a labelled pixel
    give no patch.
    """
    images, labels = images.as_subclass(torch.Tensor), labels.as_subclass(torch.Tensor)  # plain tensors
    batch, _, height, width = images.shape
    labels_cpu = labels.detach().to("cpu", torch.long)
    low, high = sampler.sides
    candidates = sampler.patches_per_image * sampler.oversample
    rows: list[torch.Tensor] = []
    refilled: list[bool] = []
    for b in range(batch):
        if not (labels_cpu[b] != sampler.ignore_index).any():
            continue
        centres = _draw_centres(labels_cpu[b], candidates, sampler, generator)
        sides = torch.randint(low, high + 1, (candidates,), generator=generator)
        cy, cx = centres // width, centres % width
        boxes = torch.stack([cy - sides // 2, cx - sides // 2, sides], dim=1)
        kept, refill = _select_boxes(boxes, height, width, sampler)
        kept_t = torch.tensor(kept, dtype=torch.long)
        centre_labels = labels_cpu[b].flatten()[centres[kept_t]]  # §4: the patch's label is its centre's
        rows.append(torch.cat([torch.full((len(kept), 1), b), boxes[kept_t], centre_labels[:, None]], dim=1))
        refilled += refill
    if not rows:
        empty = torch.zeros(0, dtype=torch.long)
        return Patches(
            images.new_zeros(0, images.shape[1], sampler.size, sampler.size),
            empty.to(labels.device),
            empty,
            torch.zeros(0, 3, dtype=torch.long),
            torch.zeros(0, dtype=torch.bool),
        )
    table = torch.cat(rows)  # [N, 5]: image, top, left, side, label
    return Patches(
        crop_patches(images, table[:, 0], table[:, 1:4], sampler.size),
        table[:, 4].to(labels.device),
        table[:, 0],
        table[:, 1:4],
        torch.tensor(refilled),
    )


def crop_patches(
    images: torch.Tensor, image_index: torch.Tensor, boxes: torch.Tensor, size: int
) -> torch.Tensor:
    """Square crops (top, left, side) of ``images`` resized to ``size``; pixels outside the image are zero.

    The batch is zero-padded by the largest half-side so that every box lies inside: roi_align then never clamps
    to the border. With ``aligned=True`` and side == size it returns the pixels unchanged; when shrinking it
    averages ceil(side / size)^2 samples per output pixel (an area filter against aliasing).
    """
    pad = int(boxes[:, 2].max()) + 1
    padded = F.pad(images, (pad, pad, pad, pad))
    top, left, side = (boxes[:, i].to(images.device, torch.float32) + (pad if i < 2 else 0) for i in range(3))
    rois = torch.stack(
        [image_index.to(images.device, torch.float32), left, top, left + side, top + side], dim=1
    )
    return roi_align(padded, rois.to(padded.dtype), (size, size), 1.0, -1, aligned=True)
