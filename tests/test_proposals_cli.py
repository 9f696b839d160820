"""``pixelwise proposals train | eval | predict`` end to end on tiny synthetic instances."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.cli.main import main

TINY = ["--pathways", "layer2", "--windows", "5", "--kernels", "3", "--reduce", "8", "--threads", "1",
        "--no-amp", "--base-size", "64", "96"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("proposals") / "run"
    code = main(["proposals", "train", "--data", "synthetic-instances:3", "--val-data", "synthetic-instances:4",
                 "--epochs", "1", "--output", str(out), "--top-k", "50", *TINY])  # fmt: skip
    assert code == 0
    return out


def test_train_writes_a_run_whose_scores_are_proportions(run: Path) -> None:
    assert (run / "best.safetensors").is_file() and (run / "last.safetensors").is_file()
    scores = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    val = [line for line in lines if line.get("kind") == "val"]
    assert val and 0 <= val[-1]["ar"] <= 1 and 0 <= val[-1]["r50"] <= 1, (scores, val)
    assert any((run / "examples").rglob("proposals_*.png"))


def test_eval_writes_scores_and_the_recall_plot(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    assert main(["proposals", "eval", str(run), "--data", "synthetic-instances:4", "--base-size", "64", "96",
                 "--top-k", "50", "--output", str(out)]) == 0  # fmt: skip
    record = json.loads((out / "eval.json").read_text())
    assert record["images"] >= 1 and {"ar", "r50", "r70", "abo", "ar@10"} <= set(record["scores"])
    assert len(record["curves"]["recall"]) == len(record["curves"]["iou_thresholds"])
    assert (out / "recall.png").stat().st_size > 0


def test_predict_draws_overlays_and_lists_proposals(run: Path, tmp_path: Path) -> None:
    image = tmp_path / "street.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "pred"
    assert main(["proposals", "predict", str(run), str(image), "--top-k", "20", "--output", str(out)]) == 0
    listing = json.loads((out / "proposals.json").read_text())[str(image)]
    assert len(listing) <= 20 and all(p["pathway"] == "layer2" for p in listing)
    assert [p["score"] for p in listing] == sorted((p["score"] for p in listing), reverse=True)
    assert (out / "street_proposals.png").is_file()


def test_a_missing_run_and_an_even_window_are_one_line_errors(tmp_path: Path, capsys) -> None:
    assert main(["proposals", "predict", str(tmp_path / "missing"), str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0]
    code = main(["proposals", "train", "--output", str(tmp_path / "r"), "--windows", "4", "--pathways", "layer2",
                 "--kernels", "3", "--epochs", "1", *TINY[6:]])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "odd" in err[-1]


def test_export_writes_an_onnx_graph_that_onnxruntime_agrees_with(run: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip(
        "onnxruntime", reason="ONNX export is an optional extra: pip install 'pixelwise[export]'"
    )
    pytest.importorskip(
        "onnxscript", reason="ONNX export is an optional extra: pip install 'pixelwise[export]'"
    )
    out = tmp_path / "regions.onnx"
    assert main(["proposals", "export", str(run), "--output", str(out), "--size", "64", "96"]) == 0
    difference = float(capsys.readouterr().out.strip().split()[-1])
    assert out.stat().st_size > 0 and difference < 1e-3
