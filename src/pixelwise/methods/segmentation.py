"""Supervised dense labelling (Long thesis §3.3): per-pixel softmax cross-entropy on labelled images.

The task behind ``pixelwise train``: datasets (optionally a seeded labelled fraction, for label-scarce regimes),
the segmentation model (optionally initialised from a coarser FCN for staged training, §3.3.4, or from a
self-supervised checkpoint's backbone with a new head), the loss and mean-IoU validation.

``--regularizer label-ae`` (Mostajabi 2018 §3.3) wraps the model with a training-only auxiliary branch through a
label autoencoder and adds ``lambda * L_aux`` to the loss; validation and ``best.safetensors`` use the plain model
(``inference_model()``), so the regulariser costs nothing at test time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from pixelwise.data import DatasetInfo, build_dataset, eval_transforms, train_transforms, validation_spec
from pixelwise.data.segmentation import SegmentationDataset
from pixelwise.engine.checkpoint import has_current_geometry, load_checkpoint, without_training_branch
from pixelwise.engine.config import data_options
from pixelwise.engine.distributed import mean_over_processes
from pixelwise.engine.evaluate import EvalOptions, evaluate
from pixelwise.engine.trainer import Trainer
from pixelwise.methods.train_config import TrainConfig
from pixelwise.models import ModelConfig, SegmentationModel
from pixelwise.models.weights import load_backbone_weights

BACKBONE_PREFIX = (
    "taps.backbone."  # every model reads its backbone through FeatureTaps (same state-dict keys)
)


class InitError(ValueError):
    """An ``--init-from`` checkpoint does not fit the model being trained."""


def labelled_indices(length: int, fraction: float, seed: int) -> list[int]:
    """The seeded ``fraction`` of ``length`` images that keep their labels (sorted; all of them at 1)."""
    if fraction >= 1.0:
        return list(range(length))
    count = max(1, round(length * fraction))
    order = torch.randperm(length, generator=torch.Generator().manual_seed(seed))
    return sorted(order[:count].tolist())


def labelled_subset(dataset: Any, fraction: float, seed: int) -> Any:
    """A seeded random subset with ``fraction`` of the images (label-scarce regimes); the same for every run."""
    if fraction >= 1.0:
        return dataset
    subset = Subset(dataset, labelled_indices(len(dataset), fraction, seed))
    subset.info = dataset.info  # type: ignore[attr-defined]
    return subset


SELECTION_SEED = (
    20261201  # one selection split for every run and seed, so recipes are compared on the same images
)


def carve_selection(count: int, fraction: float) -> tuple[list[int], list[int]]:
    """(training indices, selection indices) of ``count`` images: a fixed seeded ``fraction`` is held out."""
    if not 0 < fraction < 1:
        raise ValueError(f"--select-fraction must be in (0, 1), got {fraction}")
    held = max(1, round(count * fraction))
    if held >= count:
        raise ValueError(f"--select-fraction {fraction} leaves no training images out of {count}")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(SELECTION_SEED)).tolist()
    return sorted(order[held:]), sorted(order[:held])


def evaluation_view(train: Any, config: TrainConfig) -> Any:
    """The training images (those ``train`` kept, e.g. after --skip-bad dropped some, in its order) read with
    evaluation transforms at full resolution: the selection split's source, index for index."""
    if isinstance(train, SegmentationDataset):
        return SegmentationDataset(train.pairs, train.info, transform=eval_transforms(), cache=False,
                                   label_map=train.label_map)  # fmt: skip
    return build_dataset(
        config.data, "train", transform=eval_transforms(), cache=False, **data_options(config)
    )


def base_and_indices(dataset: Any) -> tuple[Any, list[int]]:
    """The underlying dataset and the indices into it of a (possibly nested) ``Subset``."""
    indices = list(range(len(dataset)))
    while isinstance(dataset, Subset):
        indices = [dataset.indices[i] for i in indices]
        dataset = dataset.dataset
    return dataset, indices


def label_pixel_counts(dataset: Any, num_classes: int) -> torch.Tensor:
    """Per-image, per-class pixel counts [N, C] of the (untransformed) training labels, for class weighting."""
    base, indices = base_and_indices(dataset)  # e.g. a labelled subset of the selection split's remainder
    rows = []
    for index in indices:
        label = base.load_label(index).long().flatten()  # untransformed, as stored
        rows.append(torch.bincount(label[label < num_classes], minlength=num_classes))
    return torch.stack(rows) if rows else torch.zeros(0, num_classes, dtype=torch.long)


