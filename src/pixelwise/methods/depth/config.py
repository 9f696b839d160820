"""``pixelwise depth``'s options (torch-free, so ``pixelwise depth --help`` answers without importing torch)."""

from __future__ import annotations

from dataclasses import dataclass

from pixelwise.engine.config import option
from pixelwise.methods.train_config import TrainConfig

DEPTH_INPUTS = ("rgb", "seg", "seg+rgb", "pred-seg", "pred-seg+rgb")


@dataclass
class MetricDepthConfig(TrainConfig):
    """Options of every run scored in metres (``depth``, ``joint``): no scale jitter by default, the AbsRel divisor."""

    scale: list[float] = option(
        [1.0, 1.0],
        "random scale jitter range before cropping; off by default: zooming an image changes its apparent "
        "distance, which its metric depth targets do not follow",
        length=2,
        exclusive_minimum=0,
    )
    relative_to: str = option(
        "ground-truth",
        "divisor of AbsRel and SqRel: the ground truth (standard) or the prediction (the thesis' convention)",
        choices=("ground-truth", "prediction"),
    )


@dataclass
class DepthConfig(MetricDepthConfig):
    """Monocular depth (``pixelwise depth``, Mostajabi thesis §5.5): a one-channel model read as log depth."""

    output: str = option("runs/depth", "run folder: config.yaml, log.jsonl, last/best checkpoints")
    input: str = option(
        "rgb",
        "what the network reads (Mostajabi §5.5.1, Table 5.5): RGB; the ground-truth labels as one binary mask "
        "per class (void all-zero), alone or after RGB; or a segmentation run's predicted class probabilities "
        "(--seg-from), alone or after RGB",
        choices=DEPTH_INPUTS,
    )
    seg_from: str | None = option(
        None,
        "with --input pred-seg / pred-seg+rgb: the segmentation checkpoint or run folder that predicts them",
    )
