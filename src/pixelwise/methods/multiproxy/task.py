"""``pixelwise pretrain --method multi``: several proxy tasks train one backbone (Larsson Ch. 4, §4.5-4.7).

Per step every active task runs its own forward and backward on the shared network (C and J on the batch's
images, V on the batch's flow pairs); the training loop's gradient combiner (``--combine sum | normsgd |
separate``, ``--round-robin Q``) makes the step. With one task (``--method jigsaw`` / ``motion``, or ``--tasks
colorization``) this is plain single-proxy pretraining through the same code, so the arms of a study differ in
their tasks only. Validation reports each task's loss (and jigsaw / motion accuracy) on the val images (which
are also pretraining images when --splits includes val: a proxy loss, not a held-out score) and the last fifth
of the flow clip, with a fixed random stream; best.safetensors is chosen by their negated sum (no label is
read anywhere).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pixelwise.engine.distributed import all_reduce_sum
from pixelwise.engine.inference import rescale
from pixelwise.methods.colorization import ColorizationTask
from pixelwise.methods.multiproxy.data import FlowBeside, flow_datasets
from pixelwise.methods.multiproxy.model import MultiProxyConfig, MultiProxyModel
from pixelwise.methods.multiproxy.split import split_weight_masks
from pixelwise.methods.pretrain import PretrainConfig
from pixelwise.models.weights import load_backbone_weights

IMAGE_TASKS = ("colorization", "jigsaw")


def proxy_tasks(config: PretrainConfig) -> tuple[str, ...]:
    """The tasks of a run: ``--tasks`` for ``--method multi``, else the method's own."""
    tasks = tuple(config.tasks) if config.method == "multi" else (config.method,)
    unknown = [t for t in tasks if t not in (*IMAGE_TASKS, "motion")]
    if unknown or not tasks or len(set(tasks)) != len(tasks):
        raise ValueError(
            f"--tasks {' '.join(tasks) or '(none)'}: give each of colorization, jigsaw, motion at most once"
        )
    return tasks


