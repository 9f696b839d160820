"""A run written before the layering change (commit 06c485e: configs in engine/config.py, the kind table in
engine/checkpoint.py) still loads, evaluates and resumes. The fixture is that commit's own output:

    pixelwise pretrain --method label-ae --data synthetic:8:48x64 --epochs 1 --batch-size 4 --crop 48 64 \\
        --scale 1 1.25 --threads 1 --label-ae-depth 3 --label-ae-width 32 --optimizer sgd --num-examples 0

(a label autoencoder: the only model kind small enough to commit, 330 KB with its optimiser state).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from pixelwise.cli.main import main
from pixelwise.engine.checkpoint import load_checkpoint
from pixelwise.methods.label_ae import load_label_autoencoder

FIXTURE = Path(__file__).parent / "data" / "label_ae_06c485e"
FLAGS = [
    "pretrain", "--method", "label-ae", "--data", "synthetic:8:48x64", "--batch-size", "4", "--crop", "48", "64",
    "--scale", "1", "1.25", "--threads", "1", "--label-ae-depth", "3", "--label-ae-width", "32",
    "--optimizer", "sgd", "--num-examples", "0",
]  # fmt: skip


@pytest.mark.slow
def test_a_run_from_before_the_layering_change_loads_evaluates_and_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    model, meta = load_label_autoencoder(run / "last.safetensors")
    assert meta["model"]["kind"] == "label-ae" and meta["state"]["epoch"] == 1
    labels = torch.randint(0, meta["model"]["num_classes"], (1, 48, 64))
    assert model(labels).shape == (1, meta["model"]["num_classes"], 48, 64)  # evaluates
    assert main([*FLAGS, "--epochs", "2", "--resume", "--output", str(run)]) == 0  # resumes
    assert load_checkpoint(run / "last.safetensors").meta["state"]["epoch"] == 2
    assert json.loads((run / "metrics.json").read_text())["mean_iou"] >= 0  # validated by today's code
