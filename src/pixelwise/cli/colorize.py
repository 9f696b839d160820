"""``pixelwise colorize``: colour images from their lightness, with grey / colorization / truth panels."""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from pixelwise.cli.predict import expand_inputs
from pixelwise.data.color import rgb_to_hcl
from pixelwise.data.validation import load_image
from pixelwise.engine.distributed import resolve_device
from pixelwise.methods.colorization import psnr
from pixelwise.methods.colorization.config import ColorizeConfig
from pixelwise.methods.colorization.histogram_transfer import (
    energy_adjuster,
    global_histograms,
    quantile_match,
)
from pixelwise.methods.kinds import build_model_from_checkpoint
from pixelwise.report.images import save_colorization_panel, save_png, to_uint8_image

GREY_CHROMA = 2 / 255  # an input whose chroma never exceeds this is grey: there is no truth to compare with


def transfer(model: torch.nn.Module, image: torch.Tensor, config: ColorizeConfig) -> torch.Tensor:
    """Colorize a colour image, optionally fitted to its own global histogram (§2.3.4)."""
    if config.histogram_transfer == "energy":
        histograms = global_histograms(image[0], model.config.target, model.config.bins)
        return model.colorize(image, config.infer_scale, adjust=energy_adjuster(histograms))
    colour = model.colorize(image, config.infer_scale)
    if config.histogram_transfer == "quantile":
        colour = quantile_match(colour[0], image[0])[None]
    return colour


@torch.no_grad()
def colorize_images(config: ColorizeConfig, inputs: list[Path]) -> list[Path]:
    """Colorize every image; returns the written colour PNG paths. Prints PSNR vs grey for colour inputs."""
    if not config.checkpoint:
        raise ValueError(
            "colorize needs --checkpoint (a run folder or .safetensors from `pixelwise pretrain`)"
        )
    device = resolve_device(config.device)
    model, meta = build_model_from_checkpoint(config.checkpoint, expect="colorization")
    model.to(device)
    output = Path(config.output)
    written, gains = [], []
    for path in tqdm(expand_inputs(inputs), desc="colorize"):
        image = torch.from_numpy(load_image(path).copy()).permute(2, 0, 1).float().div(255)[None].to(device)
        has_truth = bool(rgb_to_hcl(image)[:, 1].max() > GREY_CHROMA)
        colour = transfer(model, image, config) if has_truth else model.colorize(image, config.infer_scale)
        written.append(save_png(to_uint8_image(colour[0].cpu()), output / f"{path.stem}_color.png"))
        if has_truth:  # a colour input: show and score against the truth
            save_colorization_panel(colour[0], image[0], output / f"{path.stem}_panel.png")
            grey = image.mean(dim=1, keepdim=True).expand_as(image)
            gains.append((float(psnr(colour, image)[0]), float(psnr(grey, image)[0])))
    if gains:
        mean = [sum(v) / len(gains) for v in zip(*gains)]
        print(f"PSNR {mean[0]:.2f} dB vs {mean[1]:.2f} dB for the grey images ({len(gains)} colour inputs)")
    print(f"wrote {len(written)} colorizations to {output}")
    return written
