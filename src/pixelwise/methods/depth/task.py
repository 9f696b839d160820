"""``DepthTask`` and ``DepthModel``: depth from RGB or from labels on any segmentation model (see the package
docstring)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from pixelwise.engine.distributed import all_reduce_sum
from pixelwise.engine.inference import rescale
from pixelwise.methods.depth.config import DepthConfig
from pixelwise.methods.segmentation import (
    SegmentationTask,
    base_and_indices,
    depth_l1,
    load_backbone_from_run,
    reject_unused_options,
)
from pixelwise.metrics import DepthErrors
from pixelwise.models import ModelConfig, SegmentationModel
from pixelwise.models.weights import load_backbone_weights


def one_hot_labels(seg: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Labels [N, H, W] -> one binary mask per class [N, K, H, W] float, channel k = class id k; void (any id
    outside 0..K-1, e.g. 255) is all-zero (Mostajabi §5.5.1)."""
    seg = seg.as_subclass(torch.Tensor).long()
    known = (seg >= 0) & (seg < num_classes)
    hot = F.one_hot(seg.where(known, torch.zeros_like(seg)), num_classes).movedim(-1, 1).float()
    return hot * known[:, None].float()


def input_channels(mode: str, num_classes: int, rgb_channels: int = 3) -> tuple[int, int | None]:
    """(in_channels, image_channels) of a depth model reading ``mode``; RGB alone keeps the legacy rule."""
    if mode == "rgb":
        return rgb_channels, None
    labels = num_classes
    return (labels + 3, 3) if mode.endswith("+rgb") else (labels, 0)


@dataclass(frozen=True)
class DepthModelConfig(ModelConfig):
    """The segmentation model's config, stored as its own kind (eval / predict must not take it for a segmenter)."""

    KIND: ClassVar[str] = "depth"
    num_classes: int = 1
    depth_input: str = "rgb"  # what it reads (DEPTH_INPUTS); the channels after RGB are the label channels


