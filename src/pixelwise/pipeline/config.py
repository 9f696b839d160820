"""``pixelwise pipeline``'s options. Torch-free, so ``pixelwise pipeline --help`` answers without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from pixelwise.engine.config import option
from pixelwise.methods.train_config import ARCHITECTURE_CHOICES


@dataclass
class PipelineConfig:
    data: str = option(
        "synthetic", "labelled data: 'synthetic', 'camvid:PATH', a list file, 'folders:IMAGES:LABELS'"
    )
    val_data: str | None = option(
        None,
        "held-out labelled data for every stage's validation and the final report (default: the 'val' split of "
        "--data; needed for a list file or folder pair, which have none)",
    )
    output: str = option("runs/pipeline", "folder for every stage's run folder and the final report.html")
    labels_fraction: float = option(
        1.0,
        "fraction of the train labels used by tuning, the label autoencoder and segmentation training",
        exclusive_minimum=0,
        maximum=1,
    )
    backbone: str = option("resnet18", "backbone shared by every stage")
    arch: str = option("fcn8s", "segmentation head", choices=ARCHITECTURE_CHOICES)
    head_width: int = option(1000, "zoom-out: hidden units of each classifier layer (§3.5: 1000)", minimum=1)
    pretrain_epochs: int = option(
        10, "colorization pretraining epochs (0 skips pretraining: random init)", minimum=0
    )
    pretrain_tasks: list[str] = option(
        [],
        "several proxy tasks for the pretraining stage (colorization, jigsaw, motion) on one 3-channel backbone "
        "with NormSGD (Larsson Ch. 4); empty: grey colorization alone (Ch. 3). Segmentation then fine-tunes on RGB",
    )
    flow_data: str = option("", "--pretrain-tasks motion: frame pairs with flow (see `pretrain --flow-data`)")
    mixmatch_epochs: int = option(0, "Mix-and-Match tuning epochs (0 skips the stage)", minimum=0)
    label_ae_epochs: int = option(
        0, "label-autoencoder epochs for the label-structure regulariser (0: none)", minimum=0
    )
    train_epochs: int = option(20, "segmentation training epochs", minimum=1)
    batch_size: int = option(8, "images per step in every stage", minimum=1)
    base_size: list[int] | None = option(
        None, "resize images once at load to H W (e.g. 180 240 for CamVid)", length=2, minimum=1
    )
    crop: list[int] = option([96, 128], "training crop H W in every stage", length=2, minimum=1)
    eval_scale: float = option(
        1.0, "inference scale for validation and the final evaluation", exclusive_minimum=0
    )
    amp: bool | None = option(
        None, "bfloat16 autocast in every stage (default: where it is native; see `train --amp`)"
    )
    seed: int = option(0, "random seed of every stage", minimum=0)
    device: str = option("auto", "'auto', 'cpu', 'cuda', ...")
    colorize_examples: int = option(4, "val images colorized for the report", minimum=0)
    ignore_index: int = option(
        255,
        "label value meaning 'no label' in list-file and folder data, for every stage (see `train --ignore-index`)",
        minimum=0,
        maximum=255,
    )
    label_map: str | None = option(
        None,
        "list-file / folder data: YAML or JSON map of the label files' ids to class indices or 255, for every "
        "stage (see `train --label-map`)",
    )
    label_suffix: str = option(
        "", "folders: data: ending removed from label file stems before pairing (see `train --label-suffix`)"
    )
    image_suffix: str = option(
        "", "folders: data: ending removed from image file stems before pairing (see `train --image-suffix`)"
    )
    select_fraction: float = option(
        0.0,
        "segmentation stage: hold out this fraction of the training images to choose best.safetensors on, so the "
        "report's split is never used to choose (see `train --select-fraction`)",
        minimum=0,
        exclusive_maximum=1,
    )
    rerun_changed: bool = option(
        False,
        "a stage whose stored options differ from this command's is moved aside (to STAGE.replaced-N) and rerun, "
        "with every later stage; without it such a pipeline is refused, naming the differences",
    )
