"""torchrun: two CPU processes (gloo, loopback) train with DDP; rank 0 alone writes the checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pixelwise.engine.checkpoint import load_checkpoint


@pytest.mark.slow
def test_two_process_torchrun_training(tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "pixelwise.cli.main", "train", "--data", "synthetic:16:48x64", "--epochs", "1", "--batch-size", "2",
        "--crop", "48", "64", "--threads", "1", "--output", str(run),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    checkpoint = load_checkpoint(run / "last.safetensors")
    assert checkpoint.meta["state"]["epoch"] == 1
    # 16 images, 2 per process per step, 2 processes -> 4 optimiser steps in the epoch
    assert checkpoint.meta["state"]["iteration"] == 4
    assert not list(run.glob("*.tmp"))
