"""``pixelwise depth``: monocular depth from RGB (Mostajabi thesis §5.5) with any segmentation architecture.

The network is a pixelwise segmentation model with one output channel read as log depth, so every architecture
(FCN-32s/16s/8s, zoom-out), backbone, initialisation (e.g. ``--init-from`` a colorization run) and the whole
training loop carry over; depth = exp(output) is positive by construction and starts at 1 m (FCN score layers are
zero-initialised). The loss is L1 in metres over the pixels with known depth (§5.5.2: "L1 depth"); validation
reports RMSE, RMSE(log), AbsRel, SqRel and the delta accuracies (:class:`~pixelwise.metrics.DepthErrors`), and
keeps the checkpoint with the best delta < 1.25. Data must carry a ``depth`` target (the synthetic scenes do;
CamVid has none).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pixelwise.engine.config import option
from pixelwise.engine.distributed import all_reduce_sum, mean_over_processes
from pixelwise.engine.inference import rescale
from pixelwise.methods.segmentation import (
    SegmentationTask,
    TrainConfig,
    load_backbone_from_run,
    reject_unused_options,
)
from pixelwise.metrics import DepthErrors
from pixelwise.models import ModelConfig, SegmentationModel
from pixelwise.models.weights import load_backbone_weights


@dataclass
class DepthConfig(TrainConfig):
    """Monocular depth (``pixelwise depth``, Mostajabi thesis §5.5): a one-channel model read as log depth."""

    output: str = option("runs/depth", "run folder: config.yaml, log.jsonl, last/best checkpoints")
    scale: list[float] = option(
        [1.0, 1.0],
        "random scale jitter range before cropping; off by default: zooming an image changes its apparent "
        "distance, which its metric depth targets do not follow",
        length=2,
        exclusive_minimum=0,
    )
    relative_to: str = option(
        "ground-truth",
        "divisor of AbsRel and SqRel: the ground truth (standard) or the prediction (the thesis' convention)",
        choices=("ground-truth", "prediction"),
    )


@dataclass(frozen=True)
class DepthModelConfig(ModelConfig):
    """The segmentation model's config, stored as its own kind (eval / predict must not take it for a segmenter)."""

    KIND: ClassVar[str] = "depth"
    num_classes: int = 1


class DepthModel(nn.Module):
    """``model(images in [0, 1]) -> {"depth": metres [N, 1, H, W]}`` on a one-channel segmentation model."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = DepthModelConfig(**{**dataclasses.asdict(config), "num_classes": 1})
        self.net = SegmentationModel(self.config)
        # A learnt global log depth, set from the training data before training: the head then learns relative
        # depth around it instead of climbing from exp(0) = 1 m at the optimiser's pace.
        self.log_depth = nn.Parameter(torch.zeros(()))

    @property
    def backbone(self) -> nn.Module:
        return self.net.backbone

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        log_depth = self.net(images)["seg"].float() + self.log_depth
        return {"depth": log_depth.clamp(max=20).exp()}  # clamp: exp never overflows


class DepthTask(SegmentationTask):
    """Depth regression on the segmentation task's data pipeline (crops and flips move depth with the image)."""

    score_key = "delta1"

    def __init__(self, config: DepthConfig) -> None:
        super().__init__(config)  # type: ignore[arg-type]
        self.config: DepthConfig = config

    def datasets(self) -> tuple[Dataset, Dataset]:
        train, val = super().datasets()
        if "depth" not in train[0][1]:
            raise ValueError(
                f"{self.config.data} has no depth targets (the synthetic scenes do; CamVid does not)"
            )
        self.train_set = train
        return train, val

    def build_model(self) -> tuple[nn.Module, float]:
        config = self.config
        reject_unused_options(
            config, regularizer="none", class_weights="none", loss_sampling=1.0, select_fraction=0.0
        )
        model = DepthModel(ModelConfig(config.arch, config.backbone, 1, config.in_channels, config.output_stride,
                                       config.head_width))  # fmt: skip
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

    def loss(self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        depth = net(images)["depth"]
        truth = targets["depth"].as_subclass(torch.Tensor).float()
        known = truth > 0
        # Divided by the processes' mean count of known pixels, as segmentation_loss does: under torchrun DDP's
        # gradient average then equals one process's mean over the union batch (0, not NaN, without any).
        total = (depth - truth).abs()[known].sum()
        return total / mean_over_processes(known.sum().float()).clamp(min=1)

    @torch.no_grad()
    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, progress: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        model.eval()
        errors = DepthErrors(self.config.relative_to, device=device)
        for images, targets in tqdm(loader, desc="eval depth", leave=False, disable=not progress):
            truth = targets["depth"].as_subclass(torch.Tensor).to(device)
            small = rescale(images.to(device), self.config.eval_scale)
            depth = F.interpolate(
                model(small)["depth"], size=truth.shape[-2:], mode="bilinear", align_corners=False
            )
            errors.update(depth, truth)
        return errors.scores(all_reduce_sum), []

    def save_examples(self, examples: list[Any], folder: Path) -> None:
        return None

    def summary(self, scores: dict[str, Any]) -> str:
        return (
            f"val depth RMSE {scores['rmse']:.3f} m, AbsRel {scores['abs_rel']:.3f}, "
            f"delta<1.25 {scores['delta1']:.3f}"
        )

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "relative_to": self.config.relative_to}
