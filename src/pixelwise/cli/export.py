"""``pixelwise export``: an inference checkpoint as an ONNX graph, checked against PyTorch with onnxruntime."""

from __future__ import annotations

import torch

from pixelwise.engine.checkpoint import inference_scales
from pixelwise.engine.config import ExportConfig
from pixelwise.engine.export import export_onnx, onnx_max_difference
from pixelwise.methods.kinds import build_model_from_checkpoint


def export_checkpoint(config: ExportConfig) -> float | None:
    """Write the ONNX file; returns the largest |onnxruntime - PyTorch| logit difference when checked."""
    if not config.checkpoint:
        raise ValueError("export needs --checkpoint (a run folder or .safetensors file)")
    model, meta = build_model_from_checkpoint(config.checkpoint, expect="segmentation")
    if meta["model"]["kind"] != "segmentation":  # superpixel zoom-out runs SLIC (scikit-image) in its forward
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
