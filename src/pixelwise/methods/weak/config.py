"""Options of ``pixelwise weak localise`` and ``pixelwise weak points`` (thesis Ch. 4)."""

from __future__ import annotations

from dataclasses import dataclass

from pixelwise.engine.config import option
from pixelwise.methods.train_config import TrainConfig


@dataclass
class WeakLocaliseConfig(TrainConfig):
    """``pixelwise weak localise``: the tag localiser (Mostajabi thesis §4.3.1) on zoom-out features."""

    output: str = option("runs/weak-localise", "run folder: config.yaml, log.jsonl, last/best checkpoints")
    arch: str = option("zoomout", "the localiser reads zoom-out features (§4.3.1)", choices=("zoomout",))


@dataclass
class WeakPointsConfig:
    """``pixelwise weak points``: diverse point labels from a tag localiser (Mostajabi thesis §4.3.2)."""

    checkpoint: str = option("", "tag-localiser checkpoint or run folder (`pixelwise weak localise`)")
    data: str = option("", "the training data whose tags (read off its label maps) are localised")
    split: str = option("train", "split of --data to label")
    base_size: list[int] | None = option(
        None, "resize images at load to H W (as the localiser was trained)", length=2, minimum=1
    )
    points_per_class: int = option(20, "diverse points per tagged class and image (Table 4.3: 20)", minimum=1)
    background_class: int = option(
        -1, "class id of a background class, sampled as the points least like every foreground point "
        "(Eq. 4.3.5; VOC: 0); -1: none", minimum=-1, maximum=254
    )  # fmt: skip
    strategy: str = option(
        "diverse",
        "how points are chosen from the score maps: 'diverse' (§4.3.2, Eq. 4.3.4), 'top-k' (the k best per "
        "class) or 'dense' (every location labelled with its best tagged class): Table 4.3's comparison",
        choices=("diverse", "top-k", "dense"),
    )
    crops: int = option(
        0,
        "0: label whole images; N: N seeded random --crop-size crops per image, each its own weakly labelled "
        "image (tags = the classes inside the crop): for data whose frames all hold most classes (CamVid)",
        minimum=0,
    )
    crop_size: list[int] = option([90, 120], "H W of the crops of --crops", length=2, minimum=1)
    seed: int = option(0, "seed of the crop positions", minimum=0)
    output: str = option("runs/weak-points", "folder for images/, labels/, train.txt and classes.txt")
    device: str = option("auto", "'auto', 'cpu', 'cuda', ...")
