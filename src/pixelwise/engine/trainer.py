"""The training loop shared by every method (torchvision references style: main -> train_one_epoch -> evaluate).

One code path for one process and for ``torchrun``: the sampler is swapped for a DistributedSampler, the model is
wrapped in DDP, metrics are all-reduced and only rank 0 writes logs, PNGs and checkpoints.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset
from tqdm import tqdm

from pixelwise.data import DatasetInfo, build_dataset, eval_transforms, train_transforms
from pixelwise.engine import optim
from pixelwise.engine.checkpoint import load_checkpoint, save_checkpoint
from pixelwise.engine.config import TrainConfig, save_yaml
from pixelwise.engine.distributed import DistInfo, init_distributed, resolve_device
from pixelwise.engine.evaluate import EvalOptions, evaluate
from pixelwise.engine.logging import JsonlLogger
from pixelwise.metrics import scores_to_json
from pixelwise.models import ModelConfig, SegmentationModel
from pixelwise.models.weights import load_backbone_weights


class TrainingError(RuntimeError):
    """Training cannot continue (non-finite loss, bad resume state, ...)."""


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    iteration: int = 0  # optimiser steps taken
    best_miou: float = -1.0


def setup_runtime(config: TrainConfig) -> tuple[DistInfo, torch.device]:
    """Device, process group, threads and seed."""
    dist_info = init_distributed(resolve_device(config.device))
    device = resolve_device(config.device, dist_info.local_rank)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed + dist_info.rank)
    return dist_info, device


def labelled_subset(dataset: Any, fraction: float, seed: int) -> Any:
    """A seeded random subset with ``fraction`` of the images (label-scarce regimes); the same for every run."""
    if fraction >= 1.0:
        return dataset
    count = max(1, round(len(dataset) * fraction))
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    subset = Subset(dataset, sorted(order[:count].tolist()))
    subset.info = dataset.info  # type: ignore[attr-defined]
    return subset


def build_datasets(config: TrainConfig) -> tuple[Any, Any]:
    base_size = tuple(config.base_size) if config.base_size else None
    train_tf = train_transforms(tuple(config.crop), tuple(config.scale), config.hflip, config.color_jitter)
    train = build_dataset(config.data, "train", size=base_size, transform=train_tf)
    val = build_dataset(config.val_data or config.data, "val", transform=eval_transforms())
    train.preload(progress=False)
    val.preload(progress=False)
    return labelled_subset(train, config.labels_fraction, config.seed), val


def label_pixel_counts(dataset: Any, num_classes: int) -> torch.Tensor:
    """Per-class pixel counts of the (untransformed) training labels, for class weighting."""
    counts = torch.zeros(num_classes, dtype=torch.long)
    indices = dataset.indices if isinstance(dataset, Subset) else range(len(dataset))
    base = dataset.dataset if isinstance(dataset, Subset) else dataset
    for index in indices:
        label = base.load_label(index).long().flatten()  # untransformed, as stored
        counts += torch.bincount(label[label < num_classes], minlength=num_classes)
    return counts


def build_model(config: TrainConfig, info: DatasetInfo) -> tuple[SegmentationModel, float]:
    """The model and its base lr (scaled down when fine-tuning from a coarser FCN, Long §3.3.4)."""
    model_config = ModelConfig(
        config.arch, config.backbone, info.num_classes, config.in_channels, config.output_stride
    )
    model = SegmentationModel(model_config)
    lr = config.lr
    if config.weights:
        load_backbone_weights(model.backbone, config.weights)
    if config.init_from:
        parent = load_checkpoint(config.init_from)
        missing, unexpected = model.load_state_dict(parent.model_state, strict=False)
        if unexpected:
            raise TrainingError(
                f"{config.init_from}: weights {unexpected[:5]}... do not fit {config.arch}/{config.backbone}"
            )
        if parent.meta["model"]["arch"] != config.arch:
            lr *= config.init_lr_scale
    return model, lr


def make_loader(
    dataset: Any, config: TrainConfig, dist_info: DistInfo, device: torch.device, train: bool
) -> DataLoader:
    if dist_info.enabled and train:
        sampler = DistributedSampler(
            dataset, dist_info.world_size, dist_info.rank, shuffle=True, seed=config.seed
        )
    elif (
        dist_info.enabled
    ):  # every image exactly once over all ranks (DistributedSampler would pad with repeats)
        sampler = list(range(dist_info.rank, len(dataset), dist_info.world_size))
    elif train:
        sampler = RandomSampler(dataset, generator=torch.Generator())
    else:
        sampler = None
    workers = config.workers if config.workers is not None else (0 if device.type == "cpu" else 4)
    return DataLoader(
        dataset,
        batch_size=config.batch_size if train else 1,
        sampler=sampler,
        num_workers=workers,
        drop_last=train,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )


def set_epoch(loader: DataLoader, seed: int, epoch: int) -> None:
    """Reseed the data order per epoch so a resumed run sees exactly the batches an uninterrupted one would."""
    sampler = loader.sampler
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)
    elif isinstance(sampler, RandomSampler) and sampler.generator is not None:
        sampler.generator.manual_seed(seed * 1000 + epoch)


def segmentation_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None, ignore_index: int, keep: float
) -> torch.Tensor:
    """Per-pixel softmax cross-entropy (Long §3.3.4), optional class weights and loss sampling.

    Averaged over the (weighted) labelled pixels like PyTorch's "mean", except that a batch with no labelled pixel
    (an all-void crop) gives 0 instead of NaN, so it cannot stop a run.
    """
    if keep < 1.0:  # drop each cell's loss with probability 1 - keep, i.e. mark it ignored
        labels = labels.masked_fill(torch.rand_like(labels, dtype=torch.float) >= keep, ignore_index)
    total = F.cross_entropy(logits, labels, weight=weights, ignore_index=ignore_index, reduction="sum")
    valid = labels != ignore_index
    denominator = weights[labels[valid]].sum() if weights is not None else valid.sum()
    return total / denominator.clamp(min=1e-12)


class Trainer:
    """Owns one run: datasets, model, optimiser, loop, evaluation and checkpoints."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.dist, self.device = setup_runtime(config)
        self.output = Path(config.output)
        self.train_set, self.val_set = build_datasets(config)
        self.info: DatasetInfo = self.train_set.info
        self.model, self.base_lr = build_model(config, self.info)
        self.model.to(self.device)
        self.net: nn.Module = self.model
        if self.dist.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        self.optimizer = optim.build_optimizer(self.model, config, self.base_lr)
        self.loss_weights = None
        if config.class_weights != "none":
            counts = label_pixel_counts(self.train_set, self.info.num_classes)
            self.loss_weights = optim.class_weights(counts, config.class_weights).to(self.device)
        self.train_loader = make_loader(self.train_set, config, self.dist, self.device, train=True)
        self.val_loader = make_loader(self.val_set, config, self.dist, self.device, train=False)
        self.state = TrainState()
        self.log = JsonlLogger(self.output / "log.jsonl", enabled=self.dist.is_main)

    # ----------------------------------------------------------------- checkpoints
    def metadata(self) -> dict[str, Any]:
        return {
            "model": self.model.config.to_dict(),
            "dataset": {
                "name": self.info.name,
                "class_names": list(self.info.class_names),
                "palette": [list(c) for c in self.info.palette],
                "ignore_index": self.info.ignore_index,
            },
            "config": self.config.to_dict(),
            "state": vars(self.state).copy(),
        }

    def save(self, name: str, with_training_state: bool) -> None:
        if not self.dist.is_main:
            return
        extra = {}
        if with_training_state:
            extra = {
                "optimizer_state": self.optimizer.state_dict(),
                "rng_state": {"torch": torch.get_rng_state()},
            }
        save_checkpoint(
            self.output / f"{name}.safetensors", self.model.state_dict(), self.metadata(), **extra
        )

    def resume(self) -> None:
        path = self.output / "last.safetensors"
        if not path.is_file():
            raise TrainingError(
                f"--resume: {path} does not exist (nothing to resume; drop --resume to start afresh)"
            )
        checkpoint = load_checkpoint(path)
        self.model.load_state_dict(checkpoint.model_state)
        if checkpoint.optimizer_state is not None:
            self.optimizer.load_state_dict(checkpoint.optimizer_state)
        if "torch" in checkpoint.rng_state:
            torch.set_rng_state(checkpoint.rng_state["torch"])
        self.state = TrainState(**checkpoint.meta["state"])

    # ----------------------------------------------------------------- loop
    def fit(self) -> dict[str, Any]:
        config = self.config
        # Every rank checks (not only rank 0), so a refusal cannot leave the other ranks waiting in a collective.
        if not config.resume and (self.output / "last.safetensors").exists():
            raise TrainingError(
                f"{self.output} already holds a run; pass --resume to continue it or pick another --output"
            )
        if self.dist.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
            save_yaml(config.to_dict(), self.output / "config.yaml")
        if config.resume:
            self.resume()
        iters_per_epoch = len(self.train_loader) // config.accumulate
        total = optim.total_iterations(config.epochs, iters_per_epoch)
        started = time.time()
        scores: dict[str, Any] = {}
        while self.state.epoch < config.epochs:
            self.train_one_epoch(iters_per_epoch, total)
            self.state.epoch += 1
            out_of_time = config.time_limit is not None and (time.time() - started) / 60 >= config.time_limit
            last_epoch = self.state.epoch == config.epochs or out_of_time
            if last_epoch or (config.eval_every and self.state.epoch % config.eval_every == 0):
                scores = self.validate()
            self.save("last", with_training_state=True)
            if out_of_time:
                break
        if not scores:  # resumed a finished run
            scores = self.validate()
        if self.dist.is_main:
            (self.output / "metrics.json").write_text(json.dumps(scores_to_json(scores), indent=2))
        return scores

    def train_one_epoch(self, iters_per_epoch: int, total: int) -> None:
        config = self.config
        self.net.train()
        set_epoch(self.train_loader, config.seed, self.state.epoch)
        batches = iter(self.train_loader)
        bar = tqdm(
            range(iters_per_epoch),
            desc=f"epoch {self.state.epoch + 1}/{config.epochs}",
            disable=not self.dist.is_main,
            dynamic_ncols=True,
        )
        for _ in bar:
            lr = optim.learning_rate(config, self.base_lr, self.state.iteration, total, iters_per_epoch)
            optim.set_learning_rate(self.optimizer, lr)
            loss_sum = 0.0
            for _ in range(config.accumulate):
                images, targets = next(batches)
                loss = self.compute_loss(images.to(self.device), targets["seg"].to(self.device))
                (loss / config.accumulate).backward()
                loss_sum += loss.item() / config.accumulate
            if not torch.isfinite(torch.tensor(loss_sum)):
                raise TrainingError(
                    f"non-finite loss at iteration {self.state.iteration}; last good checkpoint kept in {self.output}"
                )
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.state.iteration += 1
            bar.set_postfix(loss=f"{loss_sum:.3f}", lr=f"{lr:.2e}")
            if self.state.iteration % config.log_every == 0:
                self.log.write(
                    kind="train", epoch=self.state.epoch, iteration=self.state.iteration, loss=loss_sum, lr=lr
                )

    def compute_loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # bfloat16 autocast needs no loss scaling; on CPUs with AVX512-BF16/AMX it is ~1.6x faster (docs/results.md).
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.amp):
            logits = self.net(images)["seg"]
        return segmentation_loss(
            logits.float(), labels, self.loss_weights, self.info.ignore_index, self.config.loss_sampling
        )

    def validate(self) -> dict[str, Any]:
        options = EvalOptions(
            scales=(self.config.eval_scale,), progress=self.dist.is_main, examples=self.config.num_examples
        )
        scores, _, examples = evaluate(
            self.model,
            self.val_loader,
            self.info.num_classes,
            self.device,
            self.info.ignore_index,
            options,
            self.info.class_names,
        )
        self.log.write(
            kind="val", iteration=self.state.iteration, **scores_to_json(scores), epoch=self.state.epoch
        )
        scores["epoch"] = self.state.epoch
        if self.dist.is_main:
            from pixelwise.report.examples import save_examples

            save_examples(examples, self.info, self.output / "examples" / f"epoch{self.state.epoch:03d}")
            print(
                f"epoch {self.state.epoch}: val mIoU {scores['mean_iou']:.4f} pixel acc {scores['pixel_acc']:.4f}"
            )
        if scores["mean_iou"] > self.state.best_miou:
            self.state.best_miou = scores["mean_iou"]
            self.save("best", with_training_state=False)
        return scores


def train(config: TrainConfig) -> dict[str, Any]:
    """Run a training job described by ``config``; returns the final validation scores."""
    return Trainer(config).fit()
