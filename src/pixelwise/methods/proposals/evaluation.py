"""Scoring a region network's proposals (§4.4.5): one pass that both validation and ``proposals eval`` use.

Per image: ranked proposals (:func:`~.predict.propose`), each ground-truth segment's best IoU and which proposal
(so which pathway) found it. From those: R@50 / R@70, ABO, AR (exact continuous form), AR@10/100/1000, the recall
curve over IoU thresholds, and recall@0.5 by sqrt(area) per finding pathway (Fig. 4.6).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from pixelwise.methods.proposals.predict import ProposalOptions, Proposals, propose
from pixelwise.metrics.proposals import ar_at_k, best_matches, instance_areas, proposal_scores, recall_at

AR_KS = (10, 100, 1000)
SIZE_BINS = (0, 8, 16, 32, 64, 128, 256, 512)  # sqrt(area) px


@dataclass
class Collected:
    """Per image: each GT's best IoU, the pathway of the proposal that gave it (-1: none), its area; the ranked
    window masks; the instance maps; time spent proposing; a few (image, truth, proposals) examples."""

    best: list[torch.Tensor] = field(default_factory=list)
    pathway: list[torch.Tensor] = field(default_factory=list)
    areas: list[torch.Tensor] = field(default_factory=list)
    masks: list[list] = field(default_factory=list)
    instances: list[torch.Tensor] = field(default_factory=list)
    seconds: float = 0.0
    examples: list[tuple[torch.Tensor, torch.Tensor, Proposals]] = field(default_factory=list)


def collect(
    model: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, dict[str, torch.Tensor]]],
    options: ProposalOptions,
    device: torch.device,
    examples: int = 0,
) -> Collected:
    out = Collected()
    for images, targets in batches:
        started = time.perf_counter()
        found = propose(model, images.to(device), options)  # type: ignore[arg-type]
        out.seconds += time.perf_counter() - started
        for image, truth, result in zip(images, targets["instances"].as_subclass(torch.Tensor), found):
            best, which = best_matches(result.masks, truth)[None]
            levels = torch.tensor(result.levels + [-1], dtype=torch.long)
            out.best.append(best)
            out.pathway.append(levels[which])  # which = -1 -> the appended -1
            out.areas.append(instance_areas(truth))
            out.masks.append(result.masks)
            out.instances.append(truth)
            if len(out.examples) < examples:
                out.examples.append((image, truth, result))
    return out


def summary_scores(collected: Collected) -> dict[str, float]:
    images = max(len(collected.masks), 1)
    return {
        **proposal_scores(collected.best),
        **ar_at_k(collected.masks, collected.instances, AR_KS),
        "ms_per_image": 1000 * collected.seconds / images,
        "proposals_per_image": sum(len(m) for m in collected.masks) / images,
    }


def curves(collected: Collected, pathways: int) -> dict[str, Any]:
    """Recall vs IoU threshold; recall@0.5 by sqrt(area) bin, overall and split by the finding pathway."""
    best = torch.cat(collected.best) if collected.best else torch.zeros(0)
    pathway = torch.cat(collected.pathway) if collected.pathway else torch.zeros(0, dtype=torch.long)
    side = (torch.cat(collected.areas).double().sqrt()) if collected.areas else torch.zeros(0)
    thresholds = [round(0.5 + 0.05 * i, 2) for i in range(11)]
    edges = torch.tensor(SIZE_BINS, dtype=torch.float64)
    slot = torch.bucketize(side, edges, right=True) - 1
    counts = [int((slot == b).sum()) for b in range(len(SIZE_BINS) - 1)]
    by_pathway = []
    for level in range(pathways):
        hits = (best >= 0.5) & (pathway == level)
        by_pathway.append(
            [float(hits[slot == b].double().sum() / max(counts[b], 1)) for b in range(len(counts))]
        )
    return {
        "iou_thresholds": thresholds,
        "recall": [recall_at(best, t) for t in thresholds],
        "size_bins": list(SIZE_BINS),
        "gts_per_bin": counts,
        "recall50_by_size_and_pathway": by_pathway,
    }


def evaluate_proposals(model: torch.nn.Module, config: Any, device: torch.device) -> dict[str, Any]:
    """``proposals eval``: scores and curves of ``model`` on ``config.data`` / ``config.split``."""
    from pixelwise.data.instances import instance_dataset

    size = tuple(config.base_size) if config.base_size else None
    data = instance_dataset(config.data, config.split, size=size)
    if config.images:
        data = Subset(data, range(min(config.images, len(data))))
    loader = DataLoader(data, batch_size=1)
    options = ProposalOptions(config.nms, config.top_k, config.lowest_stride)
    collected = collect(model, tqdm(loader, desc="proposals"), options, device)
    return {
        "data": config.data,
        "split": config.split,
        "images": len(collected.masks),
        "options": vars(options) if hasattr(options, "__dict__") else {},
        "scores": summary_scores(collected),
        "curves": curves(collected, len(model.config.pathways)),  # type: ignore[union-attr]
    }


def save_recall_plot(record: dict[str, Any], pathways: tuple[str, ...], path: Path) -> Path:
    """recall vs IoU (left) and recall@0.5 by object size, stacked by pathway (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pixelwise.report.images import save_figure

    curve = record["curves"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(curve["iou_thresholds"], curve["recall"], marker="o")
    left.set(xlabel="IoU threshold", ylabel="recall", ylim=(0, 1), title=f"AR {record['scores']['ar']:.3f}")
    bins = curve["size_bins"]
    centres = list(range(len(bins) - 1))
    bottom = [0.0] * len(centres)
    for name, values in zip(pathways, curve["recall50_by_size_and_pathway"]):
        right.bar(centres, values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values)]
    right.set_xticks(centres, [f"{bins[i]}-{bins[i + 1]}" for i in centres], rotation=30)
    right.set(xlabel="sqrt(area) px", ylabel="recall@0.5", ylim=(0, 1), title="found by pathway")
    right.legend(fontsize=8)
    return save_figure(figure, path)
