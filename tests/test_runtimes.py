"""``--engine torch | compile | onnx`` and ``--channels-last`` give the same predictions as the plain model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.cli.main import main
from pixelwise.engine.checkpoint import save_checkpoint
from pixelwise.engine.runtimes import CompiledOrEager, inference_runtime
from pixelwise.models import create_model

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnxscript"))


def _model(in_channels: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("fcn8s", "resnet18", num_classes=4, in_channels=in_channels, head_width=16).eval()
    for param in model.head.parameters():  # score layers start at zero: make the comparison non-trivial
        torch.nn.init.normal_(param, std=0.05)
    return model


def test_channels_last_runtime_equals_the_model() -> None:
    model = _model()
    images = torch.rand(2, 3, 45, 61)
    with torch.no_grad():
        expected = model(images)["seg"]
        got = inference_runtime(model, "torch", channels_last=True)(images)["seg"]
    assert torch.allclose(got, expected, atol=1e-4)


def test_compile_that_fails_falls_back_to_eager_with_one_warning(monkeypatch) -> None:
    def broken_compile(module, **kwargs):
        def compiled(*args):
            raise RuntimeError("no C++ compiler found\nmore detail")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    model = _model()
    runtime = inference_runtime(model, "compile")
    assert isinstance(runtime, CompiledOrEager)
    images = torch.rand(1, 3, 32, 48)
    with pytest.warns(
        UserWarning, match="torch.compile failed \\(no C\\+\\+ compiler found\\); running eager"
    ):
        first = runtime(images)["seg"]
    second = runtime(images)["seg"]  # no second warning: it stays eager
    with torch.no_grad():
        assert torch.equal(first, model(images)["seg"]) and torch.equal(second, first)


def test_unknown_engines_and_onnx_superpixel_models_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown --engine 'tensorrt'"):
        inference_runtime(_model(), "tensorrt")
    with pytest.raises(ValueError, match="cannot be expressed in ONNX"):
        inference_runtime(_model(), "onnx", {"model": {"kind": "zoomout-superpixel"}})


@pytest.mark.slow
@pytest.mark.skipif(
    not HAS_ONNX, reason="--engine onnx is an optional extra: pip install 'pixelwise[export]'"
)
def test_predict_with_onnx_writes_the_same_labels_as_pytorch(tmp_path: Path) -> None:
    model = _model()
    meta = {"model": model.config.to_dict(), "dataset": {"name": "t", "class_names": list("abcd")}}
    meta["dataset"]["palette"] = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]
    save_checkpoint(tmp_path / "best.safetensors", model.state_dict(), meta)
    rng = np.random.default_rng(0)
    image = tmp_path / "street.png"
    Image.fromarray(rng.integers(0, 255, (53, 75, 3), dtype=np.uint8)).save(image)
    labels = {}
    for engine in ("torch", "onnx"):
        out = tmp_path / engine
        flags = ["--checkpoint", str(tmp_path), "--output", str(out), "--device", "cpu", "--engine", engine]
        assert main(["predict", *flags, "--flip", str(image)]) == 0
        labels[engine] = np.asarray(Image.open(out / "street_ids.png"))
    agree = (labels["torch"] == labels["onnx"]).mean()
    assert agree > 0.999, agree  # equal up to ties at float rounding
