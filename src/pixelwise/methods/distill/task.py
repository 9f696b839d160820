"""Task-agnostic distillation as a training task (Larsson §4.3): frozen teacher runs in, one student backbone out.

Per step, the same augmented images go through the frozen teachers and the student; the student's pre-ReLU top
features z (or its auxiliary layer's output) learn the teachers' y, densely (every feature-map position is a
sample), by the AB divergence on ŷ = y/s, ẑ = z/s (Eq. 4.4-4.7), by squared L2, or by Eq. 4.1's classic KL.
Before training, one pass of the teachers over the distillation images measures s (Eq. 4.4), and the feature
subset is drawn (§4.3.4); both go into every checkpoint's metadata (and a resumed run reads them back from there).
Validation reports the mean distillation loss on the val images (``neg_loss``, higher is better, picks best).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from tqdm import tqdm

from pixelwise.data import build_dataset, eval_transforms
from pixelwise.engine.checkpoint import load_checkpoint
from pixelwise.engine.config import data_options
from pixelwise.engine.distributed import all_reduce_sum, resolve_device
from pixelwise.methods.distill.config import DistillConfig
from pixelwise.methods.distill.divergence import ab_loss, classic_distillation_loss, l2_loss
from pixelwise.methods.distill.statistics import TeacherScale, feature_subset, teacher_scale
from pixelwise.methods.distill.student import AuxiliaryStudent, StudentConfig, StudentModel
from pixelwise.methods.distill.teachers import TeacherEnsemble
from pixelwise.methods.pretrain import unlabelled_images
from pixelwise.methods.segmentation import InitError, load_backbone_from_run
from pixelwise.models.weights import load_backbone_weights

META_KEY = "distill"  # the checkpoint metadata entry this task writes


def stored_distillation(path: str | Path) -> dict[str, Any]:
    """The distillation record of a student checkpoint or run: teachers, subset index, s statistics, loss."""
    meta = load_checkpoint(path).meta
    if META_KEY not in meta:
        raise ValueError(f"{path}: not a distilled student (no {META_KEY!r} entry in its metadata)")
    return meta[META_KEY]


class DistillationTask:
    """``pixelwise distill``: the student learns the teachers' top features; scored by -loss on the val images."""

    score_key = "neg_loss"

    def __init__(self, config: DistillConfig) -> None:
        check_config(config)
        self.config = config
        # Loaded first: a missing or backbone-less teacher stops the run before any data is read.
        self.teachers = TeacherEnsemble.load(config.teachers, config.ensemble)
        self.name = "images"
        self.subset: list[int] | None = None  # student channel i learns teacher feature subset[i]
        self.scale: TeacherScale | None = None
        self._device: torch.device | None = None  # where the teachers, index and divisors are
        self._index: torch.Tensor | None = None
        self._divisor: torch.Tensor | None = None
        self._parts: list[Any] = []  # the training splits, once datasets() has loaded them

    # ----------------------------------------------------------------- data and model
    def datasets(self) -> tuple[Dataset, Dataset]:
        parts, val = unlabelled_images(self.config)
        self.name = parts[0].info.name
        self._parts = parts
        return ConcatDataset(parts), val  # labels are loaded with the images but never read

    def _split(self, split: str, transform: Any, cache: bool) -> Any:
        config = self.config
        size = tuple(config.base_size) if config.base_size else None
        return build_dataset(config.data, split, size=size, transform=transform, cache=cache,
                             **data_options(config))  # fmt: skip

    def build_model(self) -> tuple[nn.Module, float]:
        config = self.config
        student = StudentModel(StudentConfig(config.backbone, config.in_channels, config.output_stride))
        self._check_student(student)
        if config.warm_start:
            self._warm_start(student)
        if config.weights:
            load_backbone_weights(student.backbone, config.weights, config.allow_partial)
        model: nn.Module = student
        if config.adapter == "auxiliary":
            model = AuxiliaryStudent(student, self.teachers.channels)
        else:
            first = self.teachers.widths[0]
            seed = config.seed if config.subset_seed is None else config.subset_seed
            self.subset = feature_subset(self.teachers.channels, student.channels, seed, anchored=first)
        self._prepare_statistics()
        return model, config.lr

    def _check_student(self, student: StudentModel) -> None:
        teachers, config = self.teachers, self.config
        if student.grid != teachers.grid:
            spec = teachers.specs[0]
            raise ValueError(
                f"--teachers {spec.path}: its top features lie on a stride-{teachers.grid.stride} grid "
                f"({spec.backbone}, output stride {spec.output_stride}) but the student's ({config.backbone}, "
                f"--output-stride {config.output_stride}) on stride {student.grid.stride}; pass --output-stride "
                f"{spec.output_stride} (and a --backbone of the same family)"
            )
        if config.loss == "kl-classic" and teachers.channels != student.channels:
            raise ValueError(
                f"--loss kl-classic compares one network's {student.channels} features with the student's "
                f"(Eq. 4.1); the teachers give {teachers.channels}: use one teacher or --ensemble mean of "
                "teachers as wide as the student, or --loss ab"
            )

    def _warm_start(self, student: StudentModel) -> None:
        spec = self.teachers.specs[0]
        if spec.backbone != student.config.backbone:
            raise ValueError(
                f"--warm-start: the first teacher {spec.path} is a {spec.backbone}, the student a "
                f"{student.config.backbone}; pass --backbone {spec.backbone} or drop --warm-start"
            )
        try:
            load_backbone_from_run(student, spec.path)
        except InitError as err:
            raise ValueError(f"--warm-start: {err}") from None

    def _prepare_statistics(self) -> None:
        """s of Eq. 4.4: read back from the run being resumed (it is fixed for the run), else measured now."""
        config = self.config
        if config.loss == "kl-classic":  # Eq. 4.1 has no pre-normalisation
            return
        last = Path(config.output) / "last.safetensors"
        if config.resume and last.is_file():
            stored = stored_distillation(last)
            self.scale = TeacherScale.from_description(stored["scale"])
            if stored.get("subset") is not None:
                self.subset = list(stored["subset"])
            return
        device = resolve_device(config.device, int(os.environ.get("LOCAL_RANK", "0")))
        parts = (
            [without_augmentation(part) for part in self._parts]
            if self._parts
            else [self._split(split, eval_transforms(), cache=False) for split in config.splits]
        )
        self.teachers.to(device)
        self.scale = teacher_scale(self.teachers, parts, device, shared=config.shared_scale,
                                   limit=config.scale_images, batch_size=config.batch_size)  # fmt: skip

    # ----------------------------------------------------------------- loss
    def _on(self, device: torch.device) -> None:
        """Teachers, subset index and divisors on ``device`` (once: the first batch tells where training runs)."""
        if self._device == device:
            return
        self.teachers.to(device)
        self._index = torch.tensor(self.subset, device=device) if self.subset is not None else None
        if self.scale is not None:
            values = self.scale.values.to(device)
            self._divisor = (values[self._index] if self._index is not None else values).view(1, -1, 1, 1)
        self._device = device

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher signal y the student's output is compared with: [N, F (or M F), h, w], float32."""
        self._on(images.device)
        # In float32 even under --amp: the statistics s_c were measured so, and the target should not be rounded.
        with torch.no_grad(), torch.autocast(images.device.type, enabled=False):
            features = self.teachers(images.float()).float()
        if self.subset is not None:
            features = features.index_select(1, self._index)
        return features

    def divergence(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The configured loss between teacher signal ``y`` and student output ``z`` (both raw, [N, C, h, w])."""
        if y.shape != z.shape:
            raise ValueError(
                f"teacher features {tuple(y.shape)} and student features {tuple(z.shape)} differ"
            )
        config = self.config
        z = z.float()
        if config.loss == "kl-classic":
            return classic_distillation_loss(y, z, config.temperature)
        y_hat, z_hat = y / self._divisor, z / self._divisor  # Eq. 4.4: both by the teacher's s
        if config.loss == "l2":
            return l2_loss(y_hat, z_hat)
        return ab_loss(y_hat, z_hat, config.alpha, config.beta)

    def loss(self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.divergence(self.targets(images), net(images))

    # ----------------------------------------------------------------- validation
    @torch.no_grad()
    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, progress: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        model.eval()
        sums = torch.zeros(
            4, dtype=torch.float64, device=device
        )  # loss x positions, l2 x positions, positions, images
        for images, _ in tqdm(loader, desc="distill val", leave=False, disable=not progress):
            images = images.to(device)
            y, z = self.targets(images), model(images).float()
            positions = y.shape[0] * y.shape[2] * y.shape[3]
            l2 = l2_loss(y / self._divisor, z / self._divisor) if self._divisor is not None else l2_loss(y, z)
            sums += torch.stack([self.divergence(y, z).double() * positions, l2.double() * positions,
                                 torch.tensor(float(positions), dtype=torch.float64, device=device),
                                 torch.tensor(float(images.shape[0]), dtype=torch.float64, device=device)])  # fmt: skip
        all_reduce_sum(sums)
        count = sums[2].clamp(min=1)
        loss = float(sums[0] / count)
        scores = {"loss": loss, "neg_loss": -loss, "l2": float(sums[1] / count), "images": int(sums[3])}
        return scores, []

    def save_examples(self, examples: list[Any], folder: Path) -> None:
        """Feature maps have no picture to look at: distillation writes no examples."""

    def summary(self, scores: dict[str, Any]) -> str:
        return (
            f"val distillation loss {scores['loss']:.5f} ({self.config.loss}), normalised L2 {scores['l2']:.5f} "
            f"over {scores['images']} images"
        )

    def metadata(self) -> dict[str, Any]:
        config = self.config
        record = {
            "teachers": [
                {**spec.describe(), "channels": width}
                for spec, width in zip(self.teachers.specs, self.teachers.widths)
            ],
            "layer": "deepest stage, before its final ReLU",
            "ensemble": config.ensemble,
            "teacher_channels": self.teachers.channels,
            "adapter": "subset" if self.subset is not None else config.adapter,
            "subset": self.subset,
            "loss": config.loss,
            "alpha": config.alpha,
            "beta": config.beta,
            "temperature": config.temperature,
            "scale": self.scale.describe() if self.scale is not None else None,
        }
        return {"dataset": {"name": self.name}, META_KEY: record}


def without_augmentation(dataset: Any) -> Any:
    """The same images (those ``dataset`` kept, e.g. after --skip-bad, from its in-memory cache) read at their
    stored size without augmentation: the source of the statistics pass."""
    view = copy.copy(dataset)  # shares the decoded-image cache: nothing is read from disk again
    view.transform = eval_transforms()
    return view


def check_config(config: DistillConfig) -> None:
    """Refuse option combinations that would silently mean something else (one line, with the fix)."""
    if not config.teachers:
        raise ValueError("pixelwise distill needs --teachers RUN [RUN ...] (pixelwise runs with a backbone)")
    if config.loss == "kl-classic" and config.adapter == "auxiliary":
        raise ValueError(
            "--loss kl-classic compares the student's own features with the teachers' (Eq. 4.1): it takes no "
            "--adapter auxiliary"
        )
