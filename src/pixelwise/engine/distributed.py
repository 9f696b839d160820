"""Process-group helpers: everything is a no-op in a single process, so the training loop has one code path.

Launch with ``torchrun --nproc-per-node N -m pixelwise.cli.main train ...``: gloo on CPU, nccl on GPU.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes in the environment (if any)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over processes in place (confusion matrices, counts); identity without a process group."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def mean_over_processes(value: torch.Tensor) -> torch.Tensor:
    """The mean of a per-process tensor over processes, as a new tensor; the value itself without a process group."""
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value


def agree_max(dist_info: DistInfo, device: torch.device, *values: float) -> list[float]:
    """Each value's maximum over ranks, on every rank, in one small all-reduce (a flag's maximum is "any")."""
    if not dist_info.enabled:
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()


def agree_any(dist_info: DistInfo, device: torch.device, *flags: bool) -> list[bool]:
    """Flags true on any rank are true on every rank, so all ranks act alike (stop after the same step)."""
    return [bool(v) for v in agree_max(dist_info, device, *flags)]


def close_distributed() -> None:
    """Leave the process group before the interpreter exits. Left to interpreter teardown, gloo's threads can be
    destroyed while still joinable and abort the process (``terminate called without an active exception``,
    SIGABRT) after a run that finished correctly."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {name!r}: not a device name (use auto, cpu, cuda or cuda:N)") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {name}: this machine has no usable CUDA GPU; use --device cpu (or auto)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


class ShardedRandomSampler(Sampler[int]):
    """This process's share of one seeded random order per epoch (torch's RandomSampler order when alone).

    Rank r takes every W-th index of the shared permutation, starting at r, so the W ranks' k-th batches of B images
    together are exactly the k-th batch of W*B images of one process with the same seed: ``torchrun`` training is
    single-process training split up, not a different experiment. Like DistributedSampler, the order is padded
    with its first indices to a multiple of W so every rank steps the same number of times.
    """

    def __init__(
        self, size: int, rank: int = 0, world_size: int = 1, seed: int = 0, replacement: bool = False
    ) -> None:
        self.size, self.rank, self.world_size, self.seed = size, rank, world_size, seed
        self.replacement = (
            replacement  # independent draws (Long §4.4.4), shared by the ranks as the permutation is
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed * 1000 + self.epoch)
        if self.replacement:
            order = torch.randint(self.size, (self.size,), generator=generator).tolist()
        else:
            order = torch.randperm(self.size, generator=generator).tolist()
        order += order[: len(self) * self.world_size - self.size]
        return iter(order[self.rank :: self.world_size])

    def __len__(self) -> int:
        return math.ceil(self.size / self.world_size)


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes whose gradient is again the sum over processes (every rank's loss used the total)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        return all_reduce_sum(tensor.clone())

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return all_reduce_sum(grad.clone())


class CrossProcessBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics span every process's batch, on CPU too (torch's SyncBatchNorm is
    GPU-only). Sums and sums of squares are all-reduced with autograd, so W processes of B images normalise, and
    back-propagate, exactly as one process of W*B images."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        channels = x.shape[1]
        values = x.float()
        count = torch.tensor([values.numel() / channels], device=x.device)
        stats = torch.cat([values.sum((0, 2, 3)), (values * values).sum((0, 2, 3)), count])
        stats = _AllReduceSum.apply(stats)
        total = stats[-1]
        mean = stats[:channels] / total
        var = (stats[channels : 2 * channels] / total - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(var * total / (total - 1).clamp_min(1), momentum)
        shape = (1, channels, 1, 1)
        out = (values - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
NO_BF16_ISAS = (
    "SSE41",
    "AVX",
    "AVX2",
    "AVX2_VNNI",
    "AVX512_CORE",
    "AVX512_CORE_VNNI",
)  # ONEDNN_MAX_CPU_ISA caps


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 autocast runs on native instructions here (else it is emulated, and ~8x slower on a CPU).

    CUDA: the device says. CPU: AVX512-BF16 or AMX in /proc/cpuinfo, and neither torch nor oneDNN capped below
    them (``ATEN_CPU_CAPABILITY=avx2`` / ``ONEDNN_MAX_CPU_ISA=AVX2`` make an AVX512 machine behave as an AVX2 one).
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "").split()
    except OSError:
        return False
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in NO_BF16_ISAS
    aten = torch.backends.cpu.get_cpu_capability()
    return any(flag in flags for flag in BF16_CPU_FLAGS) and not capped and aten.startswith("AVX512")


def amp_note(device: torch.device, forced: bool) -> str:
    """The one line a run prints where bfloat16 is not native: off by default, or forced (and slow)."""
    state = "on, forced by --amp," if forced else "off"
    slow = ", so it is emulated and much slower (--no-amp)" if forced else " (--amp forces it)"
    return (
        f"note: bfloat16 autocast {state} here: this {device.type} has no native bfloat16 (no AVX512-BF16/AMX, "
        f"or capped by ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA){slow}"
    )


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Swap every BatchNorm2d for one with cross-process statistics (parameters and buffers kept, so frozen
    layers stay frozen and checkpoints keep their keys)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if type(model) is nn.BatchNorm2d:
        synced = CrossProcessBatchNorm2d(
            model.num_features, model.eps, model.momentum, model.affine, model.track_running_stats
        )
        synced.load_state_dict(model.state_dict())
        synced.weight, synced.bias = model.weight, model.bias  # the same Parameters (requires_grad kept)
        return synced.train(model.training)
    for name, child in model.named_children():
        setattr(model, name, sync_batchnorm(child, device))
    return model
