"""Mix-and-Match tuning as a training task (Zhan et al. 2018, Fig. 2(b)): ``pixelwise tune --method mixmatch``.

Per iteration, on a batch of B labelled images of the target set (§4: B = 16, K = 10):
mix (:mod:`.sampler`: K patches per image, pooled) -> features (:mod:`.model`: normalised pool5) -> match
(:mod:`.graph`: the class-wise connected graph, one triplet per node; or the random-triplet baseline) -> the
triplet loss of Eq. 1 (:mod:`.loss`). No label beyond the target set's own is used. Validation reports the
feature diagnostic of :mod:`.diagnose` (nearest-class-centroid accuracy of val patches, the best checkpoint's
score). The checkpoint's backbone initialises segmentation fine-tuning: ``pixelwise train --init-from RUN``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from pixelwise.data import DatasetInfo, build_dataset, eval_transforms, train_transforms, validation_spec
from pixelwise.engine.checkpoint import load_checkpoint
from pixelwise.engine.config import data_options
from pixelwise.methods.mixmatch.config import TuneConfig
from pixelwise.methods.mixmatch.diagnose import centroid_diagnostic, patch_features
from pixelwise.methods.mixmatch.graph import TRIPLET_SAMPLERS
from pixelwise.methods.mixmatch.loss import triplet_loss
from pixelwise.methods.mixmatch.model import MixMatchConfig, MixMatchModel
from pixelwise.methods.mixmatch.sampler import PatchSampler, sample_patches
from pixelwise.methods.segmentation import labelled_subset, load_backbone_from_checkpoint
from pixelwise.models.weights import load_backbone_weights


class MixMatchTask:
    """``pixelwise tune --method mixmatch``: triplet loss on patch graphs, scored by val nearest-centroid accuracy."""

    score_key = "centroid_acc"

    def __init__(self, config: TuneConfig) -> None:
        if config.sampler not in TRIPLET_SAMPLERS:
            raise ValueError(
                f"unknown triplet sampler {config.sampler!r}; choose from {', '.join(TRIPLET_SAMPLERS)}"
            )
        self.config = config
        self.info: DatasetInfo | None = None
        self.sampler = PatchSampler.from_options(config.to_dict())

    def datasets(self) -> tuple[Dataset, Dataset]:
        config = self.config
        base_size = tuple(config.base_size) if config.base_size else None
        transform = train_transforms(
            tuple(config.crop), tuple(config.scale), config.hflip, config.color_jitter
        )
        train = build_dataset(
            config.data, "train", size=base_size, transform=transform, **data_options(config)
        )
        # Val patches are cut at the training scale (--base-size), so the diagnostic sees patches like training's.
        val = build_dataset(
            validation_spec(config.data, config.val_data),
            "val",
            size=base_size,
            transform=eval_transforms(),
            cache=False,
            **data_options(config),
        )
        train.preload(progress=False)
        self.info = train.info
        self.sampler = PatchSampler.from_options(config.to_dict(), self.info.ignore_index)
        return labelled_subset(train, config.labels_fraction, config.seed), val

    def build_model(self) -> tuple[MixMatchModel, float]:
        config = self.config
        parent = load_checkpoint(config.init_from) if config.init_from else None
        described = parent.meta.get("model", {}) if parent is not None else {}
        # A colorization backbone sees grey input (in_channels 1): take the checkpoint's unless told otherwise.
        in_channels = config.in_channels or described.get("in_channels", 3)
        model = MixMatchModel(
            MixMatchConfig(config.backbone, in_channels, config.output_stride, config.feature_layer)
        )
        if config.weights:
            load_backbone_weights(model.backbone, config.weights, config.allow_partial)
        if parent is not None:
            load_backbone_from_checkpoint(model, parent.model_state, described, str(config.init_from))
        return model, config.lr

    def loss(self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        patches = sample_patches(images, targets["seg"].as_subclass(torch.Tensor), self.sampler)
        if len(patches) < 2:  # an all-void batch: run two blank patches so backward (and DDP) still happen
            blank = images.new_zeros(2, images.shape[1], self.sampler.size, self.sampler.size)
            return net(blank).sum() * 0.0
        embeddings = net(patches.crops)
        triplets = TRIPLET_SAMPLERS[self.config.sampler](patches.labels)
        return triplet_loss(embeddings, triplets, self.config.margin)

    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, progress: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        features, labels, examples = patch_features(
            model,
            loader,
            device,
            self.sampler,
            self.config.seed,
            progress,
            examples=4 * self.config.num_examples,
        )
        return centroid_diagnostic(features, labels, self.info.num_classes), examples

    def save_examples(self, examples: list[Any], folder: Path) -> None:
        """One PNG of val patches, each framed in its class colour (what the 'mix' step feeds the graph)."""
        if not examples:
            return
        from pixelwise.report.images import save_png, to_uint8_image

        border, columns = 3, 8
        size = examples[0][0].shape[-1] + 2 * border
        rows = -(-len(examples) // columns)
        canvas = np.full((rows * size, columns * size, 3), 255, dtype=np.uint8)
        for index, (crop, label) in enumerate(examples):
            top, left = (index // columns) * size, (index % columns) * size
            canvas[top : top + size, left : left + size] = self.info.palette[label]
            rgb = crop.expand(3, -1, -1) if crop.shape[0] == 1 else crop
            canvas[top + border : top + size - border, left + border : left + size - border] = to_uint8_image(
                rgb
            )
        save_png(canvas, Path(folder) / "patches.png")

    def summary(self, scores: dict[str, Any]) -> str:
        return (
            f"val patches: nearest-centroid acc {scores['centroid_acc']:.4f} "
            f"(mean over classes {scores['centroid_mean_class_acc']:.4f}), "
            f"intra/inter distance {scores['intra_inter_ratio']:.4f}"
        )

    def metadata(self) -> dict[str, Any]:
        return {
            "dataset": self.info.to_metadata(),
            "init_from": self.config.init_from,
        }
