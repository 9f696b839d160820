"""Training curves where people look for them: log.jsonl even for short runs, TensorBoard when installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixelwise.methods.segmentation import segmentation_trainer
from test_engine import tiny_config


@pytest.mark.slow
def test_a_short_run_logs_its_first_and_every_epochs_last_step(tmp_path: Path) -> None:
    run = tmp_path / "run"
    segmentation_trainer(tiny_config(run, epochs=2, log_every=10)).fit()  # 4 steps per epoch: fewer than 10
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if r["kind"] == "train"] == [1, 4, 8]


@pytest.mark.slow
def test_tensorboard_event_files_mirror_the_log(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="optional: pip install pixelwise[tensorboard]")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    segmentation_trainer(tiny_config(run, epochs=1)).fit()
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "train/loss" in tags and "val/mean_iou" in tags
