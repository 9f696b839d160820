"""2x2 jigsaw puzzles as a self-supervised proxy task (Larsson thesis Ch. 4, §4.7.1 "Jigsaw").

The thesis departs from Noroozi & Favaro's 3x3 puzzle so that the pieces can be the network's canonical input
size and every layer, fc6-7 included, is pretrained: a 500x500 image gives a 2x2 puzzle of 227x227 pieces, the
spare pixels being "wiggle room between the pieces", and the task is to classify which of **all 24
permutations** the pieces were shuffled with. Scaled to 180x240 CamVid frames (spec "Testing it here" B/J): a
168x168 crop, four 76x76 tiles, up to 16 px of wiggle.

Geometry. The crop is split into four ``crop // 2`` quadrants in raster order (0 top-left, 1 top-right, 2
bottom-left, 3 bottom-right). Each tile is cut from its own quadrant, jittered independently by up to
``wiggle // 2`` px per axis around the quadrant's centre, so the gap between two neighbouring tiles varies over
a range of ``wiggle`` px (with the defaults, 0 to 16 px: the tiles use the whole crop). The jitter and the gaps
keep a solver from matching exact edges and positions; the thesis names no jitter law, so it is uniform.

Labels. Label ``k`` presents the tiles in the order ``PERMUTATIONS[k]``: slot ``j`` holds quadrant
``PERMUTATIONS[k][j]``, so ``tiles[:, argsort(PERMUTATIONS[k])]`` is back in raster order.

Network (spec gap: "each tile goes through the shared base, top features are concatenated in permuted order,
then a linear 24-way head"). All N x 4 tiles run through the shared backbone as one batch; the deepest tap is
globally average-pooled to C per tile; the four vectors are concatenated in the order the tiles are presented;
FC(4C -> hidden, ReLU) stands in for the fc6-7 the thesis pretrains, then a linear 24-way layer (``hidden=0``:
the plain linear head of the spec).

Input. Joint training shares one 3-channel conv1 with colorization, which feeds the grey image replicated to 3
channels (spec "C"), so ``grey=True`` feeds each tile's lightness (R+G+B)/3, standardised with the grey
statistics and replicated, i.e. three identical channels. ``grey=False`` keeps RGB, which invites the
chromatic-aberration shortcut behind the thesis's green-purple conv1 edges (Fig. 4.6); both are runnable.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.models.inputs import InputNormalizer
from pixelwise.models.taps import FeatureTaps

TILES = 4  # a 2x2 grid
# Fixed order (lexicographic, from itertools) so a label means the same permutation in every run and checkpoint.
PERMUTATIONS: tuple[tuple[int, ...], ...] = tuple(itertools.permutations(range(TILES)))
CLASSES = len(PERMUTATIONS)  # 24: all of them (§4.7.1), unlike the 3x3 original's chosen subset
CHANCE_LOSS = math.log(CLASSES)  # cross-entropy of a uniform guess

Taps = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]
Normalise = Callable[[torch.Tensor], torch.Tensor]


def permutation_table(device: torch.device | str | None = None) -> torch.Tensor:
    """``PERMUTATIONS`` as an int64 tensor [24, 4]: row k is the quadrant shown in each slot under label k."""
    return torch.tensor(PERMUTATIONS, dtype=torch.long, device=device)


def check_geometry(crop: int, tile: int, wiggle: int) -> None:
    """Refuse puzzle geometries whose tiles would not fit their quadrants (see the module docstring)."""
    if tile < 1 or wiggle < 0:
        raise ValueError(f"jigsaw tile must be >= 1 and wiggle >= 0, got tile={tile}, wiggle={wiggle}")
    if wiggle % 2:
        # Each tile moves by wiggle/2: an odd wiggle would be rounded silently.
        raise ValueError(f"jigsaw wiggle must be even (each tile jitters by wiggle/2), got {wiggle}")
    quadrant = crop // 2
    if tile + wiggle // 2 > quadrant:
        raise ValueError(
            f"jigsaw tiles of {tile} px with {wiggle} px wiggle need quadrants of >= {tile + wiggle // 2} px, "
            f"but a {crop} px crop has {quadrant} px quadrants; use crop >= {2 * (tile + wiggle // 2)}, "
            f"a smaller tile or less wiggle"
        )


def tile_corners(
    batch: int,
    size: tuple[int, int],
    crop: int = 168,
    tile: int = 76,
    wiggle: int = 16,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Top-left pixel (row, col) of each quadrant's tile, in image coordinates: int64 [N, 4, 2] on the CPU.

    Per image: a uniformly random ``crop`` x ``crop`` window inside ``size`` = (H, W), then each quadrant's tile
    at a uniform jitter of 0..``wiggle // 2`` px per axis from a band centred in its quadrant. Drawn on the CPU
    with ``generator`` (default: torch's global RNG, so a resumed run repeats it), like the Mix-and-Match sampler.
    """
    check_geometry(crop, tile, wiggle)
    height, width = size
    if height < crop or width < crop:
        raise ValueError(
            f"images are {height}x{width}, smaller than the {crop}x{crop} jigsaw crop; raise --crop / "
            f"--base-size to at least {crop} {crop}, or build the puzzles with a smaller crop (and tile)"
        )
    quadrant = crop // 2
    jitter = wiggle // 2
    band = (quadrant - tile - jitter) // 2  # where the jitter band starts, centring it in the quadrant
    top = torch.randint(0, height - crop + 1, (batch, 1), generator=generator)
    left = torch.randint(0, width - crop + 1, (batch, 1), generator=generator)
    offsets = torch.randint(0, jitter + 1, (batch, TILES, 2), generator=generator)
    grid = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]]) * quadrant  # quadrant origins, raster order
    return torch.stack([top, left], dim=-1) + grid + band + offsets


