"""``--engine torch | compile | onnx`` and ``--channels-last`` give the same predictions as the plain model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.cli.main import main
from pixelwise.engine.checkpoint import load_checkpoint, save_checkpoint
from pixelwise.engine.runtimes import CompiledOrEager, inference_runtime
from pixelwise.methods.kinds import build_model_from_checkpoint
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


def _train(output: Path, **overrides) -> Path:
    from pixelwise.methods.segmentation import TrainConfig, segmentation_trainer

    values = dict(data="synthetic:8:32x48", output=str(output), epochs=1, batch_size=4, crop=[32, 48])
    values |= dict(scale=[1.0, 1.0], eval_every=1, num_examples=0, seed=0, amp=False, log_every=1)
    segmentation_trainer(TrainConfig(**values, **overrides)).fit()
    return output


def _losses(run: Path) -> list[float]:
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [line["loss"] for line in lines if line.get("kind") == "train"]


def test_channels_last_training_takes_the_same_steps_and_stores_the_usual_layout(tmp_path: Path) -> None:
    plain = _train(tmp_path / "plain")
    nhwc = _train(tmp_path / "nhwc", channels_last=True)
    assert len(_losses(plain)) == 2 and np.allclose(_losses(nhwc), _losses(plain), rtol=1e-3)
    state = load_checkpoint(nhwc / "last.safetensors").model_state
    assert all(tensor.is_contiguous() for tensor in state.values())
    model, _ = build_model_from_checkpoint(nhwc)  # loads into an ordinary (NCHW) model
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 48))["seg"].shape == (1, 6, 32, 48)


def test_compile_trains_through_the_compiled_module_and_saves_the_plain_weights(
    tmp_path: Path, monkeypatch
) -> None:
    compiled: list[torch.nn.Module] = []

    class Counting(torch.nn.Module):  # stands in for torch.compile's module (a real compile takes minutes)
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model, self.calls = model, 0

        def forward(self, *args, **kwargs):
            self.calls += 1
            return self.model(*args, **kwargs)

    def fake_compile(module, **kwargs):
        compiled.append(Counting(module))
        return compiled[-1]

    monkeypatch.setattr(torch, "compile", fake_compile)
    run = _train(tmp_path / "compiled", compile=True)
    assert len(compiled) == 1 and compiled[0].calls == 2  # both training steps ran through it
    state = load_checkpoint(run / "best.safetensors").model_state
    assert not any(key.startswith(("model.", "_orig_mod.")) for key in state)
    assert _losses(run) == pytest.approx(_losses(_train(tmp_path / "eager")), rel=1e-6)
