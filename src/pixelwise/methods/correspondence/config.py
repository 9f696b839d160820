"""Options of ``pixelwise correspond`` (Long thesis Ch. 2)."""

from __future__ import annotations

from dataclasses import dataclass

from pixelwise.engine.config import option


@dataclass
class AlignConfig:
    """``pixelwise correspond align SOURCE TARGET``: conv flow between two images (§2.2)."""

    init_from: str | None = option(
        None,
        "run folder or checkpoint whose frozen backbone gives the features (default: random, the control)",
    )
    backbone: str = option("resnet18", "backbone when --init-from is not given")
    stage: str = option(
        "layer2", "backbone stage whose cells are matched (Long: conv4 of AlexNet ~ mid stages)"
    )
    beta: float = option(0.1, "weight of the quadratic smoothness on the cell flow (Eq. 2.1)", minimum=0)
    radius: int | None = option(None, "search window in cells (default: the whole grid)", minimum=0)
    iterations: int = option(30, "belief-propagation iterations", minimum=1)
    size: list[int] | None = option(None, "resize both images to H W first", length=2, minimum=1)
    output: str = option(
        "align", "folder for panel.png (source | target | target warped | |flow|) and flow.json"
    )
