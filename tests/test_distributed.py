"""torchrun: two CPU processes (gloo, loopback) train with DDP exactly as one process with twice the batch would,
and rank 0 alone writes the checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pixelwise.engine.checkpoint import load_checkpoint
from pixelwise.engine.distributed import ShardedRandomSampler

# No augmentation (its draws come from each process's own RNG), fp32 and SGD (Adam's first steps are sign steps,
# which blow rounding noise in near-zero gradients up to a full lr), so the two runs can be compared closely.
TRAIN = [
    "-m", "pixelwise.cli.main", "train", "--data", "synthetic:16:48x64", "--epochs", "2", "--crop", "48", "64",
    "--scale", "1", "1", "--no-hflip", "--color-jitter", "0", "--no-amp", "--optimizer", "sgd", "--threads", "1", "--num-examples", "0",
]  # fmt: skip


def train(output: Path, batch_size: int, processes: int, *extra: str) -> None:
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    command = [sys.executable, *(launcher if processes > 1 else []), *TRAIN, *extra]
    command += ["--batch-size", str(batch_size), "--output", str(output)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-2000:]


def relative_distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """||a - b|| / ||b|| over every floating-point tensor (weights and BatchNorm statistics), in float64."""
    keys = [k for k, v in b.items() if v.is_floating_point()]
    diff = sum(float((a[k].double() - b[k].double()).square().sum()) for k in keys)
    norm = sum(float(b[k].double().square().sum()) for k in keys)
    return (diff / norm) ** 0.5


@pytest.mark.slow
def test_two_process_torchrun_equals_one_process_with_twice_the_batch(tmp_path: Path) -> None:
    """Equal up to rounding: the tolerance is measured, not tuned on one CPU.

    The noise floor is the same one-process run with another thread count (the kernels' reduction order
    changes, as it does between processes); 8 SGD steps amplify rounding differently on AVX2 and AVX512 CPUs, so
    a fixed rtol held on one machine and failed on the other. A real divergence, such as a rank training on the
    wrong shard, moves the weights like training on other images (here: another seed), orders of magnitude more.
    """
    train(tmp_path / "ddp", 2, 2)
    train(tmp_path / "single", 4, 1)
    train(tmp_path / "threads", 4, 1, "--threads", "2")
    train(tmp_path / "other", 4, 1, "--seed", "5")
    ddp, single, threads, other = (
        load_checkpoint(tmp_path / run / "last.safetensors") for run in ("ddp", "single", "threads", "other")
    )
    # 16 images, 2 per process per step, 2 processes -> 4 optimiser steps per epoch, like batches of 4 alone
    assert ddp.meta["state"]["iteration"] == single.meta["state"]["iteration"] == 8
    assert not list((tmp_path / "ddp").glob("*.tmp"))
    assert ddp.model_state.keys() == single.model_state.keys()  # cross-process BatchNorm keeps the keys
    for key, value in single.model_state.items():
        if not value.is_floating_point():  # e.g. BatchNorm's num_batches_tracked: exact
            assert torch.equal(ddp.model_state[key], value), key
    noise = relative_distance(threads.model_state, single.model_state)
    tolerance = max(20 * noise, 1e-6)
    distance = relative_distance(ddp.model_state, single.model_state)
    divergence = relative_distance(other.model_state, single.model_state)
    print(f"torchrun vs one process: distance {distance:.2e}, noise {noise:.2e}, other seed {divergence:.2e}")
    assert distance <= tolerance, (distance, noise)
    assert divergence > 100 * tolerance, (
        divergence,
        tolerance,
    )  # the check can fail: it sees a real divergence
    scores = [json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("ddp", "single")]
    assert scores[0]["mean_iou"] == pytest.approx(
        scores[1]["mean_iou"], abs=1e-3
    )  # sharded eval, all-reduced


def test_ranks_split_the_single_process_order() -> None:
    """Rank r's k-th batch of B plus the other ranks' = the one-process k-th batch of W*B, every epoch."""
    alone = ShardedRandomSampler(10, seed=3)
    ranks = [ShardedRandomSampler(10, rank, 2, seed=3) for rank in range(2)]
    for epoch in range(3):
        for sampler in (alone, *ranks):
            sampler.set_epoch(epoch)
        order = list(alone)
        shards = [list(r) for r in ranks]
        assert len(shards[0]) == len(shards[1]) == len(ranks[0]) == 5
        for k in range(2):  # batches of 2 per rank
            assert sorted(shards[0][2 * k : 2 * k + 2] + shards[1][2 * k : 2 * k + 2]) == sorted(
                order[4 * k : 4 * k + 4]
            )
    generator = torch.Generator()
    generator.manual_seed(
        3 * 1000 + 2
    )  # alone, it is torch's RandomSampler order (old runs replay unchanged)
    assert order == torch.randperm(10, generator=generator).tolist()


@pytest.mark.slow
def test_colorization_pretraining_runs_under_torchrun(tmp_path: Path) -> None:
    """The other tasks share the trainer: a 2-process colorization run trains, validates (sharded) and saves."""
    run = tmp_path / "colorization"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "pixelwise.cli.main", "pretrain", "--method", "colorization", "--data", "synthetic:8:48x64",
        "--epochs", "1", "--batch-size", "2", "--crop", "48", "64", "--samples", "32", "--threads", "1",
        "--num-examples", "0", "--output", str(run),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert load_checkpoint(run / "last.safetensors").meta["state"]["epoch"] == 1
    scores = json.loads((run / "metrics.json").read_text())
    assert scores["psnr"] > 0


@pytest.mark.slow
def test_torchrun_resume_restores_every_ranks_own_random_stream(tmp_path: Path) -> None:
    """With augmentation on, 1 epoch + resume to 2 equals 2 epochs straight: each rank gets its own RNG back."""
    common = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "pixelwise.cli.main", "train", "--data", "synthetic:8:48x64", "--crop", "40", "56",
        "--scale", "0.8", "1.2", "--batch-size", "2", "--no-amp", "--optimizer", "sgd", "--schedule", "constant",
        "--threads", "1", "--num-examples", "0", "--eval-every", "1",  # both runs validate after epoch 1
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for extra in (["--epochs", "2", "--output", str(tmp_path / "straight")],
                  ["--epochs", "1", "--output", str(tmp_path / "resumed")],
                  ["--epochs", "2", "--output", str(tmp_path / "resumed"), "--resume"]):  # fmt: skip
        result = subprocess.run(common + extra, capture_output=True, text=True, timeout=240, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
    straight = load_checkpoint(tmp_path / "straight" / "last.safetensors")
    resumed = load_checkpoint(tmp_path / "resumed" / "last.safetensors")
    assert {"torch.rank0", "torch.rank1"} <= set(resumed.rng_state)
    for key, value in straight.model_state.items():
        torch.testing.assert_close(resumed.model_state[key], value, rtol=1e-5, atol=1e-6, msg=key)


def _ddp_gradient(rank: int, world_size: int, init_file: str, result: str) -> None:
    """One process of ``test_loss_is_normalised_over_processes``: DDP's averaged gradient of a shared weight."""
    import torch.distributed as dist

    from pixelwise.methods.segmentation import segmentation_loss

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    features, labels = _void_batch()
    weight = torch.ones(3, 1, 1, requires_grad=True)
    shard = slice(2 * rank, 2 * rank + 2)
    segmentation_loss(features[shard] * weight, labels[shard], None, 255, 1.0).backward()
    dist.all_reduce(weight.grad)  # what DistributedDataParallel does to every gradient ...
    weight.grad /= world_size  # ... an average over processes
    if rank == 0:
        torch.save(weight.grad, result)
    dist.destroy_process_group()


