"""ONNX export of inference models, checked against PyTorch with onnxruntime.

The exported graph takes ``images`` [N, C, H, W] in [0, 1] (the model normalises and pads itself, so any size
works when exported with dynamic shapes) and returns ``logits`` [N, classes, H, W]. It runs the network at the
inference scale (by default the one the training run validated at, as ``eval`` and ``predict`` do) and
upsamples the logits back to the input size, so a deployed model sees what the reported numbers saw. onnx, onnxscript and
onnxruntime are optional (``pip install pixelwise[export]``); nothing else in the package imports them.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.engine.inference import rescale


class ScaledLogits(nn.Module):
    """A ``{"seg": logits}`` model run at ``scale`` of its input, logits back at the input size, one output."""

    def __init__(self, model: nn.Module, scale: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.scale = scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.scale == 1:
            return self.model(images)["seg"]
        logits = self.model(rescale(images, self.scale))["seg"]
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def require(module: str) -> None:
    """A one-line error naming the extra to install when the optional ``module`` is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise RuntimeError(f"ONNX export needs the '{module}' package: pip install 'pixelwise[export]'")


def export_onnx(
    model: nn.Module,
    path: str | Path,
    in_channels: int,
    size: tuple[int, int],
    dynamic: bool = True,
    scale: float = 1.0,
) -> Path:
    """Write ``model`` (a segmentation model in eval mode, run at ``scale``) to ``path``; ``size`` is the example
    input size."""
    shapes = None
    if dynamic:
        dim = torch.export.Dim
        shapes = {"images": {0: dim("batch", max=1024), 2: dim.DYNAMIC, 3: dim.DYNAMIC}}
    example = torch.rand(1, in_channels, *size)
    return export_module(ScaledLogits(model, scale), path, example, ["logits"], shapes)


def export_module(
    module: nn.Module,
    path: str | Path,
    example: torch.Tensor,
    output_names: list[str],
    dynamic_shapes: dict | None = None,
) -> Path:
    """Write any inference ``module`` taking ``images`` to ``path`` as ONNX (dynamo exporter), outputs named
    ``output_names`` in the order it returns them; fixed input size unless ``dynamic_shapes`` says otherwise."""
    require("onnxscript")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    program = torch.onnx.export(
        module.eval(),
        (example,),
        input_names=["images"],
        output_names=output_names,
        dynamic_shapes=dynamic_shapes,
        dynamo=True,
    )
    program.save(str(path))
    return path


def onnx_run(path: str | Path, images: torch.Tensor) -> list[torch.Tensor]:
    """Every output of the ONNX graph at ``path`` on ``images``, by onnxruntime on the CPU."""
    require("onnxruntime")
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [torch.from_numpy(out) for out in session.run(None, {"images": images.numpy()})]


def onnx_max_difference(
    path: str | Path, model: nn.Module, images: torch.Tensor, scale: float = 1.0
) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's logits on ``images``."""
    (onnx_logits,) = onnx_run(path, images)
    with torch.no_grad():
        torch_logits = ScaledLogits(model, scale).eval()(images)
    return float((onnx_logits - torch_logits).abs().max())
