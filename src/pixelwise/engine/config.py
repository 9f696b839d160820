"""Typed run configurations. Each field's ``help`` is the CLI flag's help text (the CLI is generated from these).

Precedence: dataclass default < ``--config FILE.yaml`` < command-line flag. The resolved config is saved as
``config.yaml`` in the run folder and inside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# pixelwise.models.ARCHITECTURES, spelled out so that `--help` needs no torch import (a test keeps them equal).
ARCHITECTURE_CHOICES = ("fcn32s", "fcn16s", "fcn8s", "zoomout")


_BOUNDS = ("minimum", "exclusive_minimum", "maximum", "exclusive_maximum")


def option(
    default: Any,
    help: str,
    *,
    minimum: float | None = None,
    exclusive_minimum: float | None = None,
    maximum: float | None = None,
    exclusive_maximum: float | None = None,
    length: int | None = None,
    **extra: Any,
) -> Any:
    """A dataclass field carrying its CLI help, optional ``choices`` and the values it accepts.

    ``minimum``/``maximum`` are inclusive bounds and ``exclusive_minimum``/``exclusive_maximum`` strict ones, on
    every element of a list field; ``length`` is how many values a list field takes. :func:`check_option`
    enforces them on command-line flags and ``--config`` values alike, so a nonsense value stops the command
    before it writes anything instead of running with it.
    """
    bounds = dict(zip(_BOUNDS, (minimum, exclusive_minimum, maximum, exclusive_maximum)))
    metadata = {"help": help, **{k: v for k, v in bounds.items() if v is not None}, **extra}
    if length is not None:
        metadata["length"] = length
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


class ConfigError(ValueError):
    """An option value of the wrong type, count or range; the message says what the option accepts."""


@dataclass(frozen=True)
class OptionType:
    """What an annotation such as ``int``, ``list[int] | None`` or ``str | None`` accepts."""

    kind: type  # int, float, str or bool: the type of the value, or of each element of a list
    is_list: bool
    optional: bool  # None is a valid value


def option_type(annotation: Any) -> OptionType:
    """The :class:`OptionType` of a field annotation (``X | None`` is optional, ``list[X]`` a list of X)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        inner = option_type(next(a for a in args if a is not type(None)))
        return dataclasses.replace(inner, optional=inner.optional or type(None) in args)
    if origin is list:
        return OptionType(typing.get_args(annotation)[0], is_list=True, optional=False)
    return OptionType(annotation, is_list=False, optional=False)


def option_fields(cls: type) -> dict[str, tuple[dataclasses.Field, OptionType]]:
    """Every field of a config dataclass with the type it accepts (annotations are strings here)."""
    hints = typing.get_type_hints(cls)
    return {f.name: (f, option_type(hints[f.name])) for f in dataclasses.fields(cls)}


def describe_bounds(metadata: typing.Mapping[str, Any]) -> str:
    """A field's declared bounds in words, e.g. '> 0 and <= 1' (empty when it declares none)."""
    signs = {"minimum": ">=", "exclusive_minimum": ">", "maximum": "<=", "exclusive_maximum": "<"}
    return " and ".join(f"{signs[k]} {metadata[k]}" for k in _BOUNDS if k in metadata)


def describe_range(metadata: typing.Mapping[str, Any]) -> str:
    """Everything a field declares about its values, e.g. '2 values, each >= 1' (empty when nothing)."""
    bounds = describe_bounds(metadata)
    if "length" not in metadata:
        return bounds
    return f"{metadata['length']} values" + (f", each {bounds}" if bounds else "")


def check_option(field: dataclasses.Field, accepts: OptionType, value: Any) -> Any:
    """``value`` converted to the field's type, or :class:`ConfigError` if its type, count or range is wrong.

    The one check both a flag's parsed value and a ``--config`` value go through. YAML's loose typing is
    accepted where it is unambiguous: ``lr: 1e-3`` (a string to PyYAML) is a float and ``epochs: 7`` an int.
    """
    if value is None:
        if accepts.optional:
            return None
        raise ConfigError("needs a value, got null")
    if accepts.kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"must be true or false, got {value!r}")
        return value
    if not accepts.is_list:
        if isinstance(value, (list, tuple, dict)):
            raise ConfigError(f"takes one value, got {value!r}")
        return _check_scalar(field.metadata, accepts.kind, value)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"takes a list of values such as [1, 2], got {value!r}")
    length = field.metadata.get("length")
    # An optional list may be given empty (`--base-size` alone): that is "off", like its default None.
    if length is not None and len(value) != length and not (accepts.optional and not value):
        given = f": {' '.join(map(str, value))}" if value else ""
        raise ConfigError(f"takes {length} values, got {len(value)}{given}")
    return [_check_scalar(field.metadata, accepts.kind, v) for v in value]


