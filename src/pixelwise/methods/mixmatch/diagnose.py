"""Feature diagnostic for Mix-and-Match: how well do patch features separate the classes, before vs after tuning?

M&M claims (Zhan et al. 2018, §3) that the triplet loss makes "patches belonging to the same class lie close
together while patches of different classes are separated by a wide margin". We measure exactly that on held-out
patches (the 'mix' sampler on the val split, with a fixed seed so every checkpoint sees the same patches), in the
space of the loss (normalised pool5 features, Eq. 2's squared distance):

- nearest-class-centroid accuracy: each patch takes the class of the closest class mean (means of the same val
  patches), averaged over patches (``centroid_acc``) and over classes (``centroid_mean_class_acc``);
- the intra/inter-class distance ratio: mean D over pairs of patches of the same class / over pairs of different
  classes (below 1: classes cluster).

Everything is computed from per-class sums, so it all-reduces across processes. ``pixelwise tune diagnose``
scores checkpoints (an M&M run and, by default, its --init-from checkpoint) and writes JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from pixelwise.engine.distributed import all_reduce_sum
from pixelwise.methods.mixmatch.config import DiagnoseConfig
from pixelwise.methods.mixmatch.model import MixMatchConfig, MixMatchModel
from pixelwise.methods.mixmatch.sampler import PatchSampler, sample_patches
from pixelwise.metrics import scores_to_json
from pixelwise.models.weights import load_backbone_weights


@torch.no_grad()
def patch_features(
    model: MixMatchModel,
    loader: DataLoader,
    device: torch.device,
    sampler: PatchSampler,
    seed: int = 0,
    progress: bool = False,
    examples: int = 0,
    chunk: int = 256,
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[torch.Tensor, int]]]:
    """(features [N, D], labels [N], up to ``examples`` (crop, label) pairs) of the val patches in ``loader``.

    The patches come from their own generator seeded with ``seed``: the same patches for every checkpoint, and
    the training RNG is left alone (a resumed run stays exact).
    """
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    features, labels, kept = [], [], []
    crops: list[torch.Tensor] = []

    def flush() -> None:
        if crops:
            features.append(model(torch.cat(crops).to(device)).float().cpu())
            crops.clear()

    for images, targets in tqdm(loader, desc="val patches", leave=False, disable=not progress):
        patches = sample_patches(images, targets["seg"].as_subclass(torch.Tensor), sampler, generator)
        crops.append(patches.crops)
        labels.append(patches.labels.cpu())
        for crop, label in zip(patches.crops, patches.labels.tolist()):
            if len(kept) < examples:
                kept.append((crop.cpu(), label))
        if sum(len(c) for c in crops) >= chunk:
            flush()
    flush()
    dim = features[0].shape[1] if features else 0
    return (torch.cat(features) if features else torch.zeros(0, dim)), torch.cat(labels).long(), kept


def centroid_diagnostic(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, Any]:
    """Nearest-class-centroid accuracy and intra/inter-class distance ratio (see the module docstring).

    ``features`` [N, D] (normalised for the paper's space), ``labels`` [N]; sums are all-reduced, so under DDP
    each process passes its own patches and all get the global scores.
    """
    x = features.double()
    dim = x.shape[1]
    one_hot = torch.zeros(len(x), num_classes, dtype=torch.float64)
    one_hot[torch.arange(len(x)), labels] = 1
    # Per class: count, sum of ||x||^2, sum of x (all-reduced together).
    sums = torch.cat([one_hot.sum(0)[:, None], (one_hot.T @ x.pow(2).sum(1))[:, None], one_hot.T @ x], dim=1)
    all_reduce_sum(sums)
    counts, squares, totals = sums[:, 0], sums[:, 1], sums[:, 2:]
    present = counts > 0
    centroids = totals[present] / counts[present, None]
    correct = torch.zeros(num_classes, dtype=torch.float64)
    if len(x) and len(centroids):
        nearest = torch.cdist(x, centroids).argmin(dim=1)
        hits = present.nonzero().flatten()[nearest] == labels
        correct.index_add_(0, labels, hits.double())
    all_reduce_sum(correct)
    # Sum of ||x_i - x_j||^2 over ordered pairs of a set = 2 n sum ||x||^2 - 2 ||sum x||^2 (i = j adds 0).
    within = (2 * counts * squares - 2 * totals.pow(2).sum(1)).sum()
    n = counts.sum()
    everything = 2 * n * squares.sum() - 2 * totals.sum(0).pow(2).sum()
    within_pairs = (counts * (counts - 1)).sum()
    between_pairs = n * n - counts.pow(2).sum()
    intra = float(within / within_pairs) if within_pairs > 0 else float("nan")
    inter = float((everything - within) / between_pairs) if between_pairs > 0 else float("nan")
    per_class = torch.where(present, correct / counts.clamp(min=1), torch.full_like(correct, float("nan")))
    return {
        "centroid_acc": float(correct.sum() / n) if n > 0 else float("nan"),
        "centroid_mean_class_acc": float(per_class[present].mean()) if present.any() else float("nan"),
        "centroid_class_acc": per_class.tolist(),
        "intra_distance": intra,
        "inter_distance": inter,
        "intra_inter_ratio": intra / inter if inter == inter and inter > 0 else float("nan"),
        "patches": int(n),
        "classes": int(present.sum()),
        "feature_dim": dim,
    }


def feature_model(
    path: str | None, like: MixMatchConfig | None = None, seed: int = 0, weights: str | None = None
) -> MixMatchModel:
    """A :class:`MixMatchModel` with the backbone of checkpoint ``path`` (any kind), of a ``weights`` file, or
    random (seeded) for neither. ``like`` is the M&M run being diagnosed: its "before" model reads the same layer."""
    from pixelwise.engine.checkpoint import load_checkpoint
    from pixelwise.methods.segmentation import load_backbone_from_checkpoint

    if path is None:
        torch.manual_seed(seed)
        model = MixMatchModel(like or MixMatchConfig())
        if weights:
            load_backbone_weights(model.backbone, weights, allow_partial=True)  # the run accepted this file
        return model
    checkpoint = load_checkpoint(path)
    described = checkpoint.meta.get("model", {})
    layer = described.get("feature_layer", "") if described.get("kind") == "mixmatch" else ""
    config = MixMatchConfig(
        backbone=described.get("backbone", "resnet18"),
        in_channels=described.get("in_channels", 3),
        output_stride=described.get("output_stride", 32),
        feature_layer=layer or (like.feature_layer if like else ""),
    )
    model = MixMatchModel(config)
    load_backbone_from_checkpoint(model, checkpoint.model_state, described, str(path))
    return model


def diagnose(config: DiagnoseConfig) -> dict[str, Any]:
    """Score every checkpoint of ``config`` (and what M&M runs started from); writes and returns the JSON record."""
    from pixelwise.data import build_dataset, eval_transforms
    from pixelwise.engine.checkpoint import load_checkpoint
    from pixelwise.engine.distributed import resolve_device

    if not config.checkpoint:
        raise ValueError("pass --checkpoint with at least one checkpoint or run folder")
    device = resolve_device(config.device)
    # (name, checkpoint, the M&M run's architecture for its "before" model, its --weights file)
    runs: list[tuple[str, str | None, MixMatchConfig | None, str | None]] = []
    tuned: dict[str, Any] = {}
    for path in config.checkpoint:
        meta = load_checkpoint(path).meta
        model = meta.get("model", {})
        if model.get("kind") == "mixmatch":
            tuned = tuned or meta.get("config", {})
            if config.before:
                init, weights = (meta.get("config", {}).get(key) for key in ("init_from", "weights"))
                name = f"before:{init or weights}" if init or weights else "before:random"
                runs.append((name, init, MixMatchConfig.from_dict(model), weights))
        runs.append((str(path), str(path), None, None))
    base_size = config.base_size or tuned.get("base_size")
    dataset = build_dataset(
        config.data, config.split, size=tuple(base_size) if base_size else None, transform=eval_transforms()
    )
    info = dataset.info
    if config.images is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(config.images, len(dataset))))
    overrides = {"patches_per_image": config.patches_per_image, "patch_sides": config.patch_sides,
                 "patch_size": config.patch_size}  # fmt: skip
    options = {**tuned, **{k: v for k, v in overrides.items() if v is not None}}
    sampler = PatchSampler.from_options(options, info.ignore_index)
    loader = DataLoader(dataset, batch_size=1)
    record: dict[str, Any] = {
        "data": config.data,
        "split": config.split,
        "seed": config.seed,
        "sampler": {
            "patches_per_image": sampler.patches_per_image,
            "sides": list(sampler.sides),
            "size": sampler.size,
        },  # fmt: skip
        "class_names": list(info.class_names),
        "scores": {},
    }
    for name, path, like, weights in runs:
        model = feature_model(path, like, config.seed, weights).to(device)
        features, labels, _ = patch_features(model, loader, device, sampler, config.seed, progress=True)
        scores = centroid_diagnostic(features, labels, info.num_classes)
        record["scores"][name] = scores
        print(
            f"{name}: nearest-centroid acc {scores['centroid_acc']:.4f} (mean over classes "
            f"{scores['centroid_mean_class_acc']:.4f}), intra/inter distance {scores['intra_inter_ratio']:.4f}"
        )
    output = Path(config.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(scores_to_json(record), indent=2))
    return record
