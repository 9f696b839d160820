"""Multi-proxy pretraining (Larsson Ch. 4): several proxies on one backbone, combined gradients, transfer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pixelwise.cli.main import main
from pixelwise.engine.checkpoint import load_checkpoint

FRAMES = ["--data", "synthetic:8:180x240", "--crop", "180", "240", "--batch-size", "4", "--threads", "1"]


@pytest.mark.slow
def test_colorization_and_jigsaw_share_one_backbone_with_normsgd_and_the_backbone_transfers(
    tmp_path: Path,
) -> None:
    run = tmp_path / "cj"
    command = ["pretrain", "--method", "multi", "--tasks", "colorization", "jigsaw", *FRAMES, "--epochs", "2",
               "--combine", "normsgd", "--optimizer", "sgd", "--lr", "1e-4", "--output", str(run)]  # fmt: skip
    assert main(command) == 0
    scores = json.loads((run / "metrics.json").read_text())
    assert {"colorization_loss", "jigsaw_loss", "jigsaw_accuracy", "neg_loss"} <= scores.keys()
    assert all(torch.isfinite(torch.tensor(v)) for v in scores.values() if isinstance(v, float))
    checkpoint = load_checkpoint(run / "last.safetensors")
    assert checkpoint.meta["model"]["kind"] == "multi-proxy"
    keys = checkpoint.model_state.keys()
    assert any(k.startswith("taps.backbone.conv1") for k in keys)
    assert any(k.startswith("proxies.colorization.head") for k in keys)
    assert any(k.startswith("proxies.jigsaw.head") for k in keys)
    assert set(checkpoint.extra_state["combiner"]["history"]) == {"colorization", "jigsaw"}
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "train"]
    assert all("loss_jigsaw" in r and "scale_colorization" in r for r in steps)
    assert steps[-1]["loss_jigsaw"] < 10  # one step's value, not a running sum
    fine_tune = ["train", *FRAMES, "--epochs", "1", "--in-channels", "3", "--init-from", str(run),
                 "--output", str(tmp_path / "seg"), "--num-examples", "0"]  # fmt: skip
    assert main(fine_tune) == 0
    seg = load_checkpoint(tmp_path / "seg" / "last.safetensors").model_state
    assert not torch.equal(seg["taps.backbone.conv1.weight"], torch.zeros(1))


@pytest.mark.slow
def test_round_robin_trains_one_proxy_per_step(tmp_path: Path) -> None:
    run = tmp_path / "rr"
    command = ["pretrain", "--method", "multi", "--tasks", "jigsaw", "colorization", *FRAMES, "--epochs", "2",
               "--round-robin", "1", "--output", str(run), "--log-every", "1"]  # fmt: skip
    assert main(command) == 0
    steps = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    trained = [[k for k in r if k.startswith("loss_")] for r in steps if r["kind"] == "train"]
    assert len(trained) >= 4
    assert trained == [
        ["loss_jigsaw"] if step % 2 == 0 else ["loss_colorization"] for step in range(len(trained))
    ]


def test_jigsaw_alone_and_bad_combinations_are_explained(tmp_path: Path, capsys) -> None:
    base = ["pretrain", *FRAMES, "--epochs", "1"]
    assert main([*base, "--method", "multi", "--tasks", "motion", "--output", str(tmp_path / "m")]) == 2
    assert "--flow-data" in capsys.readouterr().err
    assert (
        main([*base, "--method", "multi", "--tasks", "jigsaw", "jigsaw", "--output", str(tmp_path / "d")])
        == 2
    )
    assert "at most once" in capsys.readouterr().err
    assert main([*base, "--method", "jigsaw", "--combine", "normsgd", "--output", str(tmp_path / "n")]) == 2
    assert "--optimizer sgd" in capsys.readouterr().err
    assert main([*base, "--combine", "normsgd", "--optimizer", "sgd", "--output", str(tmp_path / "c")]) == 2
    assert "has one loss" in capsys.readouterr().err  # plain colorization has one loss


@pytest.mark.slow
def test_motion_proxy_trains_beside_the_others_on_exact_synthetic_flow(tmp_path: Path) -> None:
    run = tmp_path / "cjv"
    command = ["pretrain", "--method", "multi", "--tasks", "colorization", "jigsaw", "motion", *FRAMES,
               "--flow-data", "flow-synthetic:8:120x160", "--epochs", "1", "--combine", "separate",
               "--split-weights", "--output", str(run)]  # fmt: skip
    assert main(command) == 0
    scores = json.loads((run / "metrics.json").read_text())
    assert 0 <= scores["motion_accuracy"] <= 1 and scores["motion_loss"] > 0
    checkpoint = load_checkpoint(run / "last.safetensors")
    edges = checkpoint.model_state["proxies.motion.edges"]
    assert edges.numel() == 31 and torch.isfinite(edges).all() and (edges.diff() >= 0).all()  # fitted bins
    assert set(checkpoint.extra_state["combiner"]["task_states"]) == {"colorization", "jigsaw", "motion"}
