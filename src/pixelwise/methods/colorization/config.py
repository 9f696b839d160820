"""Options of ``pixelwise colorize`` (colour images from their lightness with a pretrained colorizer)."""

from __future__ import annotations

from dataclasses import dataclass

from pixelwise.engine.config import option


@dataclass
class ColorizeConfig:
    checkpoint: str = option("", "colorization checkpoint file or run folder (from `pixelwise pretrain`)")
    output: str = option(
        "colorized",
        "folder for NAME_color.png and, for colour inputs, NAME_panel.png (grey | colorization | original)",
    )
    infer_scale: float = option(
        1.0,
        "run the network at this fraction of the image size (colour is upsampled, lightness kept)",
        exclusive_minimum=0,
    )
    histogram_transfer: str = option(
        "none",
        "adapt colour inputs to their own global colour histogram (Larsson §2.3.4): quantile matching (Q) "
        "or energy minimisation over per-bin biases (E, Eq. 2.6)",
        choices=("none", "quantile", "energy"),
    )
    device: str = option("auto", "'auto', 'cpu', 'cuda', ...")
