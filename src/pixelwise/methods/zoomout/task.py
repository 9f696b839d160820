"""``pixelwise zoomout``: the superpixel zoom-out classifier trained on fixed zoom-out features (thesis §3.4.2).

The backbone is frozen, as in the thesis (its VGG-16 was "not fine-tuned in any way"), so every training
superpixel's descriptor is computed once, before training (with a progress bar), and the training loop only fits
the MLP on them with the class-rebalanced log-loss (Eq. 3.3.1: -(1/N) sum_i (1/f_{y_i}) log p(y_i), f_c the class
frequency among the training superpixels). Validation runs the whole model on the val images (SLIC, backbone,
pooling, classifier) and scores the painted label maps with the same metrics as every segmentation model, next to
the oracle: each superpixel painted with its majority label (Table 3.3).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pixelwise.data import build_dataset, eval_transforms
from pixelwise.engine.config import data_options
from pixelwise.engine.distributed import all_reduce_sum, resolve_device
from pixelwise.engine.inference import rescale
from pixelwise.engine.optim import class_weights
from pixelwise.methods.segmentation import (
    SegmentationTask,
    labelled_subset,
    load_backbone_from_run,
    reject_unused_options,
    segmentation_loss,
)
from pixelwise.methods.zoomout.config import ZoomOutConfig
from pixelwise.methods.zoomout.model import SuperpixelZoomOut, SuperpixelZoomOutConfig
from pixelwise.methods.zoomout.superpixels import majority_labels
from pixelwise.metrics import confusion_matrix, segmentation_scores
from pixelwise.models.weights import load_backbone_weights


class DescriptorDataset(Dataset):
    """Zoom-out descriptors [D] of the training superpixels and their majority labels; filled by the task once
    the model exists. Items are ``(descriptor, {"seg": label})``, so the training loop needs nothing new."""

    def __init__(self) -> None:
        self.descriptors = torch.empty(0)
        self.labels = torch.empty(0, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.descriptors[index].float(), {"seg": self.labels[index]}


@torch.no_grad()
def extract_descriptors(
    model: SuperpixelZoomOut, images: Dataset, ignore_index: int, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """(descriptors [S, D] float16, majority labels [S]) of every labelled superpixel of ``images``."""
    model.eval()
    device = next(model.parameters()).device
    descriptors, labels = [], []
    for index in tqdm(range(len(images)), desc="zoom-out features", disable=not progress):
        image, target = images[index]
        features, segments = model.descriptors(image[None].to(device))
        features, segments = features.cpu(), segments.cpu()
        majority = majority_labels(segments[0], target["seg"], model.config.num_classes, ignore_index)
        keep = majority != ignore_index
        descriptors.append(features[keep].half())
        labels.append(majority[keep])
    return torch.cat(descriptors), torch.cat(labels)


class ZoomOutTask(SegmentationTask):
    """Segmentation by superpixel zoom-out: the segmentation task's data and metrics, its own model and loss."""

    def __init__(self, config: ZoomOutConfig) -> None:
        super().__init__(config)  # type: ignore[arg-type]
        self.config: ZoomOutConfig = config
        self.train_descriptors = DescriptorDataset()
        self.train_images: Dataset | None = None
        self.oracle_mean_iou: float | None = None  # depends on the superpixels only: computed once

    def datasets(self) -> tuple[Dataset, Dataset]:
        config = self.config
        reject_unused_options(
            config, regularizer="none", class_weights="none", loss_sampling=1.0, select_fraction=0.0
        )
        if config.freeze != "backbone" or config.recalibrate_bn:
            raise ValueError(
                "zoomout trains on descriptors computed once from a fixed backbone: keep --freeze backbone, and "
                "no --recalibrate-bn (init from a run trained on these images instead)"
            )
        base_size = tuple(config.base_size) if config.base_size else None
        # Fixed features: the training images as they are (no crops or flips; mirror-max sees both sides).
        images = build_dataset(
            config.data, "train", size=base_size, transform=eval_transforms(), **data_options(config)
        )
        images.preload(progress=False)
        self.info = images.info
        self.train_images = labelled_subset(images, config.labels_fraction, config.seed)
        return self.train_descriptors, self.validation_dataset()

    def build_model(self) -> tuple[nn.Module, float]:
        config, info = self.config, self.info
        assert info is not None and self.train_images is not None, "datasets() first"
        model = SuperpixelZoomOut(
            SuperpixelZoomOutConfig(
                backbone=config.backbone,
                num_classes=info.num_classes,
                in_channels=config.in_channels,
                superpixels=config.superpixels,
                compactness=config.compactness,
                subscene_radius=config.subscene_radius,
                mirror_max=config.mirror_max,
                hidden=config.hidden,
                dropout=config.dropout,
            )
        )
        if config.weights:
            load_backbone_weights(model.backbone, config.weights, config.allow_partial)
        # Any run's backbone (segmentation, colorization, M&M, ...): the classifier is new.
        if config.init_from:
            load_backbone_from_run(model, config.init_from)
        # On the run's device (rank's GPU under torchrun): extraction is the expensive part of this method.
        model.to(resolve_device(config.device, int(os.environ.get("LOCAL_RANK", "0"))))
        descriptors, labels = extract_descriptors(model, self.train_images, info.ignore_index)
        self.train_descriptors.descriptors, self.train_descriptors.labels = descriptors, labels
        counts = torch.bincount(labels, minlength=info.num_classes)
        self.loss_weights = class_weights(counts, "inverse-frequency")  # Eq. 3.3.1, among superpixels
        return model, config.lr

    def loss(self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = net(images)["superpixel_logits"].float()  # ``images`` is a batch of descriptors here
        weights = self.loss_weights.to(logits.device) if self.loss_weights is not None else None
        return segmentation_loss(logits, targets["seg"], weights, self.info.ignore_index, 1.0)

    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, progress: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        scores, examples = super().validate(model, loader, device, progress)
        if self.oracle_mean_iou is None:
            oracle = oracle_scores(model, loader, device, self.info.ignore_index, self.config.eval_scale)
            self.oracle_mean_iou = oracle["mean_iou"]
        return {**scores, "oracle_mean_iou": self.oracle_mean_iou}, examples

    def summary(self, scores: dict[str, Any]) -> str:
        return f"{super().summary(scores)}, superpixel oracle mIoU {scores['oracle_mean_iou']:.4f}"


@torch.no_grad()
def oracle_scores(
    model: SuperpixelZoomOut, loader: DataLoader, device: torch.device, ignore_index: int, scale: float = 1.0
) -> dict[str, Any]:
    """Scores of painting every superpixel with its majority label (the bound of Table 3.3): superpixels of the
    val images at the scale the model sees them, enlarged (nearest) to the labels, scored at full label resolution
    like the model."""
    classes = model.config.num_classes
    cm = torch.zeros(classes, classes, dtype=torch.long, device=device)
    for images, targets in loader:
        labels = targets["seg"].to(device)
        segments = model.superpixels_of(rescale(images, scale)).to(device)  # the superpixels the model sees
        segments = F.interpolate(segments[:, None].float(), size=labels.shape[-2:], mode="nearest")[
            :, 0
        ].long()
        for segment, label in zip(segments, labels):
            painted = majority_labels(segment, label, classes, ignore_index)[segment]
            cm += confusion_matrix(painted, label, classes, ignore_index)
    return segmentation_scores(all_reduce_sum(cm))
