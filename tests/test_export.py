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
