"""``pixelwise train``'s options (supervised dense labelling, Long thesis Ch. 3, and the options every task built on
it shares). Torch-free, so ``pixelwise train --help`` answers without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from pixelwise.engine.config import LabelledRunConfig, option

# The architectures TrainConfig offers (pixelwise.models.ARCHITECTURES; a test keeps them equal).
ARCHITECTURE_CHOICES = ("fcn32s", "fcn16s", "fcn8s", "zoomout")


@dataclass
class TrainConfig(LabelledRunConfig):
    """Supervised dense labelling (``pixelwise train``)."""

    arch: str = option(
        "fcn8s",
        "segmentation architecture: FCN-32s/16s/8s (Long) or zoom-out (every stage + the scene on a 1/4 grid, a "
        "1x1-conv classifier; Mostajabi thesis §3.5)",
        choices=ARCHITECTURE_CHOICES,
    )
    head_width: int = option(
        1000,
        "zoom-out: hidden units of each classifier layer (§3.5: 1000; 256 is about 4x cheaper on a CPU)",
        minimum=1,
    )
    in_channels: int = option(
        3, "input channels: 3 for RGB, 1 for grayscale (lightness) input", choices=(1, 3)
    )
    class_weights: str = option(
        "none",
        "class weighting of the loss, sum_i w_{y_i} CE_i / N over the N labelled pixels (Mostajabi §3.2)",
        choices=("none", "median-frequency", "inverse-frequency"),
    )
    loss_sampling: float = option(
        1.0,
        "keep each 32x32 final-layer cell's loss with this probability (Long §3.3.4; 1 = off); Long also raises "
        "the batch size by 1/p",
        exclusive_minimum=0,
        maximum=1,
    )
    init_from: str | None = option(
        None,
        "initialise from a checkpoint: a coarser FCN (staged training, lr x --init-lr-scale) or a pretrained "
        "run, e.g. colorization (its backbone only, new head; grey models: --in-channels 1)",
    )
    init_lr_scale: float = option(
        0.01, "with --init-from of a coarser FCN: multiply --lr by this (Long: lr / 100)", exclusive_minimum=0
    )
    regularizer: str = option(
        "none",
        "training-only auxiliary branch: 'label-ae' predicts the labels through a label autoencoder's decoder "
        "(Mostajabi 2018 §3.3); it is dropped from best.safetensors (no test-time cost)",
        choices=("none", "label-ae"),
    )
    label_ae: str | None = option(
        None,
        "with --regularizer label-ae: label-autoencoder checkpoint or run (`pixelwise pretrain --method label-ae`)",
    )
    aux_weight: float = option(
        0.5,
        "weight lambda of the auxiliary loss: L = L_seg + lambda L_aux (Mostajabi §4.2: 0.5 for CE)",
        minimum=0,
    )
    label_ae_mode: str = option(
        "decoder",
        "decoder: predict the code and decode it (Fig. 1); encoder: regress the frozen encoder's conv1 + conv3 "
        "activations of the ground truth from the network's hypercolumn with MSE (Fig. 4)",
        choices=("decoder", "encoder"),
    )
    label_ae_decoder: str = option(
        "frozen",
        "decoder mode: frozen (§3.3), unfrozen (trained too) or random (random init, trained; Table 2's control, "
        "needs no --label-ae)",
        choices=("frozen", "unfrozen", "random"),
    )
    aux_loss: str = option(
        "ce",
        "decoder mode: cross-entropy on the decoder's scores, or MSE between its softmax and the one-hot labels "
        "(the paper's dagger runs); the encoder mode always regresses with MSE",
        choices=("ce", "mse"),
    )
    fusion: str = option(
        "none",
        "a second input modality (Long §3.4, Table 3.5): early = one network on RGB + the --extra-input "
        "channels; late = one network per modality, class scores summed at the last layer, trained end to end",
        choices=("none", "early", "late"),
    )
    extra_input: str | None = option(
        None,
        "with --fusion: 'depth' (the data's own depth target: synthetic scenes, rgbd: lists) or a FOLDER of "
        "16-bit millimetre depth PNGs named by image stem; fed as log depth (data/rgbd.py depth_channel)",
    )
    multitask: str = option(
        "none",
        "a second head on the same backbone (Long §3.4's multi-task FCN): 'depth' adds a log-depth head trained "
        "with L1 in metres (needs data with depth)",
        choices=("none", "depth"),
    )
    multitask_weight: float = option(1.0, "with --multitask: L = L_seg + w * L_depth", minimum=0)
    aux_layer: str = option(
        "",
        "backbone stage the branch reads (decoder mode; default: the deepest stage at the code's stride), or "
        "comma-separated stages of the hypercolumn (encoder mode; default: the head's taps)",
    )
