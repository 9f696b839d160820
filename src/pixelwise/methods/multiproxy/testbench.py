"""The supervised multi-task test bench of Larsson thesis §4.6.2 (Table 4.5), at CamVid scale (specs/
multi-proxy.md, "Testing it here, offline", part A): do the shared-weight optimisers of §4.5 balance the tasks?

Several supervised tasks (:mod:`~pixelwise.methods.multiproxy.testbench_data`: disjoint shares of 32 x 32 patches,
or disjoint class sets, with one loss each) train one base network of Table 4.1 (*Deep* or *Shallow*) through the
one training loop, whose :class:`~pixelwise.engine.combine.GradientCombiner` makes the step (``--combine sum``:
SGD / Adam, Eq. 4.9; ``separate``: Multi-Adam, Eq. 4.10; ``normsgd``: Eq. 4.11; ``--round-robin Q``: §4.5.4).
The representation is then scored as in §4.6.2: the task layers are discarded, the base is frozen, and a new
11-way linear layer is trained on held-out probe patches (:func:`linear_probe`) and tested on the val frames'
patches. Nothing is chosen on the test patches: fixed steps, the last model, a probe with fixed settings.

Table 4.1's nets: ReLU after every conv, 3 x 3 unless stated, 'same' padding, 2 x 2 max pools, dropout after the
ReLU where the table lists it. Erratum (spec): four pools on 32 x 32 leave 2 x 2 x 192 = 768 features, not the
table's 3072; the last pool is dropped so the flatten is 4 x 4 x 192 = 3072 for both nets.

Diagnostic (spec): :class:`~pixelwise.engine.combine.GradientCombiner` logs, per step, each task's ||g_m||_1 over the
shared weights, their max / min ratio, and cos(ĝ, g_m) with ĝ the combined step direction, logged to log.jsonl
beside the loop's own loss_<task> and scale_<task> (NormSGD's s_m).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from pixelwise.engine.config import RunConfig, option
from pixelwise.methods.distill.statistics import SCALE_FLOOR
from pixelwise.methods.multiproxy.split import split_activation_masks, split_weight_masks, zero_cross_weights
from pixelwise.methods.multiproxy.testbench_data import (
    LOSSES,
    PATCH,
    SPLITS,
    PatchBank,
    PatchDataset,
    TaskSpec,
    load_bank,
    make_split,
    remap_labels,
    share_ids,
    task_rows,
)
from pixelwise.models.stored import StoredConfig

NETS = ("shallow", "deep")
FEATURES = 3072  # Table 4.1's "top layer" (the flatten), with the erratum's last pool dropped

# Table 4.1: ("conv", kernel, channels, dropout) or ("pool",); the last pool of each net is dropped (erratum).
TABLE_4_1: dict[str, tuple[tuple[Any, ...], ...]] = {
    "deep": (
        ("conv", 5, 64, 0.0), ("conv", 3, 64, 0.0), ("pool",),
        ("conv", 3, 128, 0.1), ("conv", 3, 128, 0.1), ("pool",),
        ("conv", 3, 192, 0.2), ("conv", 3, 192, 0.2), ("pool",),
        ("conv", 3, 192, 0.3), ("conv", 3, 192, 0.3),
    ),
    "shallow": (
        ("conv", 5, 8, 0.0), ("pool",),
        ("conv", 3, 16, 0.1), ("pool",),
        ("conv", 3, 32, 0.2), ("pool",),
        ("conv", 3, 32, 0.3), ("conv", 3, 192, 0.3),
    ),
}  # fmt: skip


# ----------------------------------------------------------------------------------------------- config
@dataclass
class TestBenchConfig(RunConfig):
    """A test-bench run: the loop's options plus the net, the split, the patch bank and the probe."""

    __test__: ClassVar[bool] = False  # a "Test..." name, not a pytest test class

    data: str = option(
        "synthetic:16:64x64", "frames the patches come from: 'camvid:PATH' (at 180x240) or 'synthetic:N:HxW'"
    )
    net: str = option("shallow", "base network of Table 4.1", choices=NETS)
    split: str = option("N25", "task split of Table 4.5 (see testbench_data)", choices=SPLITS)
    patches_per_frame: int = option(40, "class-balanced patches sampled per frame for the bank", minimum=1)
    probe_fraction: float = option(
        0.2,
        "share of the training frames kept for the linear probe",
        exclusive_minimum=0,
        exclusive_maximum=1,
    )
    bank_seed: int = option(0, "seed of the patch bank (frames split, centres); fixed across arms", minimum=0)
    bank_cache: str | None = option("runs/bench/testbench", "folder caching the patch bank (.pt); None: none")
    probe_steps: int = option(100, "L-BFGS iterations of the linear probe", minimum=1)
    probe_weight_decay: float = option(
        0.3,
        "L2 penalty (lambda / 2) ||W||^2 of the linear probe on standardised features (0.3: chosen on held-out "
        "probe frames, never on the test patches)",
        minimum=0,
    )
    disjoint: str = option(
        "none",
        "disjoint weights (§4.4): none (shared), weights (split-weights: each task updates the weights into its "
        "share of every layer's channels) or activations (split-activations: M separate columns, no weights "
        "between them, each head on its own column)",
        choices=("none", "weights", "activations"),
    )
    single: int | None = option(
        None, "train only this task of the split (Table 4.5's single-task baseline); None: all", minimum=0
    )
    teacher: str | None = option(
        None,
        "distillation (TestBenchDistillTask): run folder or checkpoint of a trained test-bench model whose "
        "pre-ReLU top layer the student (--net) learns on the pretraining patches",
    )
    distill_loss: str = option("ab", "distillation loss: ab (D_AB, Eq. 4.5-4.7) or l2", choices=("ab", "l2"))
    distill_alpha: float = option(0.25, "D_AB's alpha (1/4: T = 4, the thesis's choice)")
    distill_beta: float = option(0.0, "D_AB's beta")
    train_accuracy_samples: int = option(
        2000, "pretraining patches on which each task head's training accuracy is reported", minimum=1
    )


