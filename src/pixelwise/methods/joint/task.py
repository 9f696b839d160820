"""``JointTask``: the two-part joint model on the Task protocol, and ``run_joint``: the two-phase schedule.

Data: the training images with depth; a seeded ``--labels-fraction`` of them keep their segmentation labels
(``labelled_subset``'s choice; an RGB-D list file's label-less lines never have any), the rest are depth-only
(``has_seg`` False) unless ``--no-depth-only`` drops them. Batches come from :class:`LabelledBatchSampler`
(the engine's ``Task.train_sampler`` hook). Validation reports the final part's depth errors and mean IoU and,
for the two-part arms, part 1's as a diagnostic (``part1_*``).

Schedule (§5.5.2): phase 1 on everything (the thesis: 40 epochs, Adam 1e-4), phase 2 from phase 1's last
checkpoint on the labelled images only at ``--phase2-lr-scale`` times the lr (20 epochs at 1e-5).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from pixelwise.data import build_dataset, train_transforms
from pixelwise.data.rgbd import PartialLabels
from pixelwise.engine.checkpoint import load_checkpoint
from pixelwise.engine.config import data_options
from pixelwise.engine.distributed import all_reduce_sum
from pixelwise.engine.inference import rescale
from pixelwise.methods.joint.config import JointConfig
from pixelwise.methods.joint.loss import TERMS, masked_seg_loss
from pixelwise.methods.joint.model import JointModel, JointModelConfig
from pixelwise.methods.joint.sampler import LabelledBatchSampler
from pixelwise.methods.segmentation import (
    SegmentationTask,
    depth_l1,
    labelled_indices,
    reject_unused_options,
)
from pixelwise.metrics import DepthErrors, confusion_matrix, segmentation_scores
from pixelwise.models.weights import load_backbone_weights


class JointTask(SegmentationTask):
    """Depth + segmentation with the two-part model or one of Table 5.6's arms (``--arm``)."""

    def __init__(self, config: JointConfig) -> None:
        super().__init__(config)  # type: ignore[arg-type]
        self.config: JointConfig = config
        # The arm without a seg loss is chosen on depth (delta < 1.25), every other on mean IoU.
        self.score_key = "delta1" if config.arm == "no-seg" else "mean_iou"
        self.model: JointModel | None = None
        self.train_set: Any = None

    def labelled_only(self) -> bool:
        """Arms trained on the labelled images alone: --no-depth-only, and the baseline without a depth loss."""
        return not self.config.depth_only or self.config.arm == "no-depth"

    def datasets(self) -> tuple[Dataset, Dataset]:
        config = self.config
        reject_unused_options(
            config, regularizer="none", class_weights="none", loss_sampling=1.0, select_fraction=0.0
        )
        base_size = tuple(config.base_size) if config.base_size else None
        transform = train_transforms(
            tuple(config.crop), tuple(config.scale), config.hflip, config.color_jitter
        )
        train = build_dataset(
            config.data, "train", size=base_size, transform=transform, **data_options(config)
        )
        train.preload(progress=False)
        self.info = train.info
        if "depth" not in train[0][1]:
            raise ValueError(f"{config.data} has no depth targets (the synthetic scenes and rgbd: lists do)")
        chosen = set(labelled_indices(len(train), config.labels_fraction, config.seed))
        data: Any = PartialLabels(train, [i in chosen for i in range(len(train))])
        if self.labelled_only():
            flags = data.labelled
            data = Subset(data, [i for i, flag in enumerate(flags) if flag])
            data.labelled = [True] * len(data)  # type: ignore[attr-defined]
            data.info = train.info  # type: ignore[attr-defined]
        if not any(data.labelled):
            raise ValueError(f"{config.data}: no training image has segmentation labels")
        self.train_set = data
        return data, self.validation_dataset()

    def log_depth_statistics(self, images: int = 64) -> tuple[float, float]:
        """Mean and std of log depth over the known pixels of the first ``images`` training samples, under a fixed
        RNG (the samples are randomly cropped: every torchrun process must standardise part 2's input alike)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            depths = [
                self.train_set[i][1]["depth"].as_subclass(torch.Tensor)
                for i in range(min(images, len(self.train_set)))
            ]
        known = torch.cat([d[d > 0] for d in depths]).log()
        return (float(known.mean()), float(known.std().clamp(min=1e-3))) if len(known) > 1 else (0.0, 1.0)

    def build_model(self) -> tuple[nn.Module, float]:
        config = self.config
        assert self.info is not None, "datasets() first"
        if config.in_channels != 3:
            raise ValueError("the joint model reads RGB: drop --in-channels 1")
        if config.init_from:  # phase 2 keeps phase 1's standardisation of part 2's depth input
            stored = load_checkpoint(config.init_from).meta["model"]
            mean, std = stored["log_depth_mean"], stored["log_depth_std"]
        else:
            mean, std = self.log_depth_statistics()
        model = JointModel(
            JointModelConfig(
                config.arch,
                config.backbone,
                self.info.num_classes,
                config.output_stride,
                config.head_width,
                1 if config.arm == "single-part" else 2,
                config.detach,
                mean,
                std,
                config.arm,
            )  # fmt: skip
        )
        with torch.no_grad():
            for part in (model.part1, model.part2):
                if part is not None and part.log_depth is not None:
                    part.log_depth.fill_(mean)
        if config.weights:
            load_backbone_weights(model.backbone, config.weights, config.allow_partial)
        if config.init_from:  # phase 2: the whole of phase 1's model, loss balance included
            state = load_checkpoint(config.init_from).model_state
            model.load_state_dict(state)
        self.model = model
        return model, config.lr

    def train_sampler(self, dataset: Any, rank: int, world_size: int, seed: int) -> LabelledBatchSampler:
        """The Task.train_sampler hook: every batch holds a labelled image (§5.5.2)."""
        sampler = LabelledBatchSampler(dataset.labelled, self.config.batch_size, rank, world_size, seed)
        if self.model is not None:  # the loss balance counts batches: its warm-up is measured in epochs
            calls = len(sampler)
            self.model.balance.warmup_calls = self.config.balance_epochs * calls
            self.model.balance.rebalance_calls = self.config.rebalance_every * calls
        return sampler

    def terms(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """The four loss values in ``TERMS`` order (0 for a part the model lacks)."""
        truth = targets["depth"].as_subclass(torch.Tensor).float()
        has_seg = targets["has_seg"].bool()
        ignore = self.info.ignore_index
        values = []
        for name in TERMS:
            key = name  # the model's output names are the terms' names
            if key not in outputs:
                values.append(torch.zeros((), device=truth.device))
            elif name.endswith("depth"):
                values.append(depth_l1(outputs[key], truth))
            else:
                values.append(masked_seg_loss(outputs[key], targets["seg"], has_seg, ignore))
        return torch.stack(values)

    def loss(self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        has_seg = targets["has_seg"].bool()
        # The frozen-head pass runs only when some process's batch holds a depth-only image (one all-reduce:
        # under torchrun every process must make the same choice, its SyncBatchNorm is a collective).
        depth_only = all_reduce_sum((~has_seg).sum().float())
        outputs = net(images, has_seg=has_seg if bool(depth_only > 0) else None)
        model = getattr(net, "module", net)  # the DDP wrapper's model holds the balance
        return model.balance(self.terms(outputs, targets))

    @torch.no_grad()
    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, progress: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        model.eval()
        num_classes, ignore = self.info.num_classes, self.info.ignore_index
        prefixes = ("", "part1_") if getattr(model, "part2", None) is not None else ("",)
        errors = {p: DepthErrors(self.config.relative_to, device=device) for p in prefixes}
        confusion = {
            p: torch.zeros(num_classes, num_classes, dtype=torch.long, device=device) for p in prefixes
        }
        examples: list[Any] = []
        for images, targets in tqdm(loader, desc="eval joint", leave=False, disable=not progress):
            truth = targets["depth"].as_subclass(torch.Tensor).to(device)
            labels = targets["seg"].as_subclass(torch.Tensor).to(device)
            outputs = model(rescale(images.to(device), self.config.eval_scale))
            for prefix in prefixes:
                size = truth.shape[-2:]
                depth = F.interpolate(
                    outputs[f"{prefix}depth"].float(), size=size, mode="bilinear", align_corners=False
                )
                errors[prefix].update(depth, truth)
                logits = F.interpolate(
                    outputs[f"{prefix}seg"].float(), size=size, mode="bilinear", align_corners=False
                )
                confusion[prefix] += confusion_matrix(logits.argmax(1), labels, num_classes, ignore)
                if prefix == "" and len(examples) < self.config.num_examples:
                    examples.append((images[0, :3].cpu(), truth[0].cpu(), depth[0].cpu(), labels[0].cpu(),
                                     logits[0].argmax(0).cpu()))  # fmt: skip
        scores: dict[str, Any] = {}
        for prefix in prefixes:
            seg = segmentation_scores(all_reduce_sum(confusion[prefix]), self.info.class_names)
            depth = errors[prefix].scores(all_reduce_sum)
            scores |= {f"{prefix}{k}": v for k, v in {**depth, "mean_iou": seg["mean_iou"],
                                                       "pixel_acc": seg["pixel_acc"]}.items()}  # fmt: skip
        return scores, examples

    def save_examples(self, examples: list[Any], folder: Path) -> None:
        """Colour-mapped depth, its relative error and the label maps of the final part (report/images.py)."""
        from pixelwise.report.images import save_depth_panel

        for index, (image, truth, depth, labels, predicted) in enumerate(examples):
            seg = (labels, predicted, self.info.palette)
            save_depth_panel(image, truth, depth, folder / f"joint_{index:02d}.png", segmentation=seg)

    def summary(self, scores: dict[str, Any]) -> str:
        line = f"val depth RMSE {scores['rmse']:.3f} m, delta<1.25 {scores['delta1']:.3f}, mIoU {scores['mean_iou']:.4f}"
        if "part1_rmse" in scores:
            line += f" (part 1: RMSE {scores['part1_rmse']:.3f}, mIoU {scores['part1_mean_iou']:.4f})"
        return line

    def metadata(self) -> dict[str, Any]:
        labelled = sum(self.train_set.labelled) if self.train_set is not None else None
        return {
            **super().metadata(),
            "relative_to": self.config.relative_to,
            "arm": self.config.arm,
            "labelled_images": labelled,
            "training_images": len(self.train_set) if self.train_set is not None else None,
        }


def run_joint(config: JointConfig) -> dict[str, Any]:
    """Train ``config``: one phase, or (``--phase2-epochs``) phase 1 into OUTPUT/phase1 and phase 2 into
    OUTPUT/phase2 from phase 1's last checkpoint, labelled images only, lr x ``--phase2-lr-scale``."""
    from pixelwise.engine.trainer import train

    if config.phase2_epochs == 0:
        return train(config, JointTask(config))
    root = Path(config.output)
    first = dataclasses.replace(config, output=str(root / "phase1"))
    if not (config.resume and (root / "phase1" / "metrics.json").is_file()):  # a finished phase 1 is kept
        first = dataclasses.replace(
            first, resume=config.resume and (root / "phase1" / "last.safetensors").is_file()
        )
        train(first, JointTask(first))
    second_out = root / "phase2"
    second = dataclasses.replace(
        config,
        output=str(second_out),
        init_from=str(root / "phase1" / "last.safetensors"),
        depth_only=False,
        lr=config.lr * config.phase2_lr_scale,
        epochs=config.phase2_epochs,
        resume=config.resume and (second_out / "last.safetensors").is_file(),
    )
    return train(second, JointTask(second))
