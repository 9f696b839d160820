"""Gradient combination for tasks with several losses on shared weights (Larsson thesis §4.5).

A task with several losses (``Task.losses``, e.g. colorization + jigsaw + motion on one backbone) gets one
gradient per loss; a combiner turns them into the step the optimiser takes:

- ``sum``: the optimiser steps on the sum of the task gradients (Eq. 4.9, with Σ_m for the erratum's Σ_t).
  Scaling one loss by c scales its gradient by c (Eq. 4.8): jigsaw drowned colorization this way (Fig. 4.6).
- ``normsgd`` (§4.5.3, Eq. 4.11): each task gradient g_m is divided by s_m, its mean absolute value over the
  *shared* (backbone) parameters, and ĝ = (1/M) Σ_m g_m / s_m feeds momentum SGD. One scalar per task, so the
  direction is kept; the update is invariant to any per-task loss scale while s_m is live. s_m is frozen (the
  mean of its last 100 values) at ``freeze_at``, after the warm-up and before the first lr drop: late, small
  gradients would otherwise be boosted and training can diverge. A task head's gradient is divided by the same
  s_m (spec gap: this keeps the whole task scale invariant).
- ``separate`` (Eq. 4.10): one adaptive optimiser state per task, g = (1/M) Σ_m optimiser_m(g_m) ("Multi-Adam").
  Implemented by stepping the one optimiser M times at lr / M, each time with task m's gradient and its own
  state swapped in: Adam's step depends only on the gradient and its state, so this is exactly the mean of the M
  updates (up to AdamW's decoupled weight decay, applied M times at lr / M).
- round-robin (§4.5.4, any combiner): only task (t // Q) mod M is evaluated at step t; its gradient alone is
  combined (with NormSGD, normalised by its own s_m). Each task keeps its head's optimiser state (a head without
  a gradient is not stepped); the backbone's momentum is shared.

The combiner's statistics and per-task states are part of the resumable checkpoint (``state_dict``), so
``--resume`` continues exactly. With ``diagnose`` set before a step, it also measures the uneven-gradients
problem directly (spec diagnostic): each task's ||g_m||_1 over the shared weights, their max/min ratio, and
cos(ĝ, g_m) between the step's direction and each task's gradient (``diagnostics``, logged by the loop).

With round-robin the one active task is normalised on its own (no 1/M: it is the only term): a round-robin step
is 1 to M times a joint step, depending on how well the tasks' normalised gradients agree (M times when they
cancel, 1 when they are parallel), so its lr needs its own choice. A task freezes its s_m only once it has been
seen at least ``MIN_HISTORY`` times (or ``freeze_at`` times, if smaller), so a task that round-robin reaches late
does not freeze on one value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from pixelwise.engine.config import COMBINERS
from pixelwise.engine.errors import TrainingError

HISTORY = 100  # NormSGD freezes s_m to the mean of its last 100 values (spec: multi-proxy.md)
MIN_HISTORY = 10  # ... but not before it has seen this many

Gradients = list[torch.Tensor | None]


def normsgd_freeze_step(warmup: int, first_drop: int) -> int:
    """The step NormSGD freezes its statistics at: end of warm-up + 10% of the steps to the first lr drop."""
    return warmup + max(1, math.ceil(0.1 * max(0, first_drop - warmup)))


class GradientCombiner:
    """Turns per-task gradients of ``params`` into one optimiser step (see the module docstring)."""

    def __init__(
        self,
        mode: str,
        params: Sequence[nn.Parameter],
        shared: Iterable[nn.Parameter],
        tasks: Sequence[str],
        round_robin: int = 0,
        freeze_at: int | None = None,
        masks: dict[str, dict[nn.Parameter, torch.Tensor]] | None = None,
    ) -> None:
        if mode not in COMBINERS:
            raise ValueError(f"unknown gradient combiner {mode!r}; choose from {', '.join(COMBINERS)}")
        self.mode = mode
        self.params = list(params)
        shared_ids = {id(p) for p in shared}
        self.shared = [i for i, p in enumerate(self.params) if id(p) in shared_ids]  # the base network's θ
        self.tasks = list(tasks)
        self.round_robin = round_robin
        self.freeze_at = freeze_at
        self.history: dict[str, list[float]] = {name: [] for name in self.tasks}
        self.frozen: dict[str, float] = {}
        self.task_states: dict[str, dict[Any, Any]] = {}  # ``separate``: each task's optimiser state
        self.last_scales: dict[str, float] = {}
        self.diagnose = False  # set before a step to measure it (costs one pass over the shared gradients)
        self.diagnostics: dict[str, float] = {}
        # Split-weights (§4.4): task m's gradient reaches only the weights of its channel groups.
        self.masks = {
            name: [per_task.get(p) for p in self.params] for name, per_task in (masks or {}).items()
        }

    # ----------------------------------------------------------------- which tasks run
    def active(self, iteration: int) -> list[str]:
        """The tasks whose losses are evaluated at ``iteration`` (all of them, or one with round-robin)."""
        if self.round_robin:
            return [self.tasks[(iteration // self.round_robin) % len(self.tasks)]]
        return list(self.tasks)

    # ----------------------------------------------------------------- gradients
    def take_gradients(self, task: str | None = None) -> Gradients:
        """The parameters' current ``.grad`` (one task's backward, masked to its weights under split-weights),
        which are then cleared for the next task."""
        grads = [p.grad for p in self.params]
        for p in self.params:
            p.grad = None
        masks = self.masks.get(task) if task is not None else None
        if masks is not None:
            grads = [g if g is None or m is None else g * m.to(g.device) for g, m in zip(grads, masks)]
        return grads

    def mean_abs(self, grads: Gradients) -> float:
        """s_m = (1/P) Σ_p |g_{m,p}| over the shared parameters (absent gradients count as zeros)."""
        parts = [grads[i].abs().sum() for i in self.shared if grads[i] is not None]
        total = (
            float(torch.stack(parts).double().sum()) if parts else 0.0
        )  # one device sync, not one per param
        count = sum(self.params[i].numel() for i in self.shared)
        return total / max(count, 1)

    def scale(self, name: str, grads: Gradients, iteration: int) -> float:
        """NormSGD's s_m at ``iteration``: live (and recorded) until ``freeze_at``, then the frozen mean."""
        if name in self.frozen:
            return self.frozen[name]
        live = self.mean_abs(grads)
        history = self.history[name]
        history.append(live)
        del history[:-HISTORY]
        enough = self.freeze_at is not None and len(history) >= min(MIN_HISTORY, self.freeze_at)
        if enough and iteration + 1 >= self.freeze_at:  # type: ignore[operator]
            self.frozen[name] = sum(history) / len(history)
        return live

    def step(
        self, optimizer: torch.optim.Optimizer, task_grads: dict[str, Gradients], iteration: int
    ) -> None:
        """Set ``.grad`` from the task gradients and step ``optimizer`` (``separate``: once per task)."""
        before = None
        if self.diagnose and self.mode == "separate":  # its direction is the step taken (Eq. 4.10)
            before = [self.params[i].detach().clone() for i in self.shared]
        self._step(optimizer, task_grads, iteration)
        self.diagnostics = self.measure(task_grads, before) if self.diagnose else {}

    def _step(
        self, optimizer: torch.optim.Optimizer, task_grads: dict[str, Gradients], iteration: int
    ) -> None:
        if self.mode == "separate":
            self._step_separately(optimizer, task_grads)
            return
        weights = {name: 1.0 for name in task_grads}
        self.last_scales = {}  # this step's tasks only (round-robin: the active one)
        if self.mode == "normsgd":
            count = len(task_grads)
            for name, grads in task_grads.items():
                scale = self.scale(name, grads, iteration)
                self.last_scales[name] = scale
                weights[name] = 1.0 / (count * scale) if scale > 0 else 0.0
        for index, param in enumerate(self.params):
            parts = [(weights[n], g[index]) for n, g in task_grads.items() if g[index] is not None]
            param.grad = _weighted_sum(parts)
        optimizer.step()
        self.take_gradients()  # the next step's backward must not add to this combined gradient

    def _step_separately(self, optimizer: torch.optim.Optimizer, task_grads: dict[str, Gradients]) -> None:
        count = len(task_grads)
        shared_state = optimizer.state
        for group in optimizer.param_groups:
            group["lr"] /= count
        try:
            for name, grads in task_grads.items():
                optimizer.state = self.task_states.setdefault(name, _empty_state())
                for param, grad in zip(self.params, grads):
                    param.grad = grad
                optimizer.step()
                self.task_states[name] = optimizer.state
            self.take_gradients()
        finally:
            optimizer.state = shared_state
            for group in optimizer.param_groups:
                group["lr"] *= count

    def measure(
        self, task_grads: dict[str, Gradients], before: list[torch.Tensor] | None
    ) -> dict[str, float]:
        """``g1_<task>`` = ||g_m||_1 and ``cos_<task>`` = cos(ĝ, g_m) over the shared weights, and ``g1_ratio``
        = max / min of the norms, where ĝ is the combined direction: Σ_m g_m (sum), Σ_m g_m / s_m (NormSGD)
        or, with ``before`` (separate), the step taken, θ_before - θ_after."""

        def flat(grads: Gradients) -> torch.Tensor:
            return torch.cat([
                (grads[i] if grads[i] is not None else torch.zeros_like(self.params[i])).detach().flatten().float()
                for i in self.shared
            ])  # fmt: skip

        vectors = {name: flat(grads) for name, grads in task_grads.items()}
        if before is not None:
            combined = torch.cat(
                [(b - self.params[i].detach()).flatten().float() for b, i in zip(before, self.shared)]
            )
        elif self.mode == "normsgd":
            combined = sum(
                v / self.last_scales[n] for n, v in vectors.items() if self.last_scales.get(n, 0) > 0
            )
        else:
            combined = sum(vectors.values())
        out: dict[str, float] = {}
        for name, vector in vectors.items():
            out[f"g1_{name}"] = float(vector.abs().sum())
            if isinstance(combined, torch.Tensor):
                cosine = float(torch.nn.functional.cosine_similarity(combined, vector, dim=0, eps=1e-30))
                out[f"cos_{name}"] = min(1.0, max(-1.0, cosine))  # rounding can leave |cos| a hair above 1
        norms = [out[f"g1_{name}"] for name in vectors]
        if len(norms) > 1 and min(norms) > 0:
            out["g1_ratio"] = max(norms) / min(norms)
        return out

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """JSON-able statistics plus each task's optimiser state (tensors), for the resumable checkpoint."""
        index = {id(p): i for i, p in enumerate(self.params)}
        states = {
            name: {str(index[id(p)]): dict(values) for p, values in state.items()}
            for name, state in self.task_states.items()
        }
        return {"mode": self.mode, "history": self.history, "frozen": self.frozen, "task_states": states,
                "freeze_at": self.freeze_at}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("mode") != self.mode:
            raise ValueError(
                f"combiner state is for --combine {state.get('mode')}, this run uses {self.mode}"
            )
        # The freeze step is the run's, not the resumed command's (--epochs may change on --resume).
        self.freeze_at = state.get("freeze_at", self.freeze_at)
        self.history = {name: list(values) for name, values in state["history"].items()}
        self.frozen = {name: float(value) for name, value in state["frozen"].items()}
        self.task_states = {}
        for name, saved in state.get("task_states", {}).items():
            restored = _empty_state()
            for key, values in saved.items():
                param = self.params[int(key)]
                restored[param] = {
                    k: v.to(param.device) if isinstance(v, torch.Tensor) and k != "step" else v
                    for k, v in values.items()
                }
            self.task_states[name] = restored


def _empty_state() -> dict[Any, Any]:
    from collections import defaultdict

    return defaultdict(dict)


def _weighted_sum(parts: list[tuple[float, torch.Tensor]]) -> torch.Tensor | None:
    if not parts:
        return None
    (weight, first), *rest = parts
    total = first * weight if weight != 1.0 else first.clone()
    for weight, grad in rest:
        total.add_(grad, alpha=weight)
    return total


def check_combine_options(config: Any, multi_loss: bool) -> None:  # a RunConfig (config.py imports us)
    """--combine / --round-robin act on tasks with several losses only; NormSGD steps with momentum SGD."""
    if not multi_loss and (config.combine != "sum" or config.round_robin):
        raise TrainingError(
            "--combine and --round-robin combine the losses of a task with several (pretrain --method multi); "
            "this run has one loss: drop them"
        )
    if config.combine == "normsgd" and config.optimizer != "sgd":
        raise TrainingError(
            "--combine normsgd normalises gradients for momentum SGD (Eq. 4.11): add --optimizer sgd"
        )


def add_gradients(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    """a + b where either may be absent (a parameter the loss did not reach)."""
    if a is None or b is None:
        return b if a is None else a
    return a + b
