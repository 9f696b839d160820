"""Options of ``pixelwise zoomout`` (superpixel zoom-out, Mostajabi thesis §3.3-3.4)."""

from __future__ import annotations

from dataclasses import dataclass

from pixelwise.engine.config import option
from pixelwise.methods.train_config import TrainConfig


@dataclass
class ZoomOutConfig(TrainConfig):
    """Superpixel zoom-out (``pixelwise zoomout``, Mostajabi thesis §3.3-3.4): an MLP on fixed zoom-out features."""

    output: str = option(
        "runs/zoomout", "run folder: config.yaml, log.jsonl, last/best checkpoints, examples"
    )
    freeze: str = option(
        "backbone", "backbone stages kept fixed; the thesis never fine-tunes them (§3.4.1.3), and only 'backbone' "
        "lets the descriptors be computed once"
    )  # fmt: skip
    epochs: int = option(20, "epochs over the training superpixels", minimum=1)
    batch_size: int = option(256, "superpixels per optimiser step per process", minimum=1)
    lr: float = option(1e-3, "base learning rate of the classifier", exclusive_minimum=0)
    weight_decay: float = option(1e-3, "weight decay (§3.4.2: 0.001)", minimum=0)
    superpixels: int = option(500, "SLIC superpixels per image (§3.4.1: ~500)", minimum=1)
    compactness: float = option(15.0, "SLIC compactness m (§3.4.1: 15)", exclusive_minimum=0)
    subscene_radius: int = option(
        3, "graph radius of the sub-scene box around a superpixel (§3.4.1.4: 3)", minimum=0
    )
    mirror_max: bool = option(True, "elementwise max with the mirrored image's descriptor (§3.4.1.4)")
    hidden: int = option(
        1024, "units of each of the classifier's two hidden layers (§3.4.3: 1024)", minimum=1
    )
    dropout: float = option(0.5, "dropout after each hidden layer", minimum=0, exclusive_maximum=1)