def _void_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(4, 3, 8, 8, generator=generator)
    labels = torch.randint(0, 3, (4, 8, 8), generator=generator)
    labels[:2, :6] = 255  # process 0's crops are mostly void, process 1's not at all (CamVid's void, padding)
    return features, labels


def test_loss_is_normalised_over_processes(tmp_path: Path) -> None:
    """Processes whose crops hold different numbers of void pixels still train as one process on the union batch."""
    from pixelwise.methods.segmentation import segmentation_loss

    result = tmp_path / "grad.pt"
    torch.multiprocessing.spawn(_ddp_gradient, args=(2, str(tmp_path / "init"), str(result)), nprocs=2)
    features, labels = _void_batch()
    weight = torch.ones(3, 1, 1, requires_grad=True)
    segmentation_loss(features * weight, labels, None, 255, 1.0).backward()
    torch.testing.assert_close(torch.load(result), weight.grad)


@pytest.mark.slow
def test_multi_proxy_normsgd_trains_under_torchrun(tmp_path: Path) -> None:
    """Two processes, two proxies: every loss's backward is all-reduced on its own (DDP with unused heads), the
    combiner's statistics come from the averaged gradients, and rank 0 writes one resumable checkpoint."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "pixelwise.cli.main", "pretrain", "--method", "multi", "--tasks", "colorization", "motion",
               "--data", "synthetic:8:48x64", "--flow-data", "flow-synthetic:8:48x64", "--crop", "48", "64",
               "--batch-size", "2", "--epochs", "2", "--combine", "normsgd", "--optimizer", "sgd", "--lr", "1e-4",
               "--no-amp", "--threads", "1", "--output", str(tmp_path / "ddp")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    checkpoint = load_checkpoint(tmp_path / "ddp" / "last.safetensors")
    # 8 train + 4 val images, 2 per process per step, 2 epochs
    assert checkpoint.meta["state"]["iteration"] == 2 * (8 + 4) // 4
    combiner = checkpoint.extra_state["combiner"]
    assert set(combiner["history"]) == {"colorization", "motion"} and combiner["frozen"]


def _balance_on_two_ranks(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch import nn

    from pixelwise.methods.joint.loss import BalancedTerms

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)

    class Model(nn.Module):  # the balance lives in the model, as in JointModel: DDP broadcasts its buffers
        def __init__(self) -> None:
            super().__init__()
            self.linear, self.balance = nn.Linear(1, 4), BalancedTerms("two-part")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x).mean(0)

    model = Model()
    model.balance.warmup_calls = 4
    net = nn.parallel.DistributedDataParallel(model)
    losses = torch.tensor([1.0, 1, 1, 1]) if rank == 0 else torch.tensor([3.0, 1, 1, 1])
    for _ in range(4):
        model.balance(net(torch.ones(1, 1)) * 0 + losses)
    if rank == 0:
        torch.save(model.balance.weights, out)
    dist.destroy_process_group()


def test_the_joint_loss_weights_come_from_every_ranks_losses(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "weights.pt"
    torch.multiprocessing.spawn(_balance_on_two_ranks, args=(port, str(out)), nprocs=2)
    # mean losses over both ranks [2, 1, 1, 1] -> w ∝ 1 / mean, summing to 4 (rank 0's alone would give ones)
    expected = torch.tensor([0.5, 1, 1, 1]) * 4 / 3.5
    torch.testing.assert_close(torch.load(out), expected)
