"""Relative motion (V) as a self-supervised proxy task (Larsson thesis Ch. 4, §4.7.1 "Video").

The thesis: optical flow (Farnebäck) is associated with a single frame; locations p1 are sampled uniformly,
and each p2 = p1 + two independent Gaussian offsets (rows, columns); the target is the amplitude of the
relative flow |flow(p2) - flow(p1)| placed into one of **32 bins**; the sparse hypercolumns (§2.3.7) of p1 and
p2 are concatenated and fed to FC 1024 (§4.7.2: "a fully connected layer with 1024 channels prior to the task
layer") and a 32-way prediction layer. Only relative flow counts, so adding any constant to the flow field (a
camera translation parallel to the image plane over a scene at one depth) changes no target.

Gaps, ours (spec "Proxy tasks" V):

- The offset spread sigma is not given: ``sigma`` pixels when set, else 1/8 of the image's shorter side (15 px
  at 120x160), far enough that the two points often fall on different surfaces, near enough to share context.
  Offsets are rounded to whole pixels; a p2 outside the image (or on unknown flow) is redrawn, so the offsets
  are a Gaussian truncated to the image.
- The bin edges are not given: equiprobable quantiles of the training targets (:func:`fit_bin_edges`), fitted
  once by :meth:`RelativeFlowProxy.fit_from` and kept in the proxy's ``edges`` buffer (so in checkpoints).
- Unknown flow is NaN (in either component); such pixels are never sampled, as p1 or p2.
- The input is RGB by default (video frames are colour; ``grey=True`` feeds the lightness replicated to the
  shared 3-channel conv1, as colorization does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from pixelwise.models.heads.hypercolumn import sample_hypercolumns
from pixelwise.models.inputs import InputNormalizer
from pixelwise.models.receptive_field import Grid
from pixelwise.models.taps import FeatureTaps

BINS = 32  # §4.7.1
SIGMA_FRACTION = 1 / 8  # ours: sigma = this x the shorter image side when not given
MAX_REDRAWS = (
    32  # p2 redraws before a pair falls back to p2 = p1 (only when almost nothing around p1 is valid)
)

Taps = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]


def default_sigma(size: tuple[int, int]) -> float:
    """The offset spread in pixels for an image of ``size`` = (H, W) when none is given."""
    return SIGMA_FRACTION * min(size)


def valid_flow(flow: torch.Tensor) -> torch.Tensor:
    """bool [N,H,W]: where ``flow`` [N,2,H,W] is known (both components finite)."""
    return torch.isfinite(flow).all(dim=1)


def _check_valid(valid: torch.Tensor, batch: int, size: tuple[int, int]) -> torch.Tensor:
    if valid.shape != (batch, *size):
        raise ValueError(f"valid mask must be [N, H, W] = {[batch, *size]}, got {list(valid.shape)}")
    empty = (~valid.flatten(1).any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"image(s) {empty} of the batch have no pixel with known (finite) flow to sample")
    return valid.cpu()


def pair_points(
    batch: int,
    size: tuple[int, int],
    count: int,
    sigma: float | None = None,
    generator: torch.Generator | None = None,
    *,
    valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` point pairs per image (§4.7.1): (p1, p2) int64 [N, S, 2] pixel (row, col), on the CPU.

    p1 is uniform over the image (over the ``valid`` [N,H,W] pixels when given); p2 = p1 + round(sigma * e),
    e two independent standard normals; a p2 outside the image or on an invalid pixel is redrawn (up to
    ``MAX_REDRAWS`` times, then p2 = p1). ``sigma`` None: :func:`default_sigma`. Drawn with ``generator``
    (default: torch's global RNG, so a resumed run repeats it).
    """
    height, width = size
    sigma = default_sigma(size) if sigma is None else float(sigma)
    if sigma < 0 or count < 1:
        raise ValueError(f"pair_points needs count >= 1 and sigma >= 0, got count={count}, sigma={sigma}")
    allowed = None if valid is None else _check_valid(valid, batch, size).flatten(1)  # [N, H*W] on the CPU
    if allowed is None:
        flat = torch.randint(0, height * width, (batch, count), generator=generator)
    else:
        flat = torch.multinomial(allowed.float(), count, replacement=True, generator=generator)
    p1 = torch.stack([flat // width, flat % width], dim=-1)
    p2 = p1.clone()
    pending = torch.ones(batch, count, dtype=torch.bool)
    for _ in range(MAX_REDRAWS):
        offsets = torch.randn(batch, count, 2, generator=generator) * sigma
        candidate = p1 + offsets.round().long()
        rows, cols = candidate[..., 0], candidate[..., 1]
        ok = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        if allowed is not None:
            ok &= allowed.gather(1, rows.clamp(0, height - 1) * width + cols.clamp(0, width - 1))
        accept = pending & ok
        p2[accept] = candidate[accept]
        pending &= ~ok
        if not pending.any():
            break
    return p1, p2


def gather_flow(flow: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``flow`` [N,2,H,W] at pixels ``points`` [N,S,2] (row, col) -> [N,S,2] (dx, dy)."""
    index = (points[..., 0] * flow.shape[-1] + points[..., 1]).to(flow.device)
    return flow.flatten(2).gather(2, index.unsqueeze(1).expand(-1, 2, -1)).transpose(1, 2)


def relative_flow(flow: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    """The target amplitude |flow(p2) - flow(p1)| [N,S] in pixels (§4.7.1): zero for any constant flow."""
    return (gather_flow(flow, p2) - gather_flow(flow, p1)).float().norm(dim=-1)


def fit_bin_edges(magnitudes: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """``bins - 1`` inner edges float32: equiprobable quantiles of ``magnitudes`` (any shape, NaN ignored).

    Edge k (1 .. bins-1) is the n values' order statistic of 0-based rank ``round(k n / bins)``, so with
    :func:`bin_index` each bin holds n / bins of them, within one. Values tied across an edge share one bin
    (which then holds more): no function of the amplitude alone can split them.
    """
    values = magnitudes.detach().flatten().double()
    values = values[torch.isfinite(values)]
    if bins < 2 or values.numel() < bins:
        raise ValueError(
            f"fitting {bins} bins needs bins >= 2 and at least {bins} finite values, got {values.numel()}"
        )
    ordered = values.sort().values
    ranks = torch.round(torch.arange(1, bins, dtype=torch.float64) * values.numel() / bins).long()
    return ordered[ranks].float().cpu()


def bin_index(values: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Bin int64 (shaped like ``values``): how many ``edges`` are <= each value; bin k = [e_{k-1}, e_k)."""
    return torch.bucketize(values.float(), edges.to(values.device, torch.float32), right=True)


class RelativeFlowHead(nn.Module):
    """Sparse hypercolumns of p1 and p2 (every tap, bilinear at the pixel) -> concat -> FC ``hidden`` (ReLU)
    -> ``bins`` logits (§4.7.1, §4.7.2). ``forward(features, p1, p2)`` -> [N, S, bins]."""

    def __init__(
        self, channels: Mapping[str, int], grids: Mapping[str, Grid], bins: int = BINS, hidden: int = 1024
    ) -> None:
        super().__init__()
        self.grids = dict(grids)
        width = 2 * sum(channels.values())
        self.classifier = nn.Sequential(
            nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, bins)
        )

    def forward(
        self, features: Mapping[str, torch.Tensor], p1: torch.Tensor, p2: torch.Tensor
    ) -> torch.Tensor:
        columns = [sample_hypercolumns(dict(features), self.grids, points) for points in (p1, p2)]
        return self.classifier(torch.cat(columns, dim=-1))


def relative_flow_loss(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of ``logits`` [N,S,K] against target bins [N,S], and the accuracy (detached float)."""
    flat = logits.float().flatten(0, 1)
    labels = targets.flatten().to(flat.device)
    loss = F.cross_entropy(flat, labels)
    accuracy = (flat.detach().argmax(dim=1) == labels).float().mean()
    return loss, accuracy


def _flows(
    source: Dataset | torch.Tensor | Iterable[torch.Tensor], limit: int | None
) -> Iterable[torch.Tensor]:
    """Flow fields [2,H,W] of a dataset (items ``(image, {"flow": ...})``), a [N,2,H,W] tensor or an iterable,
    at most ``limit`` of them evenly spread over a dataset or tensor."""
    if isinstance(source, torch.Tensor):
        source = source.unsqueeze(0) if source.dim() == 3 else source
    if isinstance(source, (Dataset, torch.Tensor)) and hasattr(source, "__len__"):
        total = len(source)
        count = total if limit is None else min(limit, total)
        for i in range(count):
            item = source[i * total // count]
            yield item[1]["flow"] if isinstance(item, tuple) else item
        return
    for i, flow in enumerate(source):
        if limit is not None and i >= limit:
            return
        yield flow


class RelativeFlowProxy(nn.Module):
    """The relative-motion proxy for a shared backbone: its head, bin edges and ``loss(taps, images, flow)``.

    ``loss`` takes ``images`` [N,3,H,W] in [0,1] (the first frames, un-normalised: the proxy standardises them
    and pads to ``stride``) and ``flow`` [N,2,H,W] (dx, dy) in pixels to the next frame (NaN = unknown), and
    returns ``{'loss', 'accuracy'}``. ``taps`` is the shared :class:`FeatureTaps` (or any callable giving the
    same features). The edges must be fitted first (:meth:`fit_from`); they are a buffer, so a checkpoint
    keeps them beside the head.
    """

    def __init__(
        self,
        channels: Mapping[str, int],
        grids: Mapping[str, Grid],
        *,
        bins: int = BINS,
        hidden: int = 1024,
        pairs: int = 128,
        sigma: float | None = None,
        grey: bool = False,
        stride: int = 1,
    ) -> None:
        super().__init__()
        if bins < 2 or pairs < 1:
            raise ValueError(f"relative flow needs bins >= 2 and pairs >= 1, got bins={bins}, pairs={pairs}")
        self.head = RelativeFlowHead(channels, grids, bins, hidden)
        self.bins, self.pairs, self.sigma, self.grey = bins, pairs, sigma, grey
        # NaN until fitted: training on made-up edges would silently learn a meaningless target.
        self.register_buffer("edges", torch.full((bins - 1,), float("nan")))
        # Grey: lightness with the grey statistics, replicated (colorization's input); else RGB statistics.
        self.inputs = InputNormalizer(1 if grey else 3, stride)

    @classmethod
    def for_taps(cls, taps: FeatureTaps, **kwargs) -> RelativeFlowProxy:
        """A proxy reading every tap of ``taps`` (full hypercolumns, §4.7.2), padding to its output stride."""
        kwargs.setdefault("stride", taps.backbone.output_stride)
        return cls(taps.channels, taps.grids, **kwargs)

    @property
    def fitted(self) -> bool:
        return bool(torch.isfinite(self.edges).all())

    def sample_pairs(
        self, flow: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`pair_points` on the known pixels of ``flow`` [N,2,H,W], on the flow's device."""
        batch, size = flow.shape[0], tuple(flow.shape[-2:])
        p1, p2 = pair_points(batch, size, self.pairs, self.sigma, generator, valid=valid_flow(flow))
        return p1.to(flow.device), p2.to(flow.device)

    @torch.no_grad()
    def fit_from(
        self,
        source: Dataset | torch.Tensor | Iterable[torch.Tensor],
        *,
        per_image: int = 2048,
        max_images: int | None = 256,
        seed: int = 0,
    ) -> torch.Tensor:
        """Fit the edges to the targets of ``per_image`` random pairs in each of up to ``max_images`` training
        flows (a flow dataset, a [N,2,H,W] tensor or an iterable of [2,H,W] flows); returns them.

        Deterministic (its own generator from ``seed``); the pairs follow the training sampler, so the bins
        are equiprobable under the training distribution of targets.
        """
        generator = torch.Generator().manual_seed(seed)
        values = []
        for flow in _flows(source, max_images):
            flow = torch.as_tensor(flow)[None].float()
            size = tuple(flow.shape[-2:])
            p1, p2 = pair_points(1, size, per_image, self.sigma, generator, valid=valid_flow(flow))
            values.append(relative_flow(flow, p1, p2).flatten())
        if not values:
            raise ValueError(
                "RelativeFlowProxy.fit_from: the flow source is empty; pass the training flow dataset"
            )
        edges = fit_bin_edges(torch.cat(values), self.bins)
        self.edges.copy_(edges.to(self.edges.device))
        return edges

    def targets(self, flow: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
        """Target bins int64 [N,S] of the pairs."""
        return bin_index(relative_flow(flow, p1, p2), self.edges)

    def loss(
        self,
        taps: FeatureTaps | Taps,
        images: torch.Tensor,
        flow: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        if images.dim() != 4 or images.shape[1] != 3 or flow.dim() != 4 or flow.shape[1] != 2:
            raise ValueError(
                f"relative flow needs images [N,3,H,W] and flow [N,2,H,W], got {list(images.shape)} and "
                f"{list(flow.shape)}"
            )
        if images.shape[0] != flow.shape[0] or images.shape[-2:] != flow.shape[-2:]:
            raise ValueError(
                f"relative flow: images {list(images.shape)} and flow {list(flow.shape)} differ in batch or "
                f"size; the flow belongs to its frame, resize both together (data.flow.resize_flow)"
            )
        if not self.fitted:
            raise RuntimeError(
                "RelativeFlowProxy: bin edges not fitted; call proxy.fit_from(training flow dataset) first"
            )
        p1, p2 = self.sample_pairs(flow, generator)
        targets = self.targets(flow, p1, p2)
        inputs = self.inputs(images)
        if self.grey:
            inputs = inputs.expand(-1, 3, -1, -1)  # the shared conv1 has 3 channels (spec "C")
        logits = self.head(taps(inputs), p1, p2)
        loss, accuracy = relative_flow_loss(logits, targets)
        return {"loss": loss, "accuracy": accuracy}

    def extra_repr(self) -> str:
        fitted = self.fitted
        return f"bins={self.bins}, pairs={self.pairs}, sigma={self.sigma}, grey={self.grey}, fitted={fitted}"