def cut_tiles(images: torch.Tensor, corners: torch.Tensor, tile: int) -> torch.Tensor:
    """Square tiles [N, K, C, tile, tile] of ``images`` [N, C, H, W] at top-left ``corners`` [N, K, 2].

    One gather on the images' device (rather than N x K slices), so a GPU batch costs one kernel.
    """
    corners = corners.to(images.device)
    span = torch.arange(tile, device=images.device)
    rows = (corners[..., 0, None] + span)[..., :, None]  # [N, K, tile, 1]
    cols = (corners[..., 1, None] + span)[..., None, :]  # [N, K, 1, tile]
    batch = torch.arange(images.shape[0], device=images.device).view(-1, 1, 1, 1)
    # Advanced indices split by the channel slice put their broadcast dims first: [N, K, tile, tile, C].
    return images[batch, :, rows, cols].permute(0, 1, 4, 2, 3).contiguous()


def jigsaw_puzzles(
    images: torch.Tensor,
    crop: int = 168,
    tile: int = 76,
    wiggle: int = 16,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random 2x2 puzzles (§4.7.1): tiles [N, 4, C, tile, tile] shown in permuted order, labels [N] int64.

    ``images`` [N, C, H, W] on any device; the geometry and labels are drawn on the CPU from ``generator``
    (deterministic given its seed) and both outputs are returned on the images' device.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
    batch = images.shape[0]
    corners = tile_corners(batch, tuple(images.shape[-2:]), crop, tile, wiggle, generator)
    labels = torch.randint(0, CLASSES, (batch,), generator=generator)
    shown = permutation_table()[labels]  # [N, 4]: the quadrant presented in each slot
    corners = corners.gather(1, shown[..., None].expand(-1, -1, 2))
    return cut_tiles(images, corners, tile), labels.to(images.device)


class JigsawHead(nn.Module):
    """Deepest features of the 4 tiles -> global average pool -> concat (presented order) -> FC -> 24 logits.

    ``forward(features)`` takes the tiles' feature maps [N * 4, C, h, w], the 4 tiles of puzzle n in rows
    4n .. 4n+3 in the order they were presented (what running ``tiles.flatten(0, 1)`` through the backbone
    gives), and returns logits [N, 24]. The concatenation, unlike a sum or a pool over tiles, keeps the order,
    which is the whole signal. ``hidden=0`` gives the plain linear 24-way head.
    """

    def __init__(self, channels: int, hidden: int = 512, classes: int = CLASSES) -> None:
        super().__init__()
        self.channels = channels
        width = TILES * channels
        if hidden:
            self.classifier: nn.Module = nn.Sequential(
                nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, classes)
            )
        else:
            self.classifier = nn.Linear(width, classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 4 or features.shape[1] != self.channels or features.shape[0] % TILES:
            raise ValueError(
                f"JigsawHead expects features [N * {TILES}, {self.channels}, h, w] (the tiles of each puzzle in "
                f"consecutive rows), got shape {tuple(features.shape)}"
            )
        pooled = features.mean(dim=(2, 3))  # [N * 4, C]
        return self.classifier(pooled.reshape(-1, TILES * self.channels))


def _deepest(taps: FeatureTaps | Taps, features: Mapping[str, torch.Tensor], stage: str | None) -> str:
    if stage is not None:
        if stage not in features:
            raise ValueError(f"jigsaw stage {stage!r} is not among the taps {list(features)}")
        return stage
    if isinstance(taps, FeatureTaps):
        return taps.names[0]
    return next(iter(features))  # FeatureTaps' convention: deepest first


def jigsaw_loss(
    taps: FeatureTaps | Taps,
    normalise: Normalise,
    head: JigsawHead,
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    grey: bool,
    crop: int = 168,
    tile: int = 76,
    wiggle: int = 16,
    stage: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy over the 24 permutations and the batch accuracy (a detached float tensor) (§4.7.1).

    ``images`` [N, 3, H, W] in [0, 1] (or [N, 1, H, W] when ``grey``); ``normalise`` maps the tiles to backbone
    input: with ``grey`` it receives the lightness [M, 1, t, t] and a 1-channel result is replicated to 3
    (``InputNormalizer(1, ...)``); otherwise it receives RGB (``InputNormalizer(3, ...)``).
    All N x 4 tiles go through ``taps`` in one batch, so BatchNorm sees them together; ``stage`` picks the tap
    the head reads (default: the deepest).
    """
    _check_normaliser(normalise, grey)
    channels = images.shape[1] if images.dim() == 4 else None
    if channels not in ((1, 3) if grey else (3,)):
        raise ValueError(
            f"jigsaw images must be [N, 3, H, W] in [0, 1]{' (or 1-channel when grey)' if grey else ''}, got shape "
            f"{tuple(images.shape)}"
        )
    tiles, labels = jigsaw_puzzles(images, crop, tile, wiggle, generator)
    flat = tiles.flatten(0, 1)  # [N * 4, C, t, t]: puzzle n's tiles in rows 4n .. 4n+3, presented order
    if grey:
        flat = flat.mean(dim=1, keepdim=True)  # lightness (R+G+B)/3, as colorization reads it (§2.3.1)
    inputs = normalise(flat)
    if grey and inputs.shape[1] == 1:
        inputs = inputs.expand(-1, 3, -1, -1)  # the shared conv1 has 3 channels (spec "C")
    features = taps(inputs)
    logits = head(features[_deepest(taps, features, stage)])
    loss = F.cross_entropy(logits.float(), labels)
    accuracy = (logits.detach().argmax(dim=1) == labels).float().mean()
    return loss, accuracy


def _check_normaliser(normalise: Normalise, grey: bool) -> None:
    # InputNormalizer(3) would broadcast over a 1-channel tile without complaint (and (1) would reduce RGB to
    # grey): a wrong pairing trains silently on the wrong input.
    expected = 1 if grey else 3
    if isinstance(normalise, InputNormalizer) and normalise.in_channels != expected:
        raise ValueError(
            f"jigsaw with grey={grey} needs InputNormalizer({expected}, ...), got "
            f"InputNormalizer({normalise.in_channels}, ...)"
        )


class JigsawProxy(nn.Module):
    """The jigsaw proxy for a shared backbone: its head and input handling, and ``loss(taps, images)``.

    ``loss`` takes ``images`` [N, 3, H, W] in [0, 1], H and W >= ``crop`` (un-normalised: the proxy standardises
    the tiles itself, like every model in :mod:`pixelwise.models.inputs`), and returns ``{'loss', 'accuracy'}``.
    ``taps`` must feed a 3-channel backbone (shared with colorization's replicated grey, spec "C"). Only the head
    holds parameters (the normaliser's buffers are not persistent), so a checkpoint keeps ``taps.backbone.*``
    beside the proxies' heads.
    """

    def __init__(
        self,
        channels: int,
        *,
        hidden: int = 512,
        grey: bool = True,
        crop: int = 168,
        tile: int = 76,
        wiggle: int = 16,
        stage: str | None = None,
    ) -> None:
        super().__init__()
        check_geometry(crop, tile, wiggle)  # at construction, not at the first step
        self.head = JigsawHead(channels, hidden)
        self.grey = grey
        self.crop, self.tile, self.wiggle = crop, tile, wiggle
        self.stage = stage
        # Grey: the statistics a 1-channel model uses, so the 3 replicated channels stay identical (per-channel
        # RGB statistics would make them differ). Stride 1 = no padding: the head pools globally, so tiles need no
        # alignment to the backbone stride, and padding 76 -> 96 would cost 1.6x the compute.
        self.inputs = InputNormalizer(1 if grey else 3, 1)

    @classmethod
    def for_taps(cls, taps: FeatureTaps, **kwargs) -> JigsawProxy:
        """A proxy reading the deepest of ``taps``, sized from its channel count."""
        deepest = taps.names[0]
        return cls(taps.channels[deepest], stage=deepest, **kwargs)

    def loss(
        self, taps: FeatureTaps | Taps, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        loss, accuracy = jigsaw_loss(
            taps,
            self.inputs,
            self.head,
            images,
            generator,
            grey=self.grey,
            crop=self.crop,
            tile=self.tile,
            wiggle=self.wiggle,
            stage=self.stage,
        )
        return {"loss": loss, "accuracy": accuracy}

    def extra_repr(self) -> str:
        return (
            f"grey={self.grey}, crop={self.crop}, tile={self.tile}, wiggle={self.wiggle}, stage={self.stage}"
        )
