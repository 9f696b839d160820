"""How ``eval`` and ``predict`` run a network: PyTorch eager, ``torch.compile`` or an exported ONNX graph.

Each runtime is an ``nn.Module`` with the segmentation model's contract (images in [0, 1] -> ``{"seg": logits}``),
so multi-scale, flip and sliding-window inference (``engine/inference.py``) work unchanged on top of it.

- ``torch``: the model itself (optionally with channels-last tensors and weights, which oneDNN's convolutions
  prefer on many CPUs; measured in ``benchmarks/inference_speed.py``, not assumed).
- ``compile``: ``torch.compile`` (inductor). The first call compiles; if compiling fails (no C++ compiler, an
  unsupported op) the runtime says so once and falls back to eager, so a flag never costs a user their result.
- ``onnx``: the model exported once (dynamic batch and size) to a temporary file and run by onnxruntime on the
  CPU; needs ``pip install 'pixelwise[export]'``.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

ENGINES = ("torch", "compile", "onnx")


class ChannelsLast(nn.Module):
    """The model with its weights and every input in channels-last memory order."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model(images.contiguous(memory_format=torch.channels_last))


class CompiledOrEager(nn.Module):
    """``torch.compile(model)``, falling back to ``model`` (with one warning) when compiling or the first call
    fails."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.compiled = torch.compile(model, dynamic=True)
        self.failed = False

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.failed:
            try:
                return self.compiled(images)
            except (
                Exception
            ) as err:  # compile errors come in many types (BackendCompilerFailed, OSError, ...)
                self.failed = True
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                warnings.warn(f"torch.compile failed ({first[:200]}); running eager instead", stacklevel=2)
        return self.model(images)


def compiled_for_training(model: nn.Module) -> nn.Module:
    """``torch.compile(model)`` for the training loop (``--compile``). A frame that fails to compile runs eager
    (dynamo's ``suppress_errors``, which logs why), so a missing compiler slows a run instead of stopping it.
    The compiled module forwards attribute access to ``model``, so tasks that read ``net.module`` or a part of
    the model keep working; checkpoints are written from the uncompiled model."""
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True
    return torch.compile(model, dynamic=True)


class OnnxSegmenter(nn.Module):
    """An exported ONNX graph of ``model`` run by onnxruntime, returning ``{"seg": logits}`` like the model."""

    def __init__(self, model: nn.Module, in_channels: int, threads: int | None = None) -> None:
        super().__init__()
        from pixelwise.engine.export import export_onnx, require

        require("onnxruntime")
        import onnxruntime

        self.folder = tempfile.TemporaryDirectory(prefix="pixelwise-onnx-")
        path = Path(self.folder.name) / "model.onnx"
        # The exporter's progress lines and warnings are not the user's concern here (`pixelwise export` shows them).
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            export_onnx(model.cpu().eval(), path, in_channels, (64, 96), dynamic=True)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.device.type != "cpu":
            raise ValueError("--engine onnx runs on the CPU; use --device cpu (or --engine torch on a GPU)")
        (logits,) = self.session.run(None, {"images": images.float().contiguous().numpy()})
        return {"seg": torch.from_numpy(logits)}


def inference_runtime(
    model: nn.Module, engine: str = "torch", meta: dict | None = None, channels_last: bool = False
) -> nn.Module:
    """``model`` (in eval mode, on its device) wrapped to run with ``engine``; ``meta``: the checkpoint's
    metadata (its model kind and input channels). See the module docstring."""
    if engine not in ENGINES:
        raise ValueError(f"unknown --engine {engine!r}; use one of {', '.join(ENGINES)}")
    described = (meta or {}).get("model", {})
    in_channels = int(described.get("in_channels", 3))
    model = model.eval()
    if engine == "onnx":
        if described.get("kind", "segmentation") != "segmentation":  # superpixel zoom-out runs SLIC inside
            raise ValueError(
                f"--engine onnx: a {described.get('kind')} model cannot be expressed in ONNX; use --engine torch"
            )
        if next(model.parameters()).device.type != "cpu":
            raise ValueError("--engine onnx runs on the CPU; use --device cpu (or --engine torch on a GPU)")
        return OnnxSegmenter(model, in_channels)
    if channels_last:
        model = ChannelsLast(model)
    return CompiledOrEager(model) if engine == "compile" else model