def _check_scalar(metadata: typing.Mapping[str, Any], kind: type, value: Any) -> Any:
    converted = _convert(kind, value)
    choices = metadata.get("choices")
    if choices is not None and converted not in choices:
        raise ConfigError(f"must be one of {', '.join(map(str, choices))}, got {value!r}")
    if kind in (int, float) and not _in_range(metadata, converted):
        raise ConfigError(f"must be {describe_bounds(metadata)}, got {value!r}")
    return converted


def _convert(kind: type, value: Any) -> Any:
    if isinstance(value, bool) and kind is not str:  # True is an int to Python, never a count or a rate
        raise ConfigError(f"must be a number, got {value!r}")
    if kind is int:
        if isinstance(value, int):
            return value
        try:
            return int(str(value))  # "7" is 7; 7.5, "7.0" and "seven" are refused rather than rounded
        except ValueError:
            raise ConfigError(f"must be a whole number, got {value!r}") from None
    if kind is float:
        try:
            converted = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"must be a number, got {value!r}") from None
        if not math.isfinite(converted):  # nan passes every comparison, so no range could catch it
            raise ConfigError(f"must be a finite number, got {value!r}")
        return converted
    if isinstance(value, (dict, bool)):  # a str field: `device: yes` is YAML's true, not the text "yes"
        raise ConfigError(f"must be text, got {value!r}")
    return str(value)


def _in_range(metadata: typing.Mapping[str, Any], value: float) -> bool:
    return not (
        ("minimum" in metadata and value < metadata["minimum"])
        or ("exclusive_minimum" in metadata and value <= metadata["exclusive_minimum"])
        or ("maximum" in metadata and value > metadata["maximum"])
        or ("exclusive_maximum" in metadata and value >= metadata["exclusive_maximum"])
    )


