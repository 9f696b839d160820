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
from typing import Any, ClassVar

import yaml

# The gradient combiners of engine/combine.py, named here so reading options never imports torch.
COMBINERS = ("sum", "normsgd", "separate")


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
        "synthetic",
        "training data: 'synthetic', 'camvid:PATH', 'voc:PATH', 'cityscapes:PATH', 'ade20k:PATH', a list file, "
        "or 'folders:IMAGES:LABELS' (see `pixelwise datasets`)",
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
    sampling: str = option(
        "shuffle",
        "training image order: shuffle (every image once per epoch) or replacement (each step draws images "
        'independently, "true" stochastic selection, Long §4.4.4); an epoch is then as many draws',
        choices=("shuffle", "replacement"),
    )
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
    combine: str = option(
        "sum",
        "how the gradients of a task with several losses (multi-proxy pretraining) combine on the shared "
        "weights: sum (Eq. 4.9), normsgd (each divided by its mean |gradient| over the backbone, Eq. 4.11; "
        "needs --optimizer sgd) or separate (one optimiser state per loss, Eq. 4.10: Multi-Adam)",
        choices=COMBINERS,
    )
    round_robin: int = option(
        0,
        "tasks with several losses: train one at a time, switching every Q steps (§4.5.4); 0: all",
        minimum=0,
    )
    normsgd_freeze: int | None = option(
        None,
        "step at which --combine normsgd freezes its per-loss gradient scales (default: the end of "
        "--warmup-iters plus a tenth of the steps to the first lr drop)",
        minimum=1,
    )
    weights: str | None = option(
        None, "initial backbone weights file (.safetensors or torchvision .pth); never downloaded"
    )
    ignore_index: int = option(
        255,
        "label value meaning 'no label' in list-file and folder data (e.g. 11 for CamVid's SegNet lists); mapped "
        "to 255, which every loss and metric ignores (synthetic, camvid:, voc:, cityscapes: and ade20k: know their own)",
        minimum=0,
        maximum=255,
    )
    label_map: str | None = option(
        None,
        "list-file / folder data: YAML or JSON file mapping each id the label files hold to a class index or 255 "
        "(e.g. Cityscapes labelIds -> trainIds); every id must be listed; predict writes NAME_ids.png back in "
        "these ids",
    )
    label_suffix: str = option(
        "",
        "folders: data: remove this ending from label file stems before pairing (e.g. _gtFine_labelIds); label "
        "files without it are left out",
    )
    image_suffix: str = option(
        "", "folders: data: remove this ending from image file stems before pairing (e.g. _leftImg8bit)"
    )
    allow_partial: bool = option(
        False,
        "--weights: load what fits even when the file holds tensors this backbone lacks (another architecture) or "
        "leaves more than a tenth of it at its initial value (refused otherwise)",
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
    amp: bool | None = option(
        None,
        "mixed precision: bfloat16 autocast for the forward pass; default: on where bfloat16 is native (CUDA GPUs "
        "with bf16, CPUs with AVX512-BF16/AMX), off elsewhere (emulated it is ~8x slower); --amp / --no-amp force it",
    )
    channels_last: bool = option(
        False,
        "train with channels-last (NHWC) weights and image batches: faster convolutions on some CPUs and GPUs, "
        "the same numbers up to rounding; checkpoints are stored in the usual layout",
    )
    compile: bool = option(
        False,
        "train through torch.compile (inductor); a graph that fails to compile runs eager instead, with a "
        "warning; the first steps are slow while it compiles",
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

    def data_options(self) -> dict[str, Any]:
        """``build_dataset``'s keywords that say how this run's label files are read (void, map, suffixes)."""
        return data_options(self)


def data_options(config: Any, fallback: typing.Mapping[str, Any] | None = None) -> dict[str, Any]:
    """void / label_map / label_suffix / image_suffix of ``config``; fields left None come from ``fallback``
    (eval: the training run's config stored in the checkpoint, so its labels are read the same way)."""
    fallback = fallback or {}
    names = {"void": "ignore_index", "label_map": "label_map", "label_suffix": "label_suffix",
             "image_suffix": "image_suffix"}  # fmt: skip
    defaults = {"void": 255, "label_map": None, "label_suffix": "", "image_suffix": ""}
    options = {}
    for key, name in names.items():
        value = getattr(config, name, None)
        options[key] = value if value is not None else fallback.get(name, defaults[key])
    options["void"] = int(options["void"])
    return options


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
class LabelledRunConfig(RunConfig):
    """A run on labelled images: which share of them it uses, and the selection split it carves from them."""

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


@dataclass
class InferenceOptions:
    """What ``eval`` and ``predict`` share: the checkpoint and how inference runs (scales, flips, tiles)."""

    checkpoint: str = option(
        "", "checkpoint file or run folder (uses best.safetensors, else last.safetensors)"
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
    engine: str = option(
        "torch",
        "how the network runs: torch (eager PyTorch), compile (torch.compile; falls back to eager with a warning "
        "when compiling fails) or onnx (exported once and run by onnxruntime on the CPU; pip install "
        "'pixelwise[export]'); benchmarks/inference_speed.py measures them",
        choices=("torch", "compile", "onnx"),
    )
    channels_last: bool = option(
        False,
        "--engine torch / compile: channels-last tensors and weights (faster convolutions on some CPUs)",
    )
    extra_input: str | None = option(
        None,
        "fusion runs (train --fusion early / late): the extra channels, 'depth' (the data's own depth: synthetic "
        "scenes, rgbd: lists) or a FOLDER of 16-bit millimetre depth PNGs named by image stem; eval defaults to "
        "the run's own --extra-input, predict needs a FOLDER",
    )


@dataclass
class EvalConfig(InferenceOptions):
    data: str = option(
        "",
        "data to score: 'synthetic', 'camvid:PATH', 'voc:PATH', 'cityscapes:PATH', 'ade20k:PATH', a list file, "
        "'folders:IMAGES:LABELS'",
    )
    split: str = option("val", "split of --data to score")
    ignore_index: int | None = option(
        None,
        "label value meaning 'no label' in list-file / folder data (default: the training run's --ignore-index)",
        minimum=0,
        maximum=255,
    )
    label_map: str | None = option(
        None, "list-file / folder data: label map file, as in train (default: the training run's --label-map)"
    )
    label_suffix: str | None = option(
        None, "folders: data: label stem ending to remove before pairing (default: the training run's)"
    )
    image_suffix: str | None = option(
        None, "folders: data: image stem ending to remove before pairing (default: the training run's)"
    )
    output: str | None = option(
        None, "folder for metrics.json and confusion.png (default: CHECKPOINT_DIR/eval-SPLIT)"
    )
    boundary_widths: list[int] = option(
        [2, 5, 10], "band widths in pixels for boundary (trimap) accuracy", minimum=1
    )
    device: str = option("auto", "'auto', 'cpu', 'cuda', ...")
    threads: int | None = option(None, "CPU threads for torch", minimum=1)


@dataclass
class PredictConfig(InferenceOptions):
    output: str = option(
        "predictions", "folder for NAME_labels.png (colour-coded), NAME_overlay.png, NAME_ids.png"
    )
    alpha: float = option(0.5, "overlay opacity of the label colours", minimum=0, maximum=1)
    device: str = option("auto", "'auto', 'cpu', 'cuda', ...")


@dataclass
class ExportConfig:
    OUTPUT_IS_FILE: ClassVar[bool] = True  # --output names the .onnx file, not a folder
    checkpoint: str = option("", "segmentation checkpoint file or run folder")
    output: str = option("model.onnx", "ONNX file to write")
    size: list[int] = option(
        [360, 480], "example input H W used for tracing (any size works when --dynamic)", length=2, minimum=1
    )
    dynamic: bool = option(True, "dynamic batch, height and width (off: the graph accepts only --size)")
    check: bool = option(True, "compare onnxruntime's logits with PyTorch's on a random image and report")
    scale: float | None = option(
        None,
        "the graph runs the network at this scale of its input and returns logits at the input size (default: "
        "the scale the training run validated at, --eval-scale, stored in the checkpoint; 1 = as given)",
        exclusive_minimum=0,
    )
