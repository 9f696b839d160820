"""``pixelwise export``: an inference checkpoint as an ONNX graph, checked against PyTorch with onnxruntime."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pixelwise.engine.checkpoint import inference_scales
from pixelwise.engine.config import ExportConfig
from pixelwise.engine.export import export_module, export_onnx, onnx_max_difference, onnx_run
from pixelwise.engine.inference import rescale
from pixelwise.methods.kinds import build_model_from_checkpoint


def export_checkpoint(config: ExportConfig) -> float | None:
    """Write the ONNX file; returns the largest |onnxruntime - PyTorch| logit difference when checked."""
    if not config.checkpoint:
        raise ValueError("export needs --checkpoint (a run folder or .safetensors file)")
    model, meta = build_model_from_checkpoint(config.checkpoint, expect=("segmentation", "depth"))
    if meta["model"]["kind"] == "depth-seg":  # the joint model as-is: RGB in, logits and depth out
        return export_outputs(model, meta, config, {"logits": "seg", "depth": "depth"})
    if meta["model"]["kind"] == "depth":
        if meta["model"].get("depth_input", "rgb") != "rgb":
            raise ValueError(
                f"{config.checkpoint}: only --input rgb depth models export (the others read labels)"
            )
        return export_outputs(model, meta, config, {"depth": "depth"})
    # superpixel zoom-out runs SLIC (scikit-image) in its forward
    if meta["model"]["kind"] == "zoomout-superpixel":
        raise ValueError(
            f"{config.checkpoint}: superpixel zoom-out cannot be expressed in ONNX (SLIC runs inside the model); "
            "export an end-to-end `--arch zoomout` model instead"
        )
    in_channels = meta["model"].get("in_channels", 3)
    [scale], source = inference_scales([config.scale] if config.scale else [], meta)
    path = export_onnx(model, config.output, in_channels, tuple(config.size), config.dynamic, scale)
    print(f"wrote {path} (input 'images' [N, {in_channels}, H, W] in [0, 1], output 'logits')")
    print(f"the network runs at scale {scale:g} of the input ({source.replace('--scales', '--scale')})")
    if not config.check:
        return None
    height, width = config.size
    # An odd size (when dynamic) also checks the stride padding and the crop back to the input size.
    size = (height + 7, width - 5) if config.dynamic else (height, width)
    difference = onnx_max_difference(path, model, torch.rand(1, in_channels, *size), scale)
    print(f"onnxruntime vs PyTorch on a {size[0]}x{size[1]} image: max |logit difference| {difference:.2e}")
    return difference


class NamedOutputs(torch.nn.Module):
    """A model whose forward returns a dict, as a tuple of the chosen outputs (ONNX graphs return tuples), run at
    ``scale`` of its input with every output resized back to the input size (as ``ScaledLogits`` does)."""

    def __init__(self, model: torch.nn.Module, keys: list[str], scale: float = 1.0) -> None:
        super().__init__()
        self.model, self.keys, self.scale = model, keys, scale

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.scale == 1:
            outputs = self.model(images)
            return tuple(outputs[key] for key in self.keys)
        outputs = self.model(rescale(images, self.scale))
        size = images.shape[-2:]
        return tuple(
            F.interpolate(outputs[k], size=size, mode="bilinear", align_corners=False) for k in self.keys
        )


def export_outputs(
    model: torch.nn.Module, meta: dict, config: ExportConfig, names: dict[str, str]
) -> float | None:
    """Write an RGB model with the outputs ``names`` (ONNX name -> the model's output key; depth in metres) and
    check every output against PyTorch."""
    shapes = None
    if config.dynamic:
        dim = torch.export.Dim
        shapes = {"images": {0: dim("batch", max=1024), 2: dim.DYNAMIC, 3: dim.DYNAMIC}}
    [scale], source = inference_scales([config.scale] if config.scale else [], meta)
    module = NamedOutputs(model, list(names.values()), scale).eval()
    path = export_module(module, config.output, torch.rand(1, 3, *config.size), list(names), shapes)
    shown = " and ".join(f"'{name}'" for name in names)
    print(f"wrote {path} (input 'images' [N, 3, H, W] in [0, 1], outputs {shown}; depth in metres)")
    print(f"the network runs at scale {scale:g} of the input ({source.replace('--scales', '--scale')})")
    if not config.check:
        return None
    images = torch.rand(1, 3, *config.size)
    with torch.no_grad():
        expected = module(images)
    difference = max(float((a - b).abs().max()) for a, b in zip(onnx_run(path, images), expected))
    print(f"onnxruntime vs PyTorch: max |difference| {difference:.2e} ({', '.join(names)})")
    return difference
