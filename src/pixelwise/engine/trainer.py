"""The training loop shared by every method (torchvision references style: main -> train_one_epoch -> evaluate).

One code path for one process and for ``torchrun``: the sampler is swapped for a DistributedSampler, the model is
wrapped in DDP, metrics are all-reduced and only rank 0 writes logs, PNGs and checkpoints. What is trained and how
it is scored comes from a :class:`~pixelwise.engine.task.Task` (supervised segmentation by default).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm

from pixelwise.engine import optim
from pixelwise.engine.checkpoint import load_checkpoint, save_checkpoint
from pixelwise.engine.config import RunConfig, save_yaml
from pixelwise.engine.distributed import DistInfo, init_distributed, resolve_device
from pixelwise.engine.logging import JsonlLogger
from pixelwise.engine.task import Task
from pixelwise.metrics import scores_to_json
from pixelwise.models.backbones import freeze_stages


class TrainingError(RuntimeError):
    """Training cannot continue (non-finite loss, bad resume state, ...)."""


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    iteration: int = 0  # optimiser steps taken
    best_score: float = -1e9  # the task's score_key (e.g. val mean IoU) of best.safetensors

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainState:
        values = dict(values)
        if "best_miou" in values:  # checkpoints written before tasks had their own score
            values["best_score"] = values.pop("best_miou")
        return cls(**values)


def setup_runtime(config: RunConfig) -> tuple[DistInfo, torch.device]:
    """Device, process group, threads and seed."""
    dist_info = init_distributed(resolve_device(config.device))
    device = resolve_device(config.device, dist_info.local_rank)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed + dist_info.rank)
    return dist_info, device


def make_loader(
    dataset: Any, config: RunConfig, dist_info: DistInfo, device: torch.device, train: bool
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


class Trainer:
    """Owns one run: datasets, model, optimiser, loop, evaluation and checkpoints."""

    def __init__(self, config: RunConfig, task: Task | None = None) -> None:
        if task is None:
            from pixelwise.methods.segmentation import SegmentationTask

            task = SegmentationTask(config)  # type: ignore[arg-type]
        self.config = config
        self.task = task
        self.dist, self.device = setup_runtime(config)
        self.output = Path(config.output)
        self.train_set, self.val_set = task.datasets()
        self.model, self.base_lr = task.build_model()
        self.frozen = freeze_stages(self.model.backbone, config.freeze)
        self.model.to(self.device)
        self.net: nn.Module = self.model
        if self.dist.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        self.optimizer = optim.build_optimizer(self.model, config, self.base_lr)
        self.train_loader = make_loader(self.train_set, config, self.dist, self.device, train=True)
        self.val_loader = make_loader(self.val_set, config, self.dist, self.device, train=False)
        self.state = TrainState()
        self.log = JsonlLogger(self.output / "log.jsonl", enabled=self.dist.is_main)

    # ----------------------------------------------------------------- checkpoints
    def metadata(self) -> dict[str, Any]:
        return {
            "model": self.model.config.to_dict(),
            **self.task.metadata(),
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
        self.state = TrainState.from_dict(checkpoint.meta["state"])

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
        for module in self.frozen:  # frozen layers keep their BatchNorm statistics
            module.eval()
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
                loss = self.compute_loss(images, targets)
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

    def compute_loss(self, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        targets = {k: v.to(self.device, non_blocking=True) for k, v in targets.items()}
        # bfloat16 autocast needs no loss scaling; on CPUs with AVX512-BF16/AMX it is ~1.6x faster (docs/results.md).
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.amp):
            return self.task.loss(self.net, images, targets)

    def validate(self) -> dict[str, Any]:
        scores, examples = self.task.validate(self.model, self.val_loader, self.device, self.dist.is_main)
        self.log.write(
            kind="val", iteration=self.state.iteration, **scores_to_json(scores), epoch=self.state.epoch
        )
        scores["epoch"] = self.state.epoch
        if self.dist.is_main:
            self.task.save_examples(examples, self.output / "examples" / f"epoch{self.state.epoch:03d}")
            print(f"epoch {self.state.epoch}: {self.task.summary(scores)}")
        score = scores[self.task.score_key]
        if score > self.state.best_score:
            self.state.best_score = score
            self.save("best", with_training_state=False)
        return scores


def train(config: RunConfig, task: Task | None = None) -> dict[str, Any]:
    """Run a training job described by ``config`` (supervised segmentation unless a task is given)."""
    return Trainer(config, task).fit()
