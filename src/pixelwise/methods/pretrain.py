"""The ``pixelwise pretrain`` command's options, shared by its self-supervised methods: colorization (Larsson
Ch. 3), jigsaw, relative motion and several of them on one backbone (Larsson Ch. 4), and the label autoencoder
(Mostajabi et al. 2018 §3.1) and the (shortcut) autoencoder baseline (Larsson §1.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pixelwise.engine.config import RunConfig, data_options, option

if TYPE_CHECKING:
    from torch.utils.data import Dataset


@dataclass
class PretrainConfig(RunConfig):
    """Self-supervised pretraining on images without labels (``pixelwise pretrain``)."""

    method: str = option(
        "colorization",
        "pretext task: colorization (grey-input network, Larsson Ch. 2-3), jigsaw (2x2 puzzles, 24 "
        "permutations), motion (binned relative flow of point pairs, needs --flow-data), multi (the --tasks "
        "on one 3-channel backbone, Larsson Ch. 4; see --combine), label-ae (an autoencoder of the "
        "training label maps alone, Mostajabi 2018 §3.1) or autoencoder (an RGB image autoencoder, with "
        "--shortcuts the shortcut autoencoder, Larsson §1.3)",
        choices=("colorization", "jigsaw", "motion", "multi", "label-ae", "autoencoder"),
    )
    tasks: list[str] = option(
        ["colorization", "jigsaw"],
        "--method multi: the proxy tasks sharing the backbone (colorization, jigsaw, motion); each has its own "
        "head, its gradients are combined by --combine",
    )
    flow_data: str = option(
        "",
        "frame pairs with optical flow for the motion proxy: 'flow-synthetic:N:HxW' (exact flow of synthetic "
        "scenes under a random camera motion), 'flow-camvid:PATH' (Farneback flow between consecutive "
        "frames of CamVid's 15 Hz val clip; labels never read) or 'flow-frames:FOLDER' (any folder of "
        "consecutive frames); frames are resized to --base-size, the last fifth of a clip validates",
    )
    split_weights: bool = option(
        False,
        "--method multi: every backbone layer's output channels are split among the tasks and each task "
        "updates only the weights into its own channels (split-weights, Larsson §4.4)",
    )
    init_from: str | None = option(
        None,
        "jigsaw / motion / multi: start the shared backbone from any pixelwise run's backbone (e.g. one proxy "
        "from another, Larsson Fig. 4.7)",
    )
    jigsaw_grey: bool = option(
        True, "jigsaw on grey tiles (RGB invites the chromatic-aberration shortcut, Larsson §4.7.1)"
    )
    motion_bins: int = option(
        32, "motion: bins of the relative flow magnitude (equiprobable on the training flows)", minimum=2
    )
    output: str = option(
        "runs/pretrain", "run folder: config.yaml, log.jsonl, last/best checkpoints, examples"
    )
    splits: list[str] = option(
        ["train", "val"],
        "splits of --data whose images (never labels) are used for pretraining; validation uses split 'val' "
        "(label-ae reads the 'train' labels only)",
    )
    scale: list[float] = option(
        [1.0, 1.5],
        "random scale jitter range before cropping (>= 1 so crops never need padding)",
        length=2,
        exclusive_minimum=0,
    )
    color_jitter: float = option(
        0.0, "brightness/contrast/saturation jitter (0: keep the colours to predict)", minimum=0
    )
    loss: str = option(
        "hue-chroma",
        "colorization target: hue/chroma histograms (Eq. 2.3), Lab a/b histograms, or L2 regression on ab",
        choices=("hue-chroma", "lab", "l2"),
    )
    samples: int = option(
        128, "sparse hypercolumn points per image per step (Larsson Table 2.1: 64-256)", minimum=1
    )
    window: int = option(7, "R x R window of the target histograms (R = 1: plain log loss)", minimum=1)
    hidden: int = option(1024, "width of the hypercolumn head's hidden layer", minimum=1)
    taps: list[str] = option([], "backbone stages in the hypercolumn (default: all stages)")
    label_ae_width: int = option(
        32,
        "label-ae: bottleneck width naming the autoencoder (§3.1): 32 (all layers 32), 128 (32, 128 x4) or "
        "256 (32, 128 x3, 256)",
        choices=(32, 128, 256),
    )
    label_ae_depth: int = option(
        5, "label-ae: 3x3 conv layers in the encoder and the mirrored decoder (§3.1: 5)", minimum=1
    )
    labels_fraction: float = option(
        1.0,
        "label-ae: fraction of the train label maps it learns from (the seeded subset `train` uses)",
        exclusive_minimum=0,
        maximum=1,
    )
    shortcuts: list[str] = option(
        [],
        "autoencoder: backbone stages whose truncated paths (encoder up to the stage, the shared decoder back) add "
        "a reconstruction loss, e.g. layer1 layer2 layer3 (Larsson §1.3.2: conv2 conv4 fc6); none: a plain "
        "autoencoder",
    )
    shortcut_weight: float = option(
        1.0,
        "autoencoder: λ of ℓ = ℓ_L + λ Σ ℓ_k (Eq. 1.12; the thesis uses 1; 0: a plain autoencoder)",
        minimum=0,
    )
    ae_dropout: float = option(
        0.5,
        "autoencoder: dropout on the code each path decodes (limits the information through it, §1.3.3)",
        minimum=0,
        exclusive_maximum=1,
    )
    label_ae_stride: int | None = option(
        None,
        "label-ae: code stride, 2^(depth-1) (pools between the convs; default) or 2^depth (one more pool); "
        "match it to the backbone layer the regulariser reads",
        minimum=1,
    )


def unlabelled_images(config: Any) -> tuple[list[Dataset], Dataset]:
    """The images of ``config.splits`` with the pretraining augmentation (crop, scale jitter, flips, colour
    jitter), cached in memory, and the val split streamed from disk (full-resolution splits never held in memory).

    Labels are loaded with the images but never read: every self-supervised method (colorization, proxies,
    distillation) learns from these. ``config`` is any run config with the pretraining data options.
    """
    from pixelwise.data import build_dataset, eval_transforms, train_transforms, validation_spec

    size = tuple(config.base_size) if config.base_size else None
    transform = train_transforms(tuple(config.crop), tuple(config.scale), config.hflip, config.color_jitter)
    parts = [
        build_dataset(config.data, split, size=size, transform=transform, **data_options(config))
        for split in config.splits
    ]
    val = build_dataset(validation_spec(config.data, config.val_data), "val", transform=eval_transforms(),
                        cache=False, **data_options(config))  # fmt: skip
    for dataset in parts:
        dataset.preload(progress=False)
    return parts, val
