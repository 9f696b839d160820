"""``pixelwise proposals train``: the pairwise region network as a training task (Long thesis §4.4).

Data yield ``(image, {"instances": [H, W]})`` (0 = none, 255 = void) at natural resolution (no crops, no scale
jitter; flips only). The loss is :func:`~.loss.region_loss`; validation proposes (:func:`~.predict.propose`) and
reports R@50 / R@70, ABO, AR (continuous), AR@10/100/1000 and ms per image; ``best.safetensors`` follows AR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.transforms import v2
from tqdm import tqdm

from pixelwise.data.instances import instance_dataset
from pixelwise.methods.proposals.config import ProposalTrainConfig
from pixelwise.methods.proposals.evaluation import collect, summary_scores
from pixelwise.methods.proposals.loss import region_loss
from pixelwise.methods.proposals.model import RegionNet, RegionNetConfig
from pixelwise.methods.proposals.predict import ProposalOptions, pathway_windows
from pixelwise.methods.segmentation import load_backbone_from_run
from pixelwise.models.weights import load_backbone_weights


class Flipped(Dataset):
    """Random horizontal flips of (image, {"instances": Mask}) items; transforms v2 moves the mask with the image."""

    def __init__(self, base: Dataset) -> None:
        self.base, self.flip = base, v2.RandomHorizontalFlip()

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        return self.flip(self.base[index])


def options_of(config: ProposalTrainConfig) -> ProposalOptions:
    return ProposalOptions(config.nms, config.top_k, config.lowest_stride)


class ProposalTask:
    """Object segment proposals: instance data, ``RegionNet``, the region loss, AR validation."""

    score_key = "ar"

    def __init__(self, config: ProposalTrainConfig) -> None:
        self.config = config

    def datasets(self) -> tuple[Dataset, Dataset]:
        config = self.config
        size = tuple(config.base_size) if config.base_size else None
        train = instance_dataset(config.data, "train", size=size)
        val = instance_dataset(config.val_data or config.data, "val", size=size)
        if config.val_images:
            val = Subset(val, range(min(config.val_images, len(val))))
        return (Flipped(train) if config.hflip else train), val

    def build_model(self) -> tuple[nn.Module, float]:
        config = self.config
        model = RegionNet(
            RegionNetConfig(
                config.backbone, 3, tuple(config.pathways), tuple(config.windows), tuple(config.kernels),
                config.reduce, config.transpose, config.shared_matrix,
            )
        )  # fmt: skip
        if config.weights:
            load_backbone_weights(model.backbone, config.weights, config.allow_partial)
        if config.init_from:
            load_backbone_from_run(model, config.init_from)
        self.windows = pathway_windows(model)
        return model, config.lr

    def loss(self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        instances = targets["instances"].as_subclass(torch.Tensor)
        return region_loss(net(images), instances, self.windows, self.config.score_weight)

    @torch.no_grad()
    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, progress: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        batches = tqdm(loader, desc="eval proposals", leave=False, disable=not progress)
        collected = collect(model, batches, options_of(self.config), device, self.config.num_examples)
        return summary_scores(collected), collected.examples

    def save_examples(self, examples: list[Any], folder: Path) -> None:
        from pixelwise.methods.proposals.overlays import save_proposal_overlay

        for index, (image, _, result) in enumerate(examples):
            save_proposal_overlay(image, result, folder / f"proposals_{index}.png")

    def summary(self, scores: dict[str, Any]) -> str:
        return (
            f"val AR {scores['ar']:.3f}, R@50 {scores['r50']:.3f}, R@70 {scores['r70']:.3f}, ABO {scores['abo']:.3f}, "
            f"AR@10/100/1000 {scores['ar@10']:.3f}/{scores['ar@100']:.3f}/{scores['ar@1000']:.3f}, "
            f"{scores['ms_per_image']:.0f} ms/image"
        )

    def metadata(self) -> dict[str, Any]:
        return {"task": "proposals"}
