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
from pixelwise.methods.weak.crops import labelled_views
from pixelwise.methods.weak.localisation import TagLocaliser, TagLocaliserConfig, tag_loss
from pixelwise.methods.weak.sampling import (
    background_points,
    dense_labels,
    diverse_points,
    normalised_features,
    top_points,
)
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


STRATEGIES = ("diverse", "top-k", "dense")  # §4.3.2 and the alternatives of Table 4.3


@torch.no_grad()
def candidate_points(
    model: TagLocaliser,
    image: torch.Tensor,
    tags: torch.Tensor,
    count: int,
    background_class: int,
    strategy: str = "diverse",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every sampled point [P, 3] = (class, row, column) on the stride-4 zoom-out grid of one image [3, H, W],
    with its class score [P] (background points: -inf); classes sample independently, so cells may repeat."""
    model.eval()
    features, scores = model.grid_outputs(image[None].to(next(model.parameters()).device))
    height, width = -(-image.shape[-2] // 4), -(-image.shape[-1] // 4)  # the grid cells inside the image
    features = normalised_features(features[0, :, :height, :width])
    scores = scores[0, :, :height, :width].float().cpu().flatten(1)
    tagged = [cls for cls in tags.nonzero().flatten().tolist() if cls != background_class]
    if strategy == "dense":
        return _dense_points(scores, tagged, width, background_class)
    points, values, foreground = [], [], []
    for cls in tagged:
        if strategy == "diverse":
            chosen = diverse_points(scores[cls], features, count)
        else:
            chosen = top_points(scores[cls], count)
        foreground.append(chosen)
        points += [(cls, int(i) // width, int(i) % width) for i in chosen]
        values += scores[cls][chosen.cpu()].tolist()
    if background_class >= 0:
        taken = torch.cat(foreground) if foreground else torch.empty(0, dtype=torch.long)
        chosen = background_points(features, taken, count)
        points += [(background_class, int(i) // width, int(i) % width) for i in chosen]
        values += [float("-inf")] * len(chosen)
    return torch.tensor(points, dtype=torch.long).reshape(-1, 3), torch.tensor(values, dtype=torch.float32)


def _dense_points(
    scores: torch.Tensor, tagged: list[int], width: int, background_class: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every grid cell labelled with its best tagged class (Table 4.3's dense baseline), [h*w, 3] and scores."""
    if background_class >= 0:
        raise ValueError(
            "dense labelling with a background class needs a score threshold the thesis leaves unset (§4.3.2); "
            "use --strategy diverse or top-k"
        )
    if not tagged:
        return torch.empty(0, 3, dtype=torch.long), torch.empty(0)
    labels = dense_labels(scores, tagged)
    cells = torch.arange(scores.shape[1])
    points = torch.stack([labels, cells // width, cells % width], dim=1)
    return points, scores[labels, cells]


def resolve_collisions(points: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """One point per grid cell: where classes chose the same cell, the higher-scoring point keeps it."""
    best: dict[tuple[int, int], int] = {}
    for index, (_, row, col) in enumerate(points.tolist()):
        cell = (row, col)
        if cell not in best or scores[index] > scores[best[cell]]:
            best[cell] = index
    return points[sorted(best.values())]


def sample_point_labels(
    model: TagLocaliser,
    image: torch.Tensor,
    tags: torch.Tensor,
    count: int,
    background_class: int,
    strategy: str = "diverse",
) -> torch.Tensor:
    """Point labels [P, 3] = (class, row, column), one per grid cell (see :func:`resolve_collisions`)."""
    return resolve_collisions(*candidate_points(model, image, tags, count, background_class, strategy))


def write_point_labels(
    model: TagLocaliser,
    dataset: Dataset,
    output: Path,
    count: int,
    background_class: int,
    ignore_index: int = 255,
    strategy: str = "diverse",
    crops: int = 0,
    crop_size: tuple[int, int] = (90, 120),
    seed: int = 0,
) -> dict[str, Any]:
    """Write OUTPUT/images/*.png, OUTPUT/labels/*.png (each point labels its 4x4 grid cell, void elsewhere),
    OUTPUT/train.txt and OUTPUT/classes.txt; returns the precision of the points against the true labels.

    With ``crops`` > 0 every image gives that many seeded random ``crop_size`` crops, each a weakly labelled
    image of its own: its tags are the classes in the crop, its points are sampled within it.
    """
    info = dataset.info
    (output / "images").mkdir(parents=True, exist_ok=True)
    (output / "labels").mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    lines, correct, labelled, sampled, written, tagged = [], 0, 0, 0, 0, 0
    for index in tqdm(range(len(dataset)), desc=f"{strategy} points"):
        image, target = dataset[index]
        for name, view, truth in labelled_views(
            f"{index:05d}", image, target["seg"], crops, crop_size, generator
        ):
            tags = class_tags(truth, info.num_classes)
            candidates, scores = candidate_points(model, view, tags, count, background_class, strategy)
            points = resolve_collisions(candidates, scores)
            sampled, written, tagged = (
                sampled + len(candidates),
                written + len(points),
                tagged + int(tags.sum()),
            )
            sparse = torch.full_like(truth, ignore_index)
            for cls, row, col in points.tolist():
                sparse[row * 4 : row * 4 + 4, col * 4 : col * 4 + 4] = cls
            known = (sparse != ignore_index) & (truth != ignore_index)
            correct += int((sparse[known] == truth[known]).sum())
            labelled += int(known.sum())
            pixels = view.mul(255).round().byte().permute(1, 2, 0).numpy()
            Image.fromarray(pixels).save(output / "images" / f"{name}.png")
            Image.fromarray(sparse.numpy().astype(np.uint8)).save(output / "labels" / f"{name}.png")
            lines.append(f"images/{name}.png labels/{name}.png")
    (output / "train.txt").write_text("\n".join(lines) + "\n")
    (output / "classes.txt").write_text("\n".join(info.class_names) + "\n")
    return {
        "strategy": strategy,
        "images": len(lines),
        "crops_per_image": crops,
        "tags_per_image": tagged / max(len(lines), 1),  # how much a tag set says: fewer = more informative
        "points_sampled": sampled,
        "points_written": written,  # fewer where classes chose the same cell (the higher score kept it)
        "labelled_pixels": labelled,
        "pixel_precision": correct / max(labelled, 1),
    }
