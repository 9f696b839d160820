"""Phase 1 of Mostajabi et al. (2018, §3.1) as a training task: an autoencoder on training label maps alone.

``pixelwise pretrain --method label-ae``: the images are loaded with the labels but never read. Per step the
label maps (after crop / flip) are one-hot encoded, passed through the bottleneck and reconstructed; the loss is the
per-pixel cross-entropy over labelled pixels (void pixels: all-zero input, no loss). Validation reconstructs the
val label maps and reports the reconstruction mean IoU (the package's one metrics implementation).

Only the ``train`` split's labels are used: the val labels score the segmentation networks regularised later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pixelwise.data import DatasetInfo, build_dataset, eval_transforms, train_transforms, validation_spec
from pixelwise.engine.config import data_options
from pixelwise.engine.distributed import all_reduce_sum
from pixelwise.methods.label_ae.model import LabelAEConfig, LabelAutoencoder
from pixelwise.methods.pretrain import PretrainConfig
from pixelwise.methods.segmentation import labelled_subset, segmentation_loss
from pixelwise.metrics import confusion_matrix, segmentation_scores


@torch.no_grad()
def reconstruction_scores(
    model: LabelAutoencoder,
    loader: DataLoader,
    device: torch.device,
    progress: bool = False,
    examples: int = 0,
) -> tuple[dict[str, Any], list[tuple[torch.Tensor, torch.Tensor]]]:
    """Reconstruction mean IoU etc. of the label maps in ``loader`` (all-reduced), and (label, reconstruction) pairs."""
    model.eval()
    classes, ignore = model.config.num_classes, model.config.ignore_index
    cm = torch.zeros(classes, classes, dtype=torch.long, device=device)
    kept: list[tuple[torch.Tensor, torch.Tensor]] = []
    for _, targets in tqdm(loader, desc="reconstruct val", leave=False, disable=not progress):
        labels = targets["seg"].to(device).as_subclass(torch.Tensor)
        predictions = model(labels).argmax(dim=1)
        cm += confusion_matrix(predictions, labels, classes, ignore)
        for label, prediction in zip(labels, predictions):
            if len(kept) < examples:
                kept.append((label.cpu(), prediction.cpu()))
    all_reduce_sum(cm)
    return segmentation_scores(cm), kept


class LabelAETask:
    """``pixelwise pretrain --method label-ae``: scored by val reconstruction mean IoU."""

    score_key = "mean_iou"

    def __init__(self, config: PretrainConfig) -> None:
        self.config = config
        self.info: DatasetInfo | None = None

    def datasets(self) -> tuple[Dataset, Dataset]:
        config = self.config
        base_size = tuple(config.base_size) if config.base_size else None
        transform = train_transforms(tuple(config.crop), tuple(config.scale), config.hflip, color_jitter=0.0)
        train = build_dataset(
            config.data, "train", size=base_size, transform=transform, **data_options(config)
        )
        # Val labels at the training resolution: the label model sees maps of one scale, as the network will.
        val = build_dataset(
            validation_spec(config.data, config.val_data),
            "val",
            size=base_size,
            transform=eval_transforms(),
            **data_options(config),
        )
        for dataset in (train, val):
            dataset.preload(progress=False)
        self.info = train.info
        return labelled_subset(train, config.labels_fraction, config.seed), val

    def build_model(self) -> tuple[LabelAutoencoder, float]:
        config, info = self.config, self.info
        assert info is not None, "datasets() first: the autoencoder's class count comes from the data"
        model = LabelAutoencoder(
            LabelAEConfig(
                num_classes=info.num_classes,
                width=config.label_ae_width,
                depth=config.label_ae_depth,
                code_stride=config.label_ae_stride or 2 ** (config.label_ae_depth - 1),
                ignore_index=info.ignore_index,
            )
        )
        return model, config.lr

    def loss(self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = targets["seg"].as_subclass(torch.Tensor)
        # §3.1: the autoencoder "consumes a semantic segmentation label map as input and attempts to replicate it"
        return segmentation_loss(net(labels).float(), labels, None, self.info.ignore_index, 1.0)

    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, progress: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        return reconstruction_scores(model, loader, device, progress, self.config.num_examples)

    def save_examples(self, examples: list[Any], folder: Path) -> None:
        from pixelwise.report.images import colorize_labels, save_panel

        info = self.info
        for index, (label, reconstruction) in enumerate(examples):
            panels = [colorize_labels(x, info.palette, info.ignore_index) for x in (label, reconstruction)]
            save_panel(panels, ["label map", "reconstruction"], Path(folder) / f"{index:02d}.png")

    def summary(self, scores: dict[str, Any]) -> str:
        return f"val reconstruction mIoU {scores['mean_iou']:.4f} pixel acc {scores['pixel_acc']:.4f}"

    def metadata(self) -> dict[str, Any]:
        return {"dataset": self.info.to_metadata()}
