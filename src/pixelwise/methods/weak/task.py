"""``pixelwise weak localise`` and ``pixelwise weak points``: segmentation from image-level tags (thesis Ch. 4).

Three steps, each an ordinary pixelwise run: (1) train the tag localiser on images and their tags only (the tags
are read off the label maps, whose pixels are never used); (2) sample diverse points from its score maps for every
training image's tags and write them as sparse label maps (void elsewhere) with a list file; (3) train any
segmentation model on those point labels with ``pixelwise train --data POINTS/train.txt --val-data ...`` (the loss
is masked to the labelled points by the void value, §4.3.3). The localiser is validated by the precision of the
points it would sample on the val images, the quantity step (3) depends on, as a diagnostic; best.safetensors is
chosen by the val tag loss, an image-level signal (pixels are never used to choose).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pixelwise.data import class_tags
from pixelwise.engine.distributed import all_reduce_sum
from pixelwise.engine.inference import rescale
from pixelwise.methods.segmentation import SegmentationTask, load_backbone_from_run, reject_unused_options
from pixelwise.methods.weak.localisation import TagLocaliser, TagLocaliserConfig, tag_loss
from pixelwise.methods.weak.sampling import background_points, diverse_points, normalised_features
from pixelwise.models.weights import load_backbone_weights


class TagLocalisationTask(SegmentationTask):
    """Trains :class:`TagLocaliser` with the global-softmax tag loss.

    best.safetensors is chosen by the val **tag** loss (image-level, what the method may see); the precision of
    the points it would sample is computed from val pixel labels and reported as a diagnostic only, never used
    to choose (the pixels are for evaluation).
    """

    score_key = "neg_tag_loss"

    def build_model(self) -> tuple[nn.Module, float]:
        config, info = self.config, self.info
        assert info is not None, "datasets() first: the number of classes comes from the data"
        reject_unused_options(
            config,
            arch="zoomout",
            regularizer="none",
            class_weights="none",
            loss_sampling=1.0,
            select_fraction=0.0,
        )
        model = TagLocaliser(
            TagLocaliserConfig(config.backbone, info.num_classes, config.in_channels, config.head_width)
        )
        if config.weights:
            load_backbone_weights(model.backbone, config.weights, config.allow_partial)
        if config.init_from:  # a pretrained backbone (the thesis starts from ImageNet features)
            load_backbone_from_run(model, config.init_from)
        return model, config.lr

    def loss(self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        seg = targets["seg"]
        tags = torch.stack([class_tags(s, self.info.num_classes) for s in seg]).to(images.device)
        outputs = net(images)
        return tag_loss(outputs["foreground"], outputs["background"], tags)

    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, progress: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        counts = torch.zeros(2, dtype=torch.long, device=device)  # (correct, labelled) sampled points
        loss_sum = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of tag losses, images)
        negatives = torch.Generator().manual_seed(0)  # the same negative classes at every validation
        for images, targets in tqdm(loader, desc="tag loss, points", leave=False, disable=not progress):
            images, labels = images.to(device), targets["seg"].to(device)
            small = rescale(images, self.config.eval_scale)
            tags = torch.stack([class_tags(s, self.info.num_classes) for s in labels])
            with torch.no_grad():
                outputs = model(small)
            batch_loss = tag_loss(outputs["foreground"], outputs["background"], tags, negatives)
            loss_sum += torch.tensor([float(batch_loss) * len(images), len(images)], device=device)
            for image, label in zip(small, labels):
                points = sample_point_labels(model, image, class_tags(label, self.info.num_classes), 20, -1)
                for cls, row, col in points.tolist():  # grid cells -> the label pixel at the cell's centre
                    y = min(int((row + 0.5) * 4 / self.config.eval_scale), label.shape[0] - 1)
                    x = min(int((col + 0.5) * 4 / self.config.eval_scale), label.shape[1] - 1)
                    truth = int(label[y, x])
                    if truth != self.info.ignore_index:
                        counts += torch.tensor([int(truth == cls), 1], device=device)
        correct, labelled = all_reduce_sum(counts).tolist()
        total, images = all_reduce_sum(loss_sum).tolist()
        tag = total / max(images, 1)
        return {"neg_tag_loss": -tag, "tag_loss": tag, "point_precision": correct / max(labelled, 1),
                "points": labelled}, []  # fmt: skip

    def save_examples(self, examples: list[Any], folder: Path) -> None:
        return None

    def summary(self, scores: dict[str, Any]) -> str:
        return (
            f"val tag loss {scores['tag_loss']:.4f} (chooses best); point precision {scores['point_precision']:.4f} "
            f"({scores['points']} points, from pixel labels: a diagnostic, never used to choose)"
        )


@torch.no_grad()
def candidate_points(
    model: TagLocaliser, image: torch.Tensor, tags: torch.Tensor, count: int, background_class: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every sampled point [P, 3] = (class, row, column) on the stride-4 zoom-out grid of one image [3, H, W],
    with its class score [P] (background points: -inf); classes sample independently, so cells may repeat."""
    model.eval()
    features, scores = model.grid_outputs(image[None].to(next(model.parameters()).device))
    height, width = -(-image.shape[-2] // 4), -(-image.shape[-1] // 4)  # the grid cells inside the image
    features = normalised_features(features[0, :, :height, :width])
    scores = scores[0, :, :height, :width].float().cpu()
    points, values, foreground = [], [], []
    for cls in tags.nonzero().flatten().tolist():
        if cls == background_class:
            continue
        chosen = diverse_points(scores[cls].flatten(), features, count)
        foreground.append(chosen)
        points += [(cls, int(i) // width, int(i) % width) for i in chosen]
        values += scores[cls].flatten()[chosen.cpu()].tolist()
    if background_class >= 0:
        taken = torch.cat(foreground) if foreground else torch.empty(0, dtype=torch.long)
        chosen = background_points(features, taken, count)
        points += [(background_class, int(i) // width, int(i) % width) for i in chosen]
        values += [float("-inf")] * len(chosen)
    return torch.tensor(points, dtype=torch.long).reshape(-1, 3), torch.tensor(values, dtype=torch.float32)


def resolve_collisions(points: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """One point per grid cell: where classes chose the same cell, the higher-scoring point keeps it."""
    best: dict[tuple[int, int], int] = {}
    for index, (_, row, col) in enumerate(points.tolist()):
        cell = (row, col)
        if cell not in best or scores[index] > scores[best[cell]]:
            best[cell] = index
    return points[sorted(best.values())]


def sample_point_labels(
    model: TagLocaliser, image: torch.Tensor, tags: torch.Tensor, count: int, background_class: int
) -> torch.Tensor:
    """Point labels [P, 3] = (class, row, column), one per grid cell (see :func:`resolve_collisions`)."""
    return resolve_collisions(*candidate_points(model, image, tags, count, background_class))


def write_point_labels(
    model: TagLocaliser,
    dataset: Dataset,
    output: Path,
    count: int,
    background_class: int,
    ignore_index: int = 255,
) -> dict[str, Any]:
    """Write OUTPUT/images/*.png, OUTPUT/labels/*.png (each point labels its 4x4 grid cell, void elsewhere),
    OUTPUT/train.txt and OUTPUT/classes.txt; returns the precision of the points against the true labels."""
    info = dataset.info
    (output / "images").mkdir(parents=True, exist_ok=True)
    (output / "labels").mkdir(parents=True, exist_ok=True)
    lines, correct, labelled, sampled, written = [], 0, 0, 0, 0
    for index in tqdm(range(len(dataset)), desc="diverse points"):
        image, target = dataset[index]
        truth = target["seg"]
        candidates, scores = candidate_points(
            model, image, class_tags(truth, info.num_classes), count, background_class
        )
        points = resolve_collisions(candidates, scores)
        sampled += len(candidates)
        written += len(points)
        sparse = torch.full_like(truth, ignore_index)
        for cls, row, col in points.tolist():
            sparse[row * 4 : row * 4 + 4, col * 4 : col * 4 + 4] = cls
        known = (sparse != ignore_index) & (truth != ignore_index)
        correct += int((sparse[known] == truth[known]).sum())
        labelled += int(known.sum())
        name = f"{index:05d}"
        pixels = image.mul(255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(output / "images" / f"{name}.png")
        Image.fromarray(sparse.numpy().astype(np.uint8)).save(output / "labels" / f"{name}.png")
        lines.append(f"images/{name}.png labels/{name}.png")
    (output / "train.txt").write_text("\n".join(lines) + "\n")
    (output / "classes.txt").write_text("\n".join(info.class_names) + "\n")
    return {
        "images": len(lines),
        "points_sampled": sampled,
        "points_written": written,  # fewer where classes chose the same cell (the higher score kept it)
        "labelled_pixels": labelled,
        "pixel_precision": correct / max(labelled, 1),
    }
