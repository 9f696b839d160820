"""ONNX export: onnxruntime must reproduce PyTorch's logits, at any input size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pixelwise.cli.main import main
from pixelwise.engine.checkpoint import save_checkpoint
from pixelwise.models import create_model

pytest.importorskip("onnxruntime", reason="ONNX export is an optional extra: pip install 'pixelwise[export]'")
pytest.importorskip("onnxscript", reason="ONNX export is an optional extra: pip install 'pixelwise[export]'")


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["fcn8s", "zoomout"])
def test_exported_grey_model_matches_pytorch_at_an_odd_size(tmp_path: Path, capsys, arch: str) -> None:
    torch.manual_seed(0)
    model = create_model(arch, "resnet18", num_classes=4, in_channels=1, head_width=32).eval()
    for param in model.head.parameters():  # score layers start at zero: make the check non-trivial
        torch.nn.init.normal_(param, std=0.05)
    meta = {"model": model.config.to_dict(), "dataset": {"name": "t", "class_names": list("abcd")}}
    save_checkpoint(tmp_path / "best.safetensors", model.state_dict(), meta)
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(tmp_path), "--output", str(out), "--size", "64", "96"]) == 0
    assert out.is_file()
    reported = capsys.readouterr().out
    difference = float(reported.rsplit("difference|", 1)[1].split()[0])
    assert difference < 1e-4, reported  # checked on a 71x91 image, not the 64x96 example used for tracing


@pytest.mark.slow
def test_export_runs_the_network_at_the_training_runs_eval_scale(tmp_path: Path, capsys) -> None:
    """A model validated at --eval-scale 0.5 is exported to run at 0.5 (what eval/predict score), logits at
    the input size, and onnxruntime agrees with the PyTorch model run that way."""
    import onnxruntime

    from pixelwise.engine.inference import predict_probabilities

    torch.manual_seed(0)
    model = create_model("fcn8s", "resnet18", num_classes=4, in_channels=3, head_width=32).eval()
    for param in model.head.parameters():
        torch.nn.init.normal_(param, std=0.05)
    meta = {
        "model": model.config.to_dict(),
        "dataset": {"name": "t", "class_names": list("abcd")},
        "config": {"eval_scale": 0.5},
    }
    save_checkpoint(tmp_path / "best.safetensors", model.state_dict(), meta)
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(tmp_path), "--output", str(out), "--size", "96", "128"]) == 0
    reported = capsys.readouterr().out
    assert "scale 0.5" in reported and "--eval-scale" in reported
    assert float(reported.rsplit("difference|", 1)[1].split()[0]) < 1e-4
    images = torch.rand(1, 3, 96, 128)
    (logits,) = onnxruntime.InferenceSession(str(out)).run(["logits"], {"images": images.numpy()})
    assert logits.shape == (1, 4, 96, 128)
    at_half = predict_probabilities(model, images, scales=[0.5]).argmax(1)
    at_full = predict_probabilities(model, images, scales=[1.0]).argmax(1)
    agree_half = (torch.from_numpy(logits).argmax(1) == at_half).float().mean()
    agree_full = (torch.from_numpy(logits).argmax(1) == at_full).float().mean()
    assert agree_half > 0.97 and agree_half > agree_full, (agree_half, agree_full)
