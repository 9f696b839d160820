"""The joint model's loss: up to four terms, each balanced to contribute equally (Mostajabi §5.5.2).

"We average each loss over a couple of epochs and weight it by the inverse": the terms are measured at unit
weight for ``balance_epochs`` epochs, then w_k = c / mean(L_k) with c chosen so the active weights sum to their
count (the total keeps its scale); after that w_k * mean(L_k) is the same for every term. The running sums, the
count and the weights are **persistent buffers** of the model, so checkpoints (and ``--resume``) carry them and a
resumed run continues with exactly the weights an uninterrupted one would use. Under torchrun the estimate uses
every process's losses (all-reduced), so all replicas agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.engine.distributed import mean_over_processes
from pixelwise.methods.segmentation import segmentation_loss

TERMS = ("part1_depth", "part1_seg", "depth", "seg")  # the fixed order of the buffers
# Which terms each arm trains, and a factor applied after balancing (2x-seg: CE weighted twice L1).
ARM_TERMS: dict[str, tuple[str, ...]] = {
    "two-part": TERMS,
    "baseline": ("depth", "seg"),
    "no-seg": ("depth",),
    "no-depth": ("seg",),
    "2x-seg": ("depth", "seg"),
    "single-part": ("depth", "seg"),
}
ARM_FACTORS: dict[str, dict[str, float]] = {"2x-seg": {"seg": 2.0}}


class BalancedTerms(nn.Module):
    """``balance(values [4]) -> weighted sum``; measures the terms during warm-up, then fixes the weights."""

    def __init__(self, arm: str) -> None:
        super().__init__()
        active = torch.tensor([float(t in ARM_TERMS[arm]) for t in TERMS])
        factors = torch.tensor([ARM_FACTORS.get(arm, {}).get(t, 1.0) for t in TERMS])
        self.register_buffer("active", active)
        self.register_buffer("factors", factors)
        self.register_buffer("weights", torch.ones(len(TERMS)))
        self.register_buffer("sums", torch.zeros(len(TERMS), dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer(
            "estimates", torch.zeros((), dtype=torch.long)
        )  # how many times weights were set
        # Set by the task once the batches per epoch are known (not state: they follow from the config).
        self.warmup_calls = 0  # 0: unit weights throughout
        self.rebalance_calls = 0  # 0: estimate once

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        # Weighted with the weights in force for this batch, then counted (the batch that ends the warm-up is
        # still at unit weight).
        total = (self.weights.clone() * self.factors * self.active * values.float()).sum()
        if self.training and torch.is_grad_enabled():
            self.observe(values.detach())
        return total

    def observe(self, values: torch.Tensor) -> None:
        """Add one batch's terms to the running sums; set the weights when the warm-up (or period) is over."""
        target = self.warmup_calls if int(self.estimates) == 0 else self.rebalance_calls
        if target <= 0:
            return
        # The mean over processes: DDP broadcasts rank 0's buffers at every forward, so per-rank sums would be
        # replaced by rank 0's; summing the same global mean everywhere makes that broadcast harmless.
        self.sums += mean_over_processes(values).to(self.sums)
        self.count += 1
        if int(self.count) >= target:
            self.estimate()

    @torch.no_grad()
    def estimate(self) -> None:
        """w_k = c / mean L_k over the active terms (all processes), sum of active w_k = their count."""
        means = (self.sums / self.count.double().clamp(min=1)).float().clamp(min=1e-8)
        inverse = self.active / means
        self.weights.copy_(inverse * self.active.sum() / inverse.sum().clamp(min=1e-12))
        self.sums.zero_()
        self.count.zero_()
        self.estimates += 1

    def weighted_means(self, means: torch.Tensor) -> torch.Tensor:
        """w_k * mean L_k of the active terms (equal after an estimate; for tests and logs)."""
        return (self.weights * means)[self.active.bool()]


def masked_seg_loss(
    logits: torch.Tensor, labels: torch.Tensor, has_seg: torch.Tensor, ignore_index: int
) -> torch.Tensor:
    """Cross-entropy over the labelled pixels of the images that have labels (depth-only images: none)."""
    labels = labels.as_subclass(torch.Tensor).long().masked_fill(~has_seg.view(-1, 1, 1), ignore_index)
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    return segmentation_loss(logits.float(), labels, None, ignore_index, 1.0)
