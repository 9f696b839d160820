"""``pixelwise pipeline``: every stage runs once, a rerun skips finished stages, one report has everything."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelwise.cli.main import main


@pytest.mark.slow
def test_pipeline_runs_every_stage_once_and_writes_one_report(tmp_path: Path, capsys) -> None:
    out = tmp_path / "pipe"
    flags = ["--data", "synthetic:12:48x64", "--output", str(out), "--crop", "48", "64", "--batch-size", "4"]
    flags += ["--labels-fraction", "0.5"]
    epochs = [
        "--pretrain-epochs",
        "1",
        "--mixmatch-epochs",
        "1",
        "--label-ae-epochs",
        "1",
        "--train-epochs",
        "2",
    ]
    assert main(["pipeline", *flags, *epochs]) == 0
    first = capsys.readouterr().out
    for stage in ("1-colorization", "2-mixmatch", "3-label-ae", "4-segmentation"):
        assert (out / stage / "metrics.json").is_file(), stage
    page = (out / "report" / "report.html").read_text()
    for heading in ("Per-class IoU", "Training curves", "Colorizations"):
        assert heading in page
    assert page.count("data:image/png;base64") >= 4  # confusion, curves, examples and colorizations embedded
    assert main(["pipeline", *flags, *epochs]) == 0  # a rerun trains nothing and reports the same numbers
    second = capsys.readouterr().out
    assert second.count("done already") == 4 and "training in" not in second
    assert first.split('"mean_iou":')[1].split(",")[0] == second.split('"mean_iou":')[1].split(",")[0]
    # Changed options are never answered with the old run: refused, or rerun from the first changed stage on.
    more = [*epochs[:-1], "3"]  # --train-epochs 3
    assert main(["pipeline", *flags, *more]) == 2
    assert "4-segmentation was run with other values of --epochs" in capsys.readouterr().err
    assert main(["pipeline", *flags, *more, "--rerun-changed"]) == 0
    third = capsys.readouterr().out
    assert third.count("done already") == 3 and "4-segmentation moved to" in third
    assert (
        out / "4-segmentation.replaced-1" / "metrics.json"
    ).is_file()  # the old stage is kept, not deleted
    # An earlier stage rewritten after a later one finished (an interrupted --rerun-changed): the later one is
    # stale although its options are the same.
    import os
    import time

    later = time.time() + 5
    os.utime(out / "3-label-ae" / "last.safetensors", (later, later))
    assert main(["pipeline", *flags, *more]) == 2
    assert "an earlier stage's checkpoint, rewritten since" in capsys.readouterr().err


@pytest.mark.slow
def test_pipeline_with_a_multi_proxy_stage_fine_tunes_its_rgb_backbone(tmp_path: Path) -> None:
    import yaml

    out = tmp_path / "pipe"
    flags = ["--data", "synthetic:8:180x240", "--output", str(out), "--crop", "180", "240", "--batch-size", "4",
             "--pretrain-epochs", "1", "--pretrain-tasks", "colorization", "jigsaw", "--train-epochs", "1"]  # fmt: skip
    assert main(["pipeline", *flags]) == 0
    stage = yaml.safe_load((out / "1-multi-proxy" / "config.yaml").read_text())
    assert stage["tasks"] == ["colorization", "jigsaw"] and stage["combine"] == "normsgd"
    seg = yaml.safe_load((out / "4-segmentation" / "config.yaml").read_text())
    assert seg["in_channels"] == 3 and seg["init_from"].endswith("1-multi-proxy/last.safetensors")
    assert (out / "report" / "report.html").is_file()