LOSS_CELL = 32  # Long §3.3.4 samples the loss per final-layer cell, i.e. per 32x32 block of the output


def sample_loss_cells(labels: torch.Tensor, keep: float, ignore_index: int) -> torch.Tensor:
    """Long §3.3.4 loss sampling: drop each final-layer cell's pixels from the loss with probability 1 - keep.

    Whole 32x32 cells, not single pixels: dropping pixels independently leaves every cell ~1000 * keep pixels, so
    it would exclude nothing from the gradient. (Long also grows the batch by 1/keep: pass a larger --batch-size.)
    """
    n, height, width = labels.shape
    cells = (-(-height // LOSS_CELL), -(-width // LOSS_CELL))
    kept = torch.rand(n, 1, *cells, device=labels.device) < keep
    kept = kept.repeat_interleave(LOSS_CELL, 2).repeat_interleave(LOSS_CELL, 3)[:, 0, :height, :width]
    return labels.masked_fill(~kept, ignore_index)


def segmentation_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None, ignore_index: int, keep: float
) -> torch.Tensor:
    """Per-pixel softmax cross-entropy (Long §3.3.4), optional class weights and loss sampling.

    The sum over labelled pixels divided by their number N, also with class weights: Mostajabi's rebalanced
    log-loss is -(1/N) sum_i w_{y_i} log p(y_i), not PyTorch's division by the sum of the weights, which would
    change the step size with every batch's class mix. A batch with no labelled pixel (an all-void crop) gives 0
    instead of NaN, so it cannot stop a run. Under torchrun, N is the processes' mean count: DDP averages the
    gradients, so each process's sum / mean N adds up to the single-process loss of the union batch even when the
    processes' crops hold different numbers of void pixels.
    """
    if keep < 1.0:
        labels = sample_loss_cells(labels, keep, ignore_index)
    total = F.cross_entropy(logits, labels, weight=weights, ignore_index=ignore_index, reduction="sum")
    labelled = mean_over_processes((labels != ignore_index).sum().float())
    return total / labelled.clamp(min=1e-12)


def depth_l1(depth: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """L1 in metres over the pixels with known depth (> 0; Mostajabi §5.5.2), divided by the processes' mean
    count of them, as :func:`segmentation_loss` (0, not NaN, without any)."""
    truth = truth.as_subclass(torch.Tensor).float()
    known = truth > 0
    total = (depth.float() - truth).abs()[known].sum()
    return total / mean_over_processes(known.sum().float()).clamp(min=1)


def mean_log_depth(dataset: Any, images: int = 64) -> float:
    """Mean log depth of the known pixels of the first ``images`` samples (a depth head's starting offset)."""
    logs = [dataset[i][1]["depth"].as_subclass(torch.Tensor) for i in range(min(images, len(dataset)))]
    known = torch.cat([d[d > 0] for d in logs])
    return float(known.log().mean()) if len(known) else 0.0


def init_from_checkpoint(model: SegmentationModel, path: str) -> bool:
    """Load ``path`` into ``model``; returns True when it was a coarser/other FCN (staged training, lr / 100).

    An FCN checkpoint into an FCN loads every weight that fits (a 32s into a 16s leaves the new score layer at its
    zero init). Any other checkpoint (e.g. colorization pretraining, or an FCN into a zoom-out model) gives its
    backbone only: the head is new.
    """
    parent = load_checkpoint(path)
    parent_model = parent.meta.get("model", {})
    state = without_training_branch(parent.model_state)  # e.g. a label-AE-regularised run's last.safetensors
    is_zoomout = (parent_model.get("arch") == "zoomout", model.config.arch == "zoomout")
    other_kind = parent_model.get("kind", "segmentation") != "segmentation" or is_zoomout[0] != is_zoomout[1]
    if other_kind or not has_current_geometry(parent.meta):  # an old head read misplaced cells: backbone only
        if not other_kind:
            print(
                f"{path}: written before the geometry fix; taking its backbone only (the head starts afresh)"
            )
        return load_backbone_from_checkpoint(model, state, parent_model, path)
    _, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise InitError(
            f"{path}: weights {unexpected[:5]}... do not fit {model.config.arch}/{model.config.backbone}"
        )
    return parent_model.get("arch") != model.config.arch


def load_backbone_from_run(model: nn.Module, path: str) -> None:
    """Give ``model`` (anything with a ``backbone`` and a ``config``) the backbone of any pixelwise run: a
    segmentation, colorization, M&M, depth or tag-localiser checkpoint; its other weights are not used."""
    parent = load_checkpoint(path)
    state = without_training_branch(parent.model_state)
    load_backbone_from_checkpoint(model, state, parent.meta.get("model", {}), path)


def backbone_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone's weights in ``state``, whether the model holds its taps at the top (``taps.backbone.*``) or
    wraps a model that does (depth: ``net.taps.backbone.*``); {} when there is none or more than one backbone."""
    owners = {k.split(BACKBONE_PREFIX, 1)[0] for k in state if BACKBONE_PREFIX in k}
    owner = "" if "" in owners else (owners.pop() if len(owners) == 1 else None)
    if owner is None:
        return {}
    prefix = owner + BACKBONE_PREFIX
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_backbone_from_checkpoint(model: nn.Module, state: dict, parent_model: dict, path: str) -> bool:
    """Load the ``taps.backbone.*`` weights of a checkpoint's ``state`` into ``model.backbone``; returns False.

    ``model`` is any model with a ``backbone`` and a ``config`` naming ``backbone`` and ``in_channels``
    (segmentation, Mix-and-Match); ``parent_model`` is the checkpoint's model metadata, checked against it.
    """
    for key in ("backbone", "in_channels"):
        mine, theirs = getattr(model.config, key), parent_model.get(key)
        if theirs is not None and mine != theirs:
            hint = (
                " (colorization models see grey input: pass --in-channels 1)" if key == "in_channels" else ""
            )
            raise InitError(f"{path}: {key} is {theirs!r} there but {mine!r} here{hint}")
    backbone = backbone_weights(state)
    if not backbone:
        raise InitError(f"{path}: no backbone weights ({BACKBONE_PREFIX}*) in this checkpoint")
    model.backbone.load_state_dict(backbone)
    return False


def reject_unused_options(config: Any, **expected: Any) -> None:
    """A command that shares `train`'s flags but ignores some: refuse values it would silently ignore."""
    ignored = [
        f"--{k.replace('_', '-')} {getattr(config, k)!r}"
        for k, v in expected.items()
        if getattr(config, k) != v
    ]
    if ignored:
        allowed = ", ".join(f"--{k.replace('_', '-')} {v!r}" for k, v in expected.items())
        raise ValueError(f"this command does not use {', '.join(ignored)} (it always runs with {allowed})")


def check_fusion_options(config: TrainConfig) -> None:
    """--fusion needs --extra-input (and the reverse); neither combines with --multitask or a regulariser."""
    if (config.fusion != "none") != (config.extra_input is not None):
        raise ValueError("--fusion early|late and --extra-input go together (the extra channels to fuse)")
    if config.fusion != "none" and config.in_channels != 3:
        raise ValueError("--fusion reads RGB plus the extra input: drop --in-channels 1")
    if config.fusion != "none" and config.select_fraction > 0:
        raise ValueError("--fusion does not combine with --select-fraction (its split reads RGB only)")
    extras = [name for name, on in (("--fusion", config.fusion != "none"), ("--multitask", config.multitask != "none"),
                                    ("--regularizer", config.regularizer != "none")) if on]  # fmt: skip
    if len(extras) > 1:
        raise ValueError(f"{' and '.join(extras)} do not combine; pick one")


def with_extra_input(dataset: Any, extra_input: str | None, transform: Any) -> Any:
    """``dataset`` with the depth channel appended to its images (data/rgbd.py ``WithDepthChannel``)."""
    from pixelwise.data.rgbd import WithDepthChannel

    return WithDepthChannel(dataset, None if extra_input == "depth" else extra_input, transform)


@torch.no_grad()
def depth_scores(model: nn.Module, loader: DataLoader, device: torch.device, scale: float) -> dict[str, Any]:
    """Depth errors (:class:`~pixelwise.metrics.DepthErrors`) of a model's ``depth`` output over ``loader``."""
    from pixelwise.engine.distributed import all_reduce_sum
    from pixelwise.engine.inference import rescale
    from pixelwise.metrics import DepthErrors

    model.eval()
    errors = DepthErrors(device=device)
    for images, targets in loader:
        truth = targets["depth"].as_subclass(torch.Tensor).to(device)
        depth = model(rescale(images.to(device), scale))["depth"].float()
        errors.update(
            F.interpolate(depth, size=truth.shape[-2:], mode="bilinear", align_corners=False), truth
        )
    return errors.scores(all_reduce_sum)


class SegmentationTask:
    """``pixelwise train``: softmax cross-entropy on label maps, scored by validation mean IoU."""

    score_key = "mean_iou"

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        # Long §3.4's variants are this task's models: a subclass with its own model would silently drop them.
        if type(self).build_model is not SegmentationTask.build_model and (
            getattr(config, "fusion", "none") != "none" or getattr(config, "multitask", "none") != "none"
        ):
            raise ValueError("--fusion and --multitask are options of `pixelwise train` only")
        self.info: DatasetInfo | None = None
        self.loss_weights: torch.Tensor | None = None
        # With --select-fraction: the validation data, scored once at the end (the trainer reads this).
        self.report_set: Dataset | None = None
        self.selection: dict[str, Any] | None = None

    def datasets(self) -> tuple[Dataset, Dataset]:
        config = self.config
        check_fusion_options(config)
        base_size = tuple(config.base_size) if config.base_size else None
        train_tf = train_transforms(
            tuple(config.crop), tuple(config.scale), config.hflip, config.color_jitter
        )
        folder = config.extra_input not in (None, "depth")  # depth PNGs attached before the transform
        train = build_dataset(
            config.data,
            "train",
            size=base_size,
            transform=None if folder else train_tf,
            **data_options(config),
        )
        val = self.validation_dataset()
        train.preload(progress=False)
        self.info = train.info
        if config.fusion != "none":  # images become [3 + 1, H, W]: RGB then the depth channel (Long §3.4)
            train = with_extra_input(train, config.extra_input, train_tf if folder else None)
            val = with_extra_input(val, config.extra_input, eval_transforms() if folder else None)
        validation: Dataset = val
        if config.select_fraction > 0:  # choose on held-out training images; report on val, untouched
            kept, held = carve_selection(len(train), config.select_fraction)
            source = evaluation_view(train, config)
            validation = Subset(source, held)
            validation.info = source.info  # type: ignore[attr-defined]
            self.report_set = val
            self.selection = {"fraction": config.select_fraction, "seed": SELECTION_SEED, "indices": held}
            pool = Subset(train, kept)
            pool.info = train.info  # type: ignore[attr-defined]
            train = pool
        subset = labelled_subset(train, config.labels_fraction, config.seed)
        self.train_set_for_statistics = subset  # a depth head's starting offset (--multitask depth)
        if config.class_weights != "none":
            from pixelwise.engine.optim import class_weights

            counts = label_pixel_counts(subset, self.info.num_classes)
            self.loss_weights = class_weights(counts, config.class_weights)
        return subset, validation

    def validation_dataset(self) -> Dataset:
        """Validation streams from disk (cache=False, no preload): full-resolution splits are never held in memory."""
        config = self.config
        folder = config.fusion != "none" and config.extra_input not in (None, "depth")
        return build_dataset(
            validation_spec(config.data, config.val_data),
            "val",
            transform=None if folder else eval_transforms(),
            cache=False,
            **data_options(config),
        )

    def build_model(self) -> tuple[nn.Module, float]:
        config = self.config
        assert self.info is not None, "datasets() first: the model's class count comes from the data"
        model = self.base_model()
        lr = config.lr
        if config.weights:
            load_backbone_weights(model.backbone, config.weights, config.allow_partial)
        if config.init_from and init_from_checkpoint(model, config.init_from):
            lr *= config.init_lr_scale
        if config.label_ae and config.regularizer == "none":
            raise ValueError("--label-ae is only read with --regularizer label-ae")
        if config.aux_weight < 0:
            raise ValueError(f"--aux-weight must be >= 0, got {config.aux_weight}")
        if config.regularizer == "label-ae":
            from pixelwise.methods.label_ae.regularizer import attach_label_regularizer

            regularized = attach_label_regularizer(
                model,
                config.label_ae,
                self.info.num_classes,
                self.info.ignore_index,
                mode=config.label_ae_mode,
                decoder=config.label_ae_decoder,
                loss=config.aux_loss,
                layer=config.aux_layer,
                seed=config.seed,
            )
            return regularized, lr
        return model, lr

    def base_model(self) -> nn.Module:
        """The network ``train`` trains: a segmenter, or Long §3.4's fused / multi-task variants."""
        config = self.config
        parts = (config.arch, config.backbone, self.info.num_classes)
        geometry = (config.output_stride, config.head_width)
        if config.fusion == "early":  # RGB + depth in one network; the depth channel skips normalisation
            return SegmentationModel(ModelConfig(*parts, 4, *geometry, image_channels=3))
        if config.fusion == "late":
            from pixelwise.models.fusion import LateFusionConfig, LateFusionModel

            return LateFusionModel(LateFusionConfig(*parts, 4, *geometry, image_channels=3))
        if config.multitask == "depth":
            from pixelwise.models.multitask import MultiOutputConfig, MultiOutputModel

            outputs = {"seg": self.info.num_classes, "depth": 1}
            model = MultiOutputModel(MultiOutputConfig(config.arch, config.backbone, outputs, config.in_channels,
                                                       None, *geometry))  # fmt: skip
            with torch.no_grad():
                model.log_depth.fill_(mean_log_depth(self.train_set_for_statistics))
            return model
        return SegmentationModel(ModelConfig(*parts, config.in_channels, *geometry))

    def loss(self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.config.multitask == "depth":  # Long §3.4: two heads, one backbone, L = L_seg + w L_depth
            outputs = net(images)
            weights = self.loss_weights.to(images.device) if self.loss_weights is not None else None
            seg = segmentation_loss(outputs["seg"].float(), targets["seg"], weights, self.info.ignore_index,
                                    self.config.loss_sampling)  # fmt: skip
            return seg + self.config.multitask_weight * depth_l1(outputs["depth"], targets["depth"])
        regularized = self.config.regularizer != "none"
        outputs = net(images, labels=targets["seg"]) if regularized else net(images)
        logits = outputs["seg"].float()
        weights = self.loss_weights.to(logits.device) if self.loss_weights is not None else None
        loss = segmentation_loss(
            logits, targets["seg"], weights, self.info.ignore_index, self.config.loss_sampling
        )
        if regularized:  # Mostajabi §3.3: L = L_seg + lambda L_aux (the branch computes L_aux in forward)
            loss = loss + self.config.aux_weight * outputs["aux_loss"].float()
        return loss

    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, progress: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        options = EvalOptions(
            scales=(self.config.eval_scale,), progress=progress, examples=self.config.num_examples
        )
        info = self.info
        model = getattr(model, "inference_model", lambda: model)()  # training-only branches are not scored
        scores, _, examples = evaluate(
            model, loader, info.num_classes, device, info.ignore_index, options, info.class_names
        )
        if self.config.multitask == "depth":  # the second head's errors too
            scores |= {
                f"depth_{k}": v
                for k, v in depth_scores(model, loader, device, self.config.eval_scale).items()
            }
        return scores, [(image[:3], *rest) for image, *rest in examples]  # RGB only, also for fused inputs

    def save_examples(self, examples: list[Any], folder: Path) -> None:
        from pixelwise.report.examples import save_examples

        save_examples(examples, self.info, folder)

    def summary(self, scores: dict[str, Any]) -> str:
        return f"val mIoU {scores['mean_iou']:.4f} pixel acc {scores['pixel_acc']:.4f}"

    def metadata(self) -> dict[str, Any]:
        chosen = (
            f"the selection split ({len(self.selection['indices'])} held-out training images)"
            if self.selection
            else "the validation data"
        )
        meta = {"dataset": self.info.to_metadata(), "best_chosen_on": chosen}
        if self.selection:
            meta["selection"] = self.selection
        return meta


def segmentation_trainer(config: TrainConfig) -> Trainer:
    """The common case in one line: the training loop running supervised segmentation (``Trainer(config,
    SegmentationTask(config))``)."""
    return Trainer(config, SegmentationTask(config))
