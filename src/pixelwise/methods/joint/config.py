"""``pixelwise joint``'s options: the two-part model, its loss balancing, schedule and Table 5.6's arms."""

from __future__ import annotations

from dataclasses import dataclass

from pixelwise.engine.config import option
from pixelwise.methods.depth.config import MetricDepthConfig

# Table 5.6 (+ the spec's missing ablations): which loss terms each arm trains, see loss.ARM_TERMS.
ARMS = ("two-part", "baseline", "no-seg", "no-depth", "2x-seg", "single-part")


@dataclass
class JointConfig(MetricDepthConfig):
    """The joint depth + segmentation model (``pixelwise joint``, Mostajabi thesis §5.5.2)."""

    output: str = option("runs/joint", "run folder (phase1/ and phase2/ inside it with --phase2-epochs)")
    arch: str = option(
        "zoomout",
        "architecture of both parts: zoom-out (one 3-layer 1x1-conv classifier per task on shared features, "
        "§5.5.2.1) or FCN-32s/16s/8s (one skip head per task)",
        choices=("fcn32s", "fcn16s", "fcn8s", "zoomout"),
    )
    arm: str = option(
        "two-part",
        "Table 5.6's model: two-part (4 losses); baseline (same architecture, losses at the end of part 2 "
        "only); no-seg / no-depth (the baseline without one of them; no-depth trains on labelled images only); "
        "2x-seg (the baseline with the seg loss weighted twice); single-part (one network, two heads)",
        choices=ARMS,
    )
    depth_only: bool = option(
        True,
        "train on the images without labels too (depth loss only, seg heads frozen on them); off: the labelled "
        "images only (the spec's missing ablation (f))",
    )
    detach: bool = option(
        False,
        "part 2 reads part 1's predictions without passing gradients back into part 1 (the thesis is silent)",
    )
    balance_epochs: int = option(
        2,
        "epochs at unit loss weights whose mean losses set w_k = 1 / mean L_k (§5.5.2: 'a couple of epochs'; "
        "0: unit weights throughout)",
        minimum=0,
    )
    rebalance_every: int = option(
        0,
        "re-estimate the loss weights every N epochs after the first estimate (0: estimate once)",
        minimum=0,
    )
    phase2_epochs: int = option(
        0,
        "second phase (§5.5.2: 20 epochs at lr 1e-5): this many epochs on the labelled images only, from the "
        "first phase's last checkpoint; 0 = one phase",
        minimum=0,
    )
    phase2_lr_scale: float = option(
        0.1, "second phase: --lr times this (the thesis: 1e-4 -> 1e-5)", exclusive_minimum=0, maximum=1
    )