# ----------------------------------------------------------------------------------------------- nets
class ConvBlock(nn.Sequential):
    """conv ('same' padding) -> ReLU -> dropout (where Table 4.1 lists one)."""

    def __init__(self, in_channels: int, channels: int, kernel: int, dropout: float) -> None:
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, kernel, padding=kernel // 2), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)
        # He init: no normalisation layers, so the default (a = sqrt(5)) init would shrink the signal per layer.
        nn.init.kaiming_normal_(self[0].weight, nonlinearity="relu")
        nn.init.zeros_(self[0].bias)


class TestBenchBackbone(nn.Module):
    """The conv stack of Table 4.1 -> flattened top-layer features [B, 3072] (the base network)."""

    __test__ = False

    def __init__(self, net: str) -> None:
        super().__init__()
        if net not in TABLE_4_1:
            raise ValueError(f"unknown test-bench net {net!r}; choose from {', '.join(NETS)}")
        layers: list[nn.Module] = []
        channels = 3
        for spec in TABLE_4_1[net]:
            if spec[0] == "pool":
                layers.append(nn.MaxPool2d(2))
            else:
                _, kernel, out, dropout = spec
                layers.append(ConvBlock(channels, out, kernel, dropout))
                channels = out
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, pre_relu: bool = False) -> torch.Tensor:
        """Top-layer features; ``pre_relu``: the last conv's output before its ReLU (what §4.3.2 distils)."""
        *body, last = self.layers
        for layer in body:
            x = layer(x)
        x = last[0](x) if pre_relu else last(x)
        return x.flatten(1)


def flatten_size(net: str, size: int = PATCH) -> int:
    """The top layer's width for ``size`` x ``size`` input (3072 at 32 for both nets: the erratum's fix)."""
    with torch.no_grad():
        return int(TestBenchBackbone(net).eval()(torch.zeros(1, 3, size, size)).shape[1])


@dataclass(frozen=True)
class TestBenchNetConfig(StoredConfig):
    """Everything needed to rebuild a test-bench model; stored in its checkpoints."""

    KIND: ClassVar[str] = "multiproxy-testbench"
    __test__: ClassVar[bool] = False

    net: str = "shallow"
    heads: tuple[tuple[str, int], ...] = ()  # (task name, outputs) per task layer
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)  # input normalisation (the pretraining patches' statistics)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)