class DepthModel(nn.Module):
    """``model(images in [0, 1]) -> {"depth": metres [N, 1, H, W]}`` on a one-channel segmentation model."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = DepthModelConfig(**{**dataclasses.asdict(config), "num_classes": 1})
        plain = {k: v for k, v in dataclasses.asdict(self.config).items() if k != "depth_input"}
        self.net = SegmentationModel(ModelConfig(**plain))
        # A learnt global log depth, set from the training data before training: the head then learns relative
        # depth around it instead of climbing from exp(0) = 1 m at the optimiser's pace.
        self.log_depth = nn.Parameter(torch.zeros(()))

    @property
    def backbone(self) -> nn.Module:
        return self.net.backbone

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        log_depth = self.net(images)["seg"].float() + self.log_depth
        return {"depth": log_depth.clamp(max=20).exp()}  # clamp: exp never overflows


def labelled_only(dataset: Any, split: str, mode: str) -> Any:
    """``dataset`` without its depth-only images (an rgbd: list's lines without labels): with ``--input seg`` their
    label input would be all zeros, a wrong input rather than a missing one."""
    base, indices = base_and_indices(dataset)
    flags = getattr(base, "labelled", None)
    if flags is None or all(flags[i] for i in indices):
        return dataset
    keep = [position for position, i in enumerate(indices) if flags[i]]
    if not keep:
        raise ValueError(f"--input {mode}: no {split} image has labels; use --input rgb for depth-only data")
    print(f"--input {mode}: {len(indices) - len(keep)} {split} images have no labels (depth only): left out")
    subset = Subset(dataset, keep)
    subset.info = dataset.info  # type: ignore[attr-defined]
    return subset


class DepthTask(SegmentationTask):
    """Depth regression on the segmentation task's data pipeline (crops and flips move depth with the image)."""

    score_key = "delta1"

    def __init__(self, config: DepthConfig) -> None:
        super().__init__(config)  # type: ignore[arg-type]
        self.config: DepthConfig = config
        self.seg_model: nn.Module | None = None  # --seg-from: predicts the label input (never trained here)
        if config.input.startswith("pred-seg") != bool(config.seg_from):
            raise ValueError(
                f"--input {config.input}: --seg-from is needed with pred-seg inputs and only read with them"
            )

    def datasets(self) -> tuple[Dataset, Dataset]:
        train, val = super().datasets()
        if "depth" not in train[0][1]:
            raise ValueError(
                f"{self.config.data} has no depth targets (the synthetic scenes do; CamVid does not)"
            )
        if self.config.input in ("seg", "seg+rgb"):  # the ground-truth labels are the input
            train, val = (
                labelled_only(train, "train", self.config.input),
                labelled_only(val, "val", self.config.input),
            )
        self.train_set = train
        return train, val

    def build_model(self) -> tuple[nn.Module, float]:
        config = self.config
        reject_unused_options(
            config, regularizer="none", class_weights="none", loss_sampling=1.0, select_fraction=0.0,
            fusion="none", multitask="none",
        )  # fmt: skip
        if config.input != "rgb" and config.in_channels != 3:
            raise ValueError(f"--input {config.input} reads RGB (or no image); drop --in-channels 1")
        num_classes = self.info.num_classes if self.info is not None else 0
        if config.seg_from:
            from pixelwise.methods.kinds import build_model_from_checkpoint

            self.seg_model, meta = build_model_from_checkpoint(config.seg_from, expect="segmentation")
            self.seg_model.requires_grad_(False)
            theirs = list(meta.get("dataset", {}).get("class_names", []))
            ours = list(self.info.class_names) if self.info is not None else theirs
            if theirs != ours:  # the label channels are read by class index: same classes, same order
                raise ValueError(f"--seg-from {config.seg_from}: classes {theirs} there, {ours} here")
        in_channels, image_channels = input_channels(config.input, num_classes, config.in_channels)
        model = DepthModel(DepthModelConfig(config.arch, config.backbone, 1, in_channels, config.output_stride,
                                            config.head_width, image_channels, depth_input=config.input))  # fmt: skip
        if config.weights:
            load_backbone_weights(model.backbone, config.weights, config.allow_partial)
        if config.init_from:
            load_backbone_from_run(model, config.init_from)  # the backbone only: the head predicts depth here
        with torch.no_grad():
            model.log_depth.fill_(self.mean_log_depth())
        return model, config.lr

    def mean_log_depth(self, images: int = 64) -> float:
        """Mean log depth of the known pixels of the first ``images`` training samples."""
        train = self.train_set
        logs = [train[i][1]["depth"].as_subclass(torch.Tensor) for i in range(min(images, len(train)))]
        known = torch.cat([d[d > 0] for d in logs])
        return float(known.log().mean()) if len(known) else 0.0

    def model_inputs(self, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """What the network reads under ``--input``: RGB, label channels (ground truth or predicted), or both."""
        mode = self.config.input
        if mode == "rgb":
            return images
        if mode.startswith("pred-seg"):
            assert self.seg_model is not None
            seg_model = self.seg_model.to(images.device).eval()
            with torch.no_grad():
                labels = seg_model(images[:, :3])["seg"].float().softmax(dim=1)
        else:
            labels = one_hot_labels(targets["seg"], self.info.num_classes).to(images.device)
        return torch.cat([images, labels], dim=1) if mode.endswith("+rgb") else labels

    def loss(self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        # Divided by the processes' mean count of known pixels, as segmentation_loss does: under torchrun DDP's
        # gradient average then equals one process's mean over the union batch (0, not NaN, without any).
        return depth_l1(net(self.model_inputs(images, targets))["depth"], targets["depth"])

    @torch.no_grad()
    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, progress: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        model.eval()
        errors = DepthErrors(self.config.relative_to, device=device)
        examples: list[Any] = []
        for images, targets in tqdm(loader, desc="eval depth", leave=False, disable=not progress):
            truth = targets["depth"].as_subclass(torch.Tensor).to(device)
            inputs = self.model_inputs(images.to(device), {k: v.to(device) for k, v in targets.items()})
            small = rescale(inputs, self.config.eval_scale)
            depth = F.interpolate(
                model(small)["depth"], size=truth.shape[-2:], mode="bilinear", align_corners=False
            )
            errors.update(depth, truth)
            if len(examples) < self.config.num_examples:  # (image, GT depth, predicted depth), first images
                examples.append((images[0, :3].cpu(), truth[0].cpu(), depth[0].cpu()))
        return errors.scores(all_reduce_sum), examples

    def save_examples(self, examples: list[Any], folder: Path) -> None:
        """Colour-mapped depth PNGs: image | GT | prediction | relative error (report/images.py)."""
        from pixelwise.report.images import save_depth_panel

        for index, (image, truth, depth) in enumerate(examples):
            save_depth_panel(image, truth, depth, folder / f"depth_{index:02d}.png")

    def summary(self, scores: dict[str, Any]) -> str:
        return (
            f"val depth RMSE {scores['rmse']:.3f} m, AbsRel {scores['abs_rel']:.3f}, "
            f"delta<1.25 {scores['delta1']:.3f}"
        )

    def metadata(self) -> dict[str, Any]:
        meta = {
            **super().metadata(),
            "relative_to": self.config.relative_to,
            "depth_input": self.config.input,
        }
        return meta | ({"seg_from": self.config.seg_from} if self.config.seg_from else {})
