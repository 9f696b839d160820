"""Options of ``pixelwise tune`` (Mix-and-Match, Zhan et al. 2018)."""

from __future__ import annotations

from dataclasses import dataclass

from pixelwise.engine.config import LabelledRunConfig, option


@dataclass
class TuneConfig(LabelledRunConfig):
    """Mix-and-Match tuning (Zhan et al. 2018) between pretraining and fine-tuning (``pixelwise tune``).

    Optimiser defaults follow the paper's M&M stage: SGD, lr 0.01 dropped to 0.001 at 75% (iteration 6k of 8k),
    momentum 0.9, weight decay 5e-4; batches of 16 images x 10 patches form one graph of ~160 nodes.
    """

    method: str = option(
        "mixmatch",
        "tuning method: mixmatch (patches of the labelled target set, a class-wise connected graph, triplet loss)",
        choices=("mixmatch",),
    )
    output: str = option("runs/tune", "run folder: config.yaml, log.jsonl, last/best checkpoints, examples")
    init_from: str | None = option(
        None,
        "checkpoint or run folder whose backbone starts the tuning (e.g. colorization pretraining, "
        "`pixelwise pretrain`); default: random init",
    )
    in_channels: int | None = option(
        None,
        "input channels (default: the --init-from checkpoint's, 1 for colorization; else 3)",
        choices=(1, 3),
    )
    feature_layer: str = option(
        "",
        "backbone stage whose output, flattened and L2-normalised, is a patch's feature (default: pool5 for VGG, "
        "the last stage, layer4, for ResNet)",
    )
    batch_size: int = option(
        16, "images per graph B per process (Zhan §4: 16); nodes = B x --patches-per-image", minimum=1
    )
    patches_per_image: int = option(10, "patches K sampled per image (Zhan §4: 10)", minimum=1)
    patch_sides: list[int] = option(
        [24, 96],
        "min max side in pixels of the square patches, drawn uniformly (authors' code: 64-256 on 512 crops, "
        "i.e. 1/8 to 1/2 of the crop)",
        length=2,
        minimum=1,
    )
    patch_size: int = option(
        64, "side the patches are resized to before the backbone (Zhan §4: 128 on 512 crops)", minimum=1
    )
    margin: float = option(
        2.1,
        "triplet margin alpha of Eq. 1 (Zhan §4: 2.1; D is in [0, 2] so the hinge never switches off)",
        minimum=0,
    )
    sampler: str = option(
        "graph",
        "triplets from the class-wise connected graph (one per node) or 'random' triplets: disjoint same-class "
        "pairs with a random negative (Table 1's ablation)",
        choices=("graph", "random"),
    )
    max_overlap: float = option(
        0.6,
        "reject a patch candidate when this fraction of its area is already covered by kept patches",
        minimum=0,
        maximum=1,
    )
    oversample: int = option(
        5, "candidates drawn per wanted patch before overlap rejection (then refilled)", minimum=1
    )
    background_class: int = option(
        -1,
        "class id of a background class, sampled at --background-share of the patches (VOC: 0); -1: none",
        minimum=-1,
        maximum=254,
    )
    background_share: float = option(
        0.1, "share of patches centred on --background-class (if any)", minimum=0, maximum=1
    )
    color_jitter: float = option(0.0, "brightness/contrast/saturation jitter (0: off)", minimum=0)
    optimizer: str = option("sgd", "optimiser", choices=("sgd", "adamw"))
    lr: float = option(0.01, "base learning rate (Zhan §4: 0.01)", exclusive_minimum=0)
    weight_decay: float = option(5e-4, "weight decay (not applied to biases and norm layers)", minimum=0)
    schedule: str = option("step", "learning-rate schedule", choices=("poly", "step", "constant"))
    step_epochs: list[int] = option(
        [],
        "step schedule: epochs at which the lr is divided by 10 (default: at 75%% of --epochs, Zhan §4)",
        minimum=1,
    )

    def __post_init__(self) -> None:
        if self.schedule == "step" and not self.step_epochs:  # Zhan §4: lr / 10 at iteration 6000 of 8000
            self.step_epochs = [max(1, round(0.75 * self.epochs))]


@dataclass
class DiagnoseConfig:
    checkpoint: list[str] = option(
        [],
        "checkpoints or run folders to score: an M&M run (`pixelwise tune`), colorization, segmentation, ...",
    )
    before: bool = option(
        True,
        "also score what each M&M checkpoint started from (its --init-from, or a random init): before/after",
    )
    data: str = option("", "labelled data: 'synthetic', 'camvid:PATH', a list file, 'folders:IMAGES:LABELS'")
    split: str = option("val", "split whose patches are scored")
    base_size: list[int] | None = option(
        None,
        "resize images at load to H W (default: the M&M run's --base-size, else as stored)",
        length=2,
        minimum=1,
    )
    patches_per_image: int | None = option(
        None, "patches per image (default: the M&M run's, else 10)", minimum=1
    )
    patch_sides: list[int] | None = option(
        None, "min max patch side in pixels (default: the M&M run's)", length=2, minimum=1
    )
    patch_size: int | None = option(None, "side patches are resized to (default: the M&M run's)", minimum=1)
    images: int | None = option(None, "score only the first N images of the split", minimum=1)
    seed: int = option(
        0, "seed of the patch draw (every checkpoint is scored on the same patches)", minimum=0
    )
    output: str = option("diagnose.json", "JSON file written with the scores of every checkpoint")
    device: str = option("auto", "'auto', 'cpu', 'cuda', ...")