class TestBenchNet(nn.Module):
    """Base network (``backbone``, shared) + one linear task layer per task (``heads``, a ModuleDict).

    ``model(task, images)`` runs one task's forward so the loop can backprop the tasks one at a time through a
    DDP wrapper. Images may be uint8 (the bank's patches) or floats in [0, 1]; the model normalises them.
    """

    __test__ = False

    def __init__(self, config: TestBenchNetConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = TestBenchBackbone(config.net)
        self.heads = nn.ModuleDict({name: nn.Linear(FEATURES, int(k)) for name, k in config.heads})
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)

    def features(self, images: torch.Tensor, pre_relu: bool = False) -> torch.Tensor:
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        return self.backbone((x - self.mean) / self.std, pre_relu=pre_relu)

    def forward(self, task: str | None, images: torch.Tensor, pre_relu: bool = False) -> torch.Tensor:
        """Task ``task``'s logits, or (``task`` None) the top-layer features, e.g. pre-ReLU for distillation."""
        if task is None:
            return self.features(images, pre_relu=pre_relu)
        return self.heads[task](self.features(images))


# ----------------------------------------------------------------------------------------------- losses
def task_loss(kind: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One task's loss on logits [B, k] and targets [B] in 0..k-1 (Table 4.5's "Mixed" column, §4.6.2).

    ``ce``: multi-class softmax KL to the one-hot target (cross-entropy); ``l2``: squared L2 to the one-hot
    vector; ``bce``: multi-label sigmoid KL (binary cross-entropy per output); ``hinge``: multi-label hinge
    max(0, 1 - t z) with t = ±1 per output. Per-output losses are summed over outputs, all averaged over the
    batch. Each is minimised by predicting the right class (argmax of the logits is the prediction for all four).
    """
    logits = logits.float()
    if kind == "ce":
        return F.cross_entropy(logits, target)
    onehot = F.one_hot(target, logits.shape[1]).to(logits.dtype)
    if kind == "l2":
        return (logits - onehot).pow(2).sum(1).mean()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, onehot, reduction="none").sum(1).mean()
    if kind == "hinge":
        return F.relu(1 - (2 * onehot - 1) * logits).sum(1).mean()
    raise ValueError(f"unknown task loss {kind!r}; choose from {', '.join(LOSSES)}")


# ----------------------------------------------------------------------------------------------- probe
def linear_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    steps: int = 100,
    weight_decay: float = 0.3,
) -> nn.Linear:
    """A new linear task layer trained on frozen features [N, D] (§4.6.2: "only the new task layer is allowed
    to update"): multinomial logistic regression + (λ/2)||W||², λ = ``weight_decay``, full batch, ``steps``
    L-BFGS iterations from zero weights on standardised features (so it is deterministic: no seed needed).

    The standardisation (training features' mean and std; constant features left unscaled, and they keep a
    zero weight) is folded into the returned layer, which takes raw features.
    """
    with torch.enable_grad():
        x = features.detach().float()
        mean = x.mean(0)
        std = x.std(0)
        std = torch.where(std > 1e-6, std, torch.ones_like(std))
        z = (x - mean) / std
        weight = torch.zeros(num_classes, x.shape[1], device=x.device, requires_grad=True)
        bias = torch.zeros(num_classes, device=x.device, requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [weight, bias], lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe"
        )
        target = labels.to(x.device).long()

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(z @ weight.T + bias, target) + 0.5 * weight_decay * weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
    layer = nn.Linear(x.shape[1], num_classes).to(x.device)
    with torch.no_grad():
        layer.weight.copy_(weight / std)
        layer.bias.copy_(bias - (weight / std) @ mean)
    return layer


def accuracies(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[float, float]:
    """(accuracy, mean per-class accuracy over the classes present) of argmax predictions."""
    hit = (logits.argmax(1) == labels.to(logits.device)).float().cpu()
    labels = labels.cpu()
    per_class = [float(hit[labels == c].mean()) for c in range(num_classes) if (labels == c).any()]
    return float(hit.mean()), sum(per_class) / max(len(per_class), 1)


@torch.no_grad()
def top_features(
    model: TestBenchNet, patches: torch.Tensor, device: torch.device, batch: int = 512
) -> torch.Tensor:
    """Eval-mode (no dropout) top-layer features of uint8 patches, [N, 3072] on ``device``."""
    model.eval()
    parts = [model.features(patches[i : i + batch].to(device)) for i in range(0, len(patches), batch)]
    return torch.cat(parts) if parts else torch.zeros(0, FEATURES, device=device)


# ----------------------------------------------------------------------------------------------- task
class TestBenchTask:
    """The test bench as a multi-loss task for :class:`~pixelwise.engine.trainer.Trainer` (module docstring).

    Each batch holds patches of every task; a task's loss sees only its rows (its share, or its classes, with
    labels remapped to 0..k-1) and runs its own forward on them, so a step costs one forward of the batch.
    Validation is the linear probe; ``score_key`` is the probe's accuracy on held-out *probe* frames, so even a
    run with periodic validation never chooses ``best.safetensors`` on the test patches.
    """

    __test__ = False

    score_key = "probe_heldout_accuracy"

    def __init__(self, config: TestBenchConfig, progress: bool = True, hide_test: bool = False) -> None:
        self.config = config
        self.progress = progress
        self.hide_test = hide_test  # tuning runs: the test patches are never scored (nor printed)
        self._bank: PatchBank | None = None
        self._tasks: list[TaskSpec] | None = None
        self._shares: torch.Tensor | None = None

    @property
    def bank(self) -> PatchBank:
        if self._bank is None:
            config = self.config
            self._bank = load_bank(config.data, config.bank_cache, config.patches_per_frame,
                                   config.probe_fraction, config.bank_seed, self.progress)  # fmt: skip
        return self._bank

    @property
    def split_tasks(self) -> list[TaskSpec]:
        """Every task of the split (the shares are always drawn over all of them)."""
        if self._tasks is None:
            self._tasks = make_split(self.config.split, self.bank.num_classes, self.config.seed)
        return self._tasks

    @property
    def tasks(self) -> list[TaskSpec]:
        """The tasks trained: the split's, or only ``--single``'s."""
        single = self.config.single
        if single is None:
            return self.split_tasks
        if single >= len(self.split_tasks):
            raise ValueError(
                f"--single {single}: split {self.config.split} has {len(self.split_tasks)} tasks"
            )
        return [self.split_tasks[single]]

    @property
    def shares(self) -> torch.Tensor:
        if self._shares is None:
            count = int((self.bank.select("pretrain")[1]).numel())
            self._shares = share_ids(count, self.split_tasks, self.config.seed)
        return self._shares

    def loss_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def datasets(self) -> tuple[Dataset, Dataset]:
        patches, labels, _ = self.bank.select("pretrain")
        test_patches, test_labels, _ = self.bank.select("test")
        # The val set is only what the loop builds its (unused) loader from: validate() reads the bank.
        return PatchDataset(patches, labels, self.shares, hflip=self.config.hflip), PatchDataset(
            test_patches, test_labels
        )

    def build_model(self) -> tuple[TestBenchNet, float]:
        bank = self.bank
        config = TestBenchNetConfig(
            net=self.config.net,
            heads=tuple((t.name, t.outputs) for t in self.tasks),
            mean=tuple(bank.mean),
            std=tuple(bank.std),
        )
        model = TestBenchNet(config)
        if self.config.disjoint == "activations":  # the missing cross-column weights start (and stay) zero
            zero_cross_weights(self.gradient_masks(model) or {})
        return model, self.config.lr

    def gradient_masks(self, model: TestBenchNet) -> dict[str, dict[nn.Parameter, torch.Tensor]] | None:
        """--disjoint: which weights each task may update (split-weights / split-activations, §4.4)."""
        names = [t.name for t in self.tasks]
        if self.config.disjoint == "weights":
            return split_weight_masks(model.backbone, names)
        if self.config.disjoint == "activations":
            positions = FEATURES // model.backbone.layers[-1][0].out_channels
            return split_activation_masks(model.backbone.layers, model.heads, names, positions)
        return None

    def losses(
        self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> Iterator[tuple[str, Callable[[], torch.Tensor]]]:
        for task in self.tasks:
            yield task.name, partial(self._task_loss, net, task, images, targets)

    def loss(self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(term() for _, term in self.losses(net, images, targets))  # type: ignore[return-value]

    def _task_loss(
        self, net: nn.Module, task: TaskSpec, images: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        labels = targets["label"]
        rows = task_rows(task, labels, targets["share"])
        logits = net(task.name, images[rows])
        if logits.shape[0] == 0:  # none of its patches in this batch: a zero loss with zero gradients
            return logits.float().sum() * 0.0
        return task.factor * task_loss(
            task.loss, logits, remap_labels(task, labels[rows], self.bank.num_classes)
        )

    @torch.no_grad()
    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, progress: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        """The linear probe of §4.6.2 on the frozen base, plus each task head's training accuracy.

        Every process holds the whole bank, so each computes the same scores (no all-reduce needed).
        """
        config, bank = self.config, self.bank
        classes = bank.num_classes
        probe_x, probe_y, probe_frames = bank.select("probe")
        test_x, test_y, _ = bank.select("test")
        probe_f = top_features(model, probe_x, device)
        probe = linear_probe(probe_f, probe_y, classes, steps=config.probe_steps,
                             weight_decay=config.probe_weight_decay)  # fmt: skip
        scores: dict[str, Any] = {}
        if not self.hide_test:
            test_f = top_features(model, test_x, device)
            scores["test_accuracy"], scores["test_class_accuracy"] = accuracies(
                probe(test_f), test_y, classes
            )
        scores["probe_train_accuracy"], _ = accuracies(probe(probe_f), probe_y, classes)
        # A selection-safe score: the probe fitted on half of the probe frames, scored on the other half.
        frames = torch.unique(probe_frames)
        order = frames[torch.randperm(len(frames), generator=torch.Generator().manual_seed(config.bank_seed))]
        fit = torch.isin(probe_frames, order[: max(1, len(order) // 2)])
        if fit.all():  # one probe frame: no held-out half
            scores["probe_heldout_accuracy"] = scores["probe_train_accuracy"]
        else:
            half = linear_probe(probe_f[fit.to(device)], probe_y[fit], classes, steps=config.probe_steps,
                                weight_decay=config.probe_weight_decay)  # fmt: skip
            held = (~fit).to(device)
            scores["probe_heldout_accuracy"], _ = accuracies(half(probe_f[held]), probe_y[~fit], classes)
        scores.update(self.train_accuracies(model, device))
        model.train()
        return scores, []

    def train_accuracies(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """Each task layer's accuracy on (a fixed subset of) its own pretraining patches, in eval mode."""
        patches, labels, _ = self.bank.select("pretrain")
        generator = torch.Generator().manual_seed(0)  # the same subset at every validation and for every arm
        subset = torch.randperm(len(labels), generator=generator)[: self.config.train_accuracy_samples]
        features = top_features(model, patches[subset], device)
        labels, shares = labels[subset], self.shares[subset]
        scores = {}
        for task in self.tasks:
            rows = task_rows(task, labels, shares)
            if not rows.any():
                continue
            logits = model.heads[task.name](features[rows.to(device)])
            target = remap_labels(task, labels[rows], self.bank.num_classes)
            scores[f"train_accuracy_{task.name}"] = float((logits.argmax(1).cpu() == target).float().mean())
        return scores

    def save_examples(self, examples: list[Any], folder: Path) -> None:
        return None

    def summary(self, scores: dict[str, Any]) -> str:
        if "test_accuracy" not in scores:
            return f"linear probe: held-out probe accuracy {scores['probe_heldout_accuracy']:.3f} (test not scored)"
        return (
            f"linear probe: test accuracy {scores['test_accuracy']:.3f} (per class "
            f"{scores['test_class_accuracy']:.3f}), held-out probe {scores['probe_heldout_accuracy']:.3f}"
        )

    def metadata(self) -> dict[str, Any]:
        bank = self.bank
        return {
            "dataset": {"name": bank.meta["data"].split(":", 1)[0], "class_names": list(bank.class_names)},
            "testbench": {
                "split": self.config.split,
                "tasks": [t.describe() for t in self.tasks],
                "bank": bank.meta,
            },  # fmt: skip
        }