@dataclass
class RunConfig:
    """Options every training run shares (supervised training and self-supervised pretraining alike)."""

    data: str = option(
        "synthetic", "training data: 'synthetic', 'camvid:PATH', a list file, or 'folders:IMAGES:LABELS'"
    )
    val_data: str | None = option(
        None,
        "validation data (default: the 'val' split of --data; a list file or folder pair has none, so without "
        "this flag such a run is validated on its training images, with a warning)",
    )
    output: str = option(
        "runs/train", "run folder: config.yaml, log.jsonl, last/best checkpoints, example PNGs"
    )
    backbone: str = option("resnet18", "backbone (see `pixelwise models`)")
    output_stride: int = option(
        32, "backbone output stride; 16 or 8 dilates ResNet stages", choices=(8, 16, 32)
    )
    epochs: int = option(30, "training epochs", minimum=1)
    batch_size: int = option(8, "images per optimiser step per process (before --accumulate)", minimum=1)
    accumulate: int = option(
        1, "gradient accumulation steps (effective batch = batch_size x accumulate x processes)", minimum=1
    )
    base_size: list[int] | None = option(
        None, "resize images once at load to H W (cached in memory); e.g. 180 240", length=2, minimum=1
    )
    crop: list[int] = option(
        [180, 240],
        "training crop H W taken after scale jitter (padded with ignore if needed)",
        length=2,
        minimum=1,
    )
    scale: list[float] = option(
        [0.5, 2.0], "random scale jitter range applied before cropping", length=2, exclusive_minimum=0
    )
    hflip: bool = option(True, "random horizontal flips")
    color_jitter: float = option(
        0.2, "brightness/contrast/saturation jitter strength (0 disables)", minimum=0
    )
    optimizer: str = option("adamw", "optimiser", choices=("sgd", "adamw"))
    lr: float = option(2e-3, "base learning rate", exclusive_minimum=0)
    momentum: float = option(
        0.9, "SGD momentum (Long §3.3.5: 0.9 at batch 20)", minimum=0, exclusive_maximum=1
    )
    weight_decay: float = option(1e-4, "weight decay (not applied to biases and norm layers)", minimum=0)
    bias_lr_mult: float = option(
        1.0, "learning-rate multiplier for biases (FCN's Caffe recipe used 2)", minimum=0
    )
    schedule: str = option(
        "poly",
        "learning-rate schedule; poly-time anneals over the --time-limit budget instead of --epochs "
        "(t/T = minutes trained / --time-limit; --epochs is then only an upper bound), so a run fits a wall-clock "
        "budget on any machine",
        choices=("poly", "poly-time", "step", "constant"),
    )
    poly_power: float = option(0.9, "poly schedule: lr = base * (1 - t/T)^power", minimum=0)
    step_epochs: list[int] = option([], "step schedule: epochs at which the lr is divided by 10", minimum=1)
    warmup_iters: int = option(0, "linear warm-up iterations", minimum=0)
    weights: str | None = option(
        None, "initial backbone weights file (.safetensors or torchvision .pth); never downloaded"
    )
    resume: bool = option(
        False, "continue from OUTPUT/last.safetensors: model, optimiser, schedule, RNG and epoch"
    )
    eval_every: int = option(
        1, "evaluate on the validation data every N epochs (0: only at the end)", minimum=0
    )
    eval_scale: float = option(
        1.0,
        "resize validation images by this factor for inference (labels stay full size)",
        exclusive_minimum=0,
    )
    time_limit: float | None = option(
        None,
        "stop after the epoch that passes this many minutes of training in this invocation (checkpoint kept); "
        "with --schedule poly-time, minutes over all resumes",
        exclusive_minimum=0,
    )
    seed: int = option(0, "random seed (data order, augmentation, init)", minimum=0)
    device: str = option("auto", "'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1', ...")
    threads: int | None = option(
        None, "CPU threads for torch (default: all cores of this process' share)", minimum=1
    )
    workers: int | None = option(None, "DataLoader worker processes (default: 0 on CPU, 4 on GPU)", minimum=0)
    amp: bool = option(
        False, "mixed precision: bfloat16 autocast for the forward pass (GPU, or CPUs with AVX512-BF16/AMX)"
    )
    log_every: int = option(10, "write a loss line to log.jsonl every N iterations", minimum=1)
    num_examples: int = option(4, "validation overlays saved as PNG at each evaluation", minimum=0)
    freeze: str = option(
        "none",
        "freeze backbone layers: 'none', 'backbone' (train the head only) or a stage name such as 'layer3' "
        "(freeze the stem up to and including it); frozen BatchNorm layers keep their statistics",
    )
    recalibrate_bn: bool = option(
        False,
        "before training, re-estimate the frozen layers' BatchNorm statistics in one pass over the training data "
        "(a random or foreign backbone's stored statistics do not fit it)",
    )
    skip_bad: bool = option(
        False,
        "drop unreadable or inconsistent samples (corrupt files, wrong-size labels, out-of-range class ids) "
        "when the data is loaded, print what was dropped and list it in OUTPUT/skipped.txt; without it the "
        "first bad file stops the run before training starts",
    )
    on_nan: str = option(
        "stop",
        "what a NaN/inf loss does: 'stop' ends the run with an error and keeps the last good checkpoint; "
        "'skip-batch' drops that batch (no optimiser step, logged) and stops only after 10 bad batches in a row",
        choices=("stop", "skip-batch"),
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainConfig(RunConfig):
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
    labels_fraction: float = option(
        1.0,
        "use this fraction of the labelled training images (seeded subset)",
        exclusive_minimum=0,
        maximum=1,
    )
    select_fraction: float = option(
        0.0,
        "carve this fraction of the training images (a fixed seeded subset, recorded in the checkpoints) as the "
        "selection split: periodic validation and best.safetensors use it, and the validation data is scored "
        "once, by the last model, at the end (so no choice is made on the split that is reported); 0 = off",
        minimum=0,
        exclusive_maximum=1,
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
    aux_layer: str = option(
        "",
        "backbone stage the branch reads (decoder mode; default: the deepest stage at the code's stride), or "
        "comma-separated stages of the hypercolumn (encoder mode; default: the head's taps)",
    )


@dataclass
class PretrainConfig(RunConfig):
    """Self-supervised pretraining on images without labels (``pixelwise pretrain``)."""

    method: str = option(
        "colorization",
        "pretext task: colorization (images, Larsson) or label-ae (an autoencoder of the training label maps "
        "alone, Mostajabi 2018 §3.1)",
        choices=("colorization", "label-ae"),
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
    label_ae_stride: int | None = option(
        None,
        "label-ae: code stride, 2^(depth-1) (pools between the convs; default) or 2^depth (one more pool); "
        "match it to the backbone layer the regulariser reads",
        minimum=1,
    )


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


@dataclass
class DepthConfig(TrainConfig):
    """Monocular depth (``pixelwise depth``, Mostajabi thesis §5.5): a one-channel model read as log depth."""

    output: str = option("runs/depth", "run folder: config.yaml, log.jsonl, last/best checkpoints")
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
    output: str = option("runs/weak-points", "folder for images/, labels/, train.txt and classes.txt")
    device: str = option("auto", "'auto', 'cpu', 'cuda', ...")


@dataclass
class TuneConfig(RunConfig):
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
    labels_fraction: float = option(
        1.0,
        "use this fraction of the labelled training images (seeded subset)",
        exclusive_minimum=0,
        maximum=1,
    )
    select_fraction: float = option(
        0.0,
        "carve this fraction of the training images (a fixed seeded subset, recorded in the checkpoints) as the "
        "selection split: periodic validation and best.safetensors use it, and the validation data is scored "
        "once, by the last model, at the end (so no choice is made on the split that is reported); 0 = off",
        minimum=0,
        exclusive_maximum=1,
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


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file; keys may use dashes or underscores. Problems are one-line :class:`ConfigError`."""
    try:
        with open(path, encoding="utf-8") as handle:
            values = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: config file is not UTF-8 text ({exc.reason})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in values.items()}


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's message without its multi-line source excerpt: the problem and where it is."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def save_yaml(values: dict[str, Any], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        yaml.safe_dump(values, handle, sort_keys=False)


@dataclass
class EvalConfig:
    checkpoint: str = option(
        "", "checkpoint file or run folder (uses best.safetensors, else last.safetensors)"
    )
    data: str = option("", "data to score: 'synthetic', 'camvid:PATH', a list file, 'folders:IMAGES:LABELS'")
    split: str = option("val", "split of --data to score")
    output: str | None = option(
        None, "folder for metrics.json and confusion.png (default: CHECKPOINT_DIR/eval-SPLIT)"
    )
    scales: list[float] = option(
        [],
        "inference scales of the full image (default: the scale the training run validated at, --eval-scale, "
        "stored in the checkpoint; several = multi-scale test-time augmentation)",
        exclusive_minimum=0,
    )
    flip: bool = option(False, "average with the horizontally flipped prediction")
    window: list[int] | None = option(
        None, "sliding-window inference with H W tiles (1/3 overlap)", length=2, minimum=1
    )
    boundary_widths: list[int] = option(
        [2, 5, 10], "band widths in pixels for boundary (trimap) accuracy", minimum=1
    )
    device: str = option("auto", "'auto', 'cpu', 'cuda', ...")
    threads: int | None = option(None, "CPU threads for torch", minimum=1)


@dataclass
class PredictConfig:
    checkpoint: str = option("", "checkpoint file or run folder")
    output: str = option(
        "predictions", "folder for NAME_labels.png (colour-coded), NAME_overlay.png, NAME_ids.png"
    )
    scales: list[float] = option(
        [],
        "inference scales of the full image (default: the scale the training run validated at, --eval-scale, "
        "stored in the checkpoint; several = multi-scale test-time augmentation)",
        exclusive_minimum=0,
    )
    flip: bool = option(False, "average with the horizontally flipped prediction")
    window: list[int] | None = option(
        None, "sliding-window inference with H W tiles (1/3 overlap)", length=2, minimum=1
    )
    alpha: float = option(0.5, "overlay opacity of the label colours", minimum=0, maximum=1)
    device: str = option("auto", "'auto', 'cpu', 'cuda', ...")


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


@dataclass
class ExportConfig:
    checkpoint: str = option("", "segmentation checkpoint file or run folder")
    output: str = option("model.onnx", "ONNX file to write")
    size: list[int] = option(
        [360, 480], "example input H W used for tracing (any size works when --dynamic)", length=2, minimum=1
    )
    dynamic: bool = option(True, "dynamic batch, height and width (off: the graph accepts only --size)")
    check: bool = option(True, "compare onnxruntime's logits with PyTorch's on a random image and report")


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
    amp: bool = option(False, "bfloat16 autocast (GPU, or CPUs with AVX512-BF16/AMX)")
    seed: int = option(0, "random seed of every stage", minimum=0)
    device: str = option("auto", "'auto', 'cpu', 'cuda', ...")
    colorize_examples: int = option(4, "val images colorized for the report", minimum=0)
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