class MultiProxyTask:
    """A training task with one loss per proxy (``losses``): see the module docstring."""

    score_key = "neg_loss"

    def __init__(self, config: PretrainConfig) -> None:
        self.config = config
        self.tasks = proxy_tasks(config)
        self.name = "images"
        self.flow_train: Dataset | None = None
        self.flow_val: Dataset | None = None

    def loss_names(self) -> list[str]:
        return list(self.tasks)

    def datasets(self) -> tuple[Dataset, Dataset]:
        config = self.config
        images = ColorizationTask(config)
        train, val = images.datasets()  # the colorization pretraining images (labels loaded, never read)
        self.name = images.name
        if "jigsaw" in self.tasks and len(val):
            self._check_val_size(val)
        if "motion" in self.tasks:
            if not config.flow_data:
                raise ValueError(
                    "--tasks motion needs --flow-data (flow-synthetic:N:HxW, flow-camvid:PATH, ...)"
                )
            size = tuple(config.base_size) if config.base_size else None
            self.flow_train, self.flow_val = flow_datasets(config.flow_data, size)  # type: ignore[arg-type]
            only_motion = not any(t in IMAGE_TASKS for t in self.tasks)
            train = FlowBeside(train, self.flow_train, length=len(self.flow_train) if only_motion else None)
        return train, val

    def _check_val_size(self, val: Dataset) -> None:
        """Jigsaw validates on the val images at --eval-scale: they must hold its crop (refused before training)."""
        height, width = val[0][0].shape[-2:]
        small = min(height, width) * self.config.eval_scale
        crop = MultiProxyConfig.jigsaw_crop
        if small < crop:
            raise ValueError(
                f"--eval-scale {self.config.eval_scale:g} makes the {height}x{width} val images smaller than the "
                f"{crop}x{crop} jigsaw crop; raise --eval-scale to at least {crop / min(height, width):.2f}"
            )

    def model_config(self) -> MultiProxyConfig:
        config = self.config
        return MultiProxyConfig(
            backbone=config.backbone,
            tasks=self.tasks,
            output_stride=config.output_stride,
            hidden=config.hidden,
            colour_target=config.loss,
            samples=config.samples,
            window=config.window,
            jigsaw_grey=config.jigsaw_grey,
            motion_bins=config.motion_bins,
        )

    def build_model(self) -> tuple[MultiProxyModel, float]:
        config = self.config
        model = MultiProxyModel(self.model_config())
        if config.weights:
            load_backbone_weights(model.backbone, config.weights, config.allow_partial)
        if config.init_from:  # e.g. one proxy initialised from another (Fig. 4.7)
            from pixelwise.methods.segmentation import load_backbone_from_run

            load_backbone_from_run(model, config.init_from)
        if "motion" in self.tasks and self.flow_train is not None:
            model.proxies["motion"].fit_from(self.flow_train)  # equiprobable bins of the training flows
        return model, config.lr

    def gradient_masks(self, model: MultiProxyModel) -> dict[str, dict[nn.Parameter, torch.Tensor]] | None:
        """--split-weights: each task updates only the backbone weights into its channel groups (§4.4)."""
        if not self.config.split_weights:
            return None
        return split_weight_masks(model.backbone, self.tasks)

    def losses(
        self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> Iterator[tuple[str, Callable[[], torch.Tensor]]]:
        for name in self.tasks:
            yield name, partial(_task_loss, net, name, images, targets)

    def loss(self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(_task_loss(net, name, images, targets) for name in self.tasks)  # type: ignore[return-value]

    @torch.no_grad()
    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, progress: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        model.eval()
        names = list(self.tasks)
        sums = torch.zeros(
            len(names), 3, dtype=torch.float64, device=device
        )  # loss, accuracy (x images), images
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(0)  # the same points, puzzles and pairs at every validation
            for index, name in enumerate(names):
                for images, targets in self._val_batches(name, loader, device, progress):
                    out = model(name, images, targets)
                    count = len(
                        images
                    )  # weights each batch by its images: a short last batch is not overweighted
                    accuracy = float(out.get("accuracy", torch.zeros(())))
                    sums[index] += torch.tensor(
                        [float(out["loss"]) * count, accuracy * count, count], device=device
                    ).double()
        all_reduce_sum(sums)
        scores: dict[str, Any] = {}
        for index, name in enumerate(names):
            count = max(float(sums[index, 2]), 1.0)
            scores[f"{name}_loss"] = float(sums[index, 0]) / count
            if name != "colorization":
                scores[f"{name}_accuracy"] = float(sums[index, 1]) / count
        scores["loss"] = sum(scores[f"{n}_loss"] for n in names)
        scores["neg_loss"] = -scores["loss"]
        return scores, []

    def _val_batches(
        self, name: str, loader: DataLoader, device: torch.device, progress: bool
    ) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        if name == "motion":
            assert self.flow_val is not None
            flows = DataLoader(self.flow_val, batch_size=self.config.batch_size)
            for image, target in tqdm(flows, desc="val motion", leave=False, disable=not progress):
                yield image, {"flow_image": image.to(device), "flow": target["flow"].to(device)}
            return
        for images, _ in tqdm(loader, desc=f"val {name}", leave=False, disable=not progress):
            yield rescale(images.to(device), self.config.eval_scale), {}

    def save_examples(self, examples: list[Any], folder: Path) -> None:
        return None

    def summary(self, scores: dict[str, Any]) -> str:
        parts = []
        for name in self.tasks:
            accuracy = scores.get(f"{name}_accuracy")
            shown = f", accuracy {accuracy:.3f}" if accuracy is not None else ""
            parts.append(f"{name} loss {scores[f'{name}_loss']:.4f}{shown}")
        return "val " + "; ".join(parts)

    def metadata(self) -> dict[str, Any]:
        return {"dataset": {"name": self.name}, "proxy_tasks": list(self.tasks)}


def _task_loss(
    net: nn.Module, name: str, images: torch.Tensor, targets: dict[str, torch.Tensor]
) -> torch.Tensor:
    return net(name, images, targets)["loss"]