# ----------------------------------------------------------------------------------------------- distillation
def load_testbench_model(path: str | Path) -> TestBenchNet:
    """A trained test-bench model from a run folder (its last.safetensors) or a checkpoint, in eval mode."""
    from pixelwise.engine.checkpoint import load_checkpoint

    path = Path(path)
    checkpoint = load_checkpoint(path / "last.safetensors" if path.is_dir() else path)
    model = TestBenchNet(TestBenchNetConfig.from_dict(checkpoint.meta["model"]))
    model.load_state_dict(checkpoint.model_state)
    return model.eval()


class TestBenchDistillTask(TestBenchTask):
    """Top-layer distillation on the test bench (Table 4.2's *Top-Compress* with a Deep teacher and a Shallow
    student, *Top-Copy* with equal nets; §4.3.1-4.3.2), then the same linear probe.

    The student (no task layers) learns the teacher's **pre-ReLU** 3072 top features on the pretraining patches
    (the training batches, flips included): ŷ = y / s, ẑ = z / s with s_c = sqrt(Ê[y_c²]) over the pretraining
    patches (the teacher statistics of §4.3.2; s_c = 1 for features that are always 0), and the loss is
    (1/C) D_AB^(α,β)(e^ŷ || e^ẑ) (default (1/4, 0)) or ½(ŷ - ẑ)² (``--distill-loss l2``). The teacher runs
    without dropout (§4.3.5); the student keeps Table 4.1's dropout. Teacher and student have the same width, so
    there is no feature subset or auxiliary layer.
    """

    __test__ = False

    def __init__(self, config: TestBenchConfig, progress: bool = True, hide_test: bool = False) -> None:
        super().__init__(config, progress, hide_test)
        if not config.teacher:
            raise ValueError("distillation needs --teacher (a trained test-bench run)")
        self.teacher = load_testbench_model(config.teacher).requires_grad_(False)
        self._scale: torch.Tensor | None = None

    @property
    def tasks(self) -> list[TaskSpec]:
        return []  # no task layers: the student's only loss is the distillation

    def loss_names(self) -> list[str]:
        return ["distill"]

    def build_model(self) -> tuple[TestBenchNet, float]:
        student, lr = super().build_model()
        self.scale(torch.device("cpu"))
        return student, lr

    @torch.no_grad()
    def scale(self, device: torch.device) -> torch.Tensor:
        """s_c = sqrt(mean over the pretraining patches of y_c²) of the teacher's pre-ReLU top features."""
        if self._scale is None:
            patches = self.bank.select("pretrain")[0]
            energy = torch.zeros(FEATURES, dtype=torch.float64)
            for i in range(0, len(patches), 512):
                energy += self.teacher.features(patches[i : i + 512], pre_relu=True).double().pow(2).sum(0)
            rms = (energy / max(len(patches), 1)).sqrt().float()
            # A near-dead channel would blow z / s up: the relative floor of the main distillation code.
            self._scale = rms.clamp(min=float(SCALE_FLOOR * rms.mean().clamp(min=1e-12)))
        if self._scale.device != device:
            self._scale = self._scale.to(device)
            self.teacher.to(device)
        return self._scale

    def losses(
        self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> Iterator[tuple[str, Callable[[], torch.Tensor]]]:
        yield "distill", partial(self._distill_loss, net, images)

    def loss(self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._distill_loss(net, images)

    def _distill_loss(self, net: nn.Module, images: torch.Tensor) -> torch.Tensor:
        from pixelwise.methods.distill.divergence import ab_loss, l2_loss

        scale = self.scale(images.device)
        with torch.no_grad():
            y_hat = self.teacher.features(images, pre_relu=True).float() / scale
        z_hat = net(None, images, pre_relu=True).float() / scale  # through forward: a DDP wrapper syncs it
        if self.config.distill_loss == "l2":
            return l2_loss(y_hat, z_hat)
        return ab_loss(y_hat, z_hat, self.config.distill_alpha, self.config.distill_beta)

    def metadata(self) -> dict[str, Any]:
        meta = super().metadata()
        meta["testbench"]["distillation"] = {"teacher": self.config.teacher, "loss": self.config.distill_loss,
                                             "alpha": self.config.distill_alpha, "beta": self.config.distill_beta}  # fmt: skip
        return meta
