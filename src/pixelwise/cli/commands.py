"""Subcommand registration: each adds its parser and points ``run`` at the function that does the work."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pixelwise.cli.options import add_dataclass_arguments, build_config, checked_flag
from pixelwise.engine.config import EvalConfig, ExportConfig, PredictConfig, data_options, option_fields


def add_config_command(
    sub: argparse._SubParsersAction,
    name: str,
    help: str,
    description: str,
    config_cls: type,
    run,
    yaml: bool = True,
) -> argparse.ArgumentParser:
    """A subcommand whose flags are the fields of ``config_cls`` (plus ``--config FILE.yaml``)."""
    parser = sub.add_parser(name, help=help, description=description)
    if yaml:
        parser.add_argument("--config", help="YAML file of options (flags override it)")
    add_dataclass_arguments(parser, config_cls)
    parser.set_defaults(run=run)
    return parser


def register_train(sub: argparse._SubParsersAction) -> None:
    from pixelwise.methods.train_config import TrainConfig

    add_config_command(
        sub,
        "train",
        "train a segmentation model",
        "Train an FCN (Long thesis Ch. 3). Writes OUTPUT/config.yaml, log.jsonl, last.safetensors "
        "(resumable) and best.safetensors (inference model). Under torchrun it trains data-parallel.",
        TrainConfig,
        run_train,
    )


def run_train(args: argparse.Namespace) -> int:
    from pixelwise.engine.trainer import train
    from pixelwise.methods.segmentation import SegmentationTask, TrainConfig

    config = build_config(TrainConfig, args)
    scores = train(config, SegmentationTask(config))
    print(json.dumps({k: scores[k] for k in ("mean_iou", "pixel_acc", "mean_acc", "fw_iou")}, indent=2))
    return 0


def register_pretrain(sub: argparse._SubParsersAction) -> None:
    from pixelwise.methods.pretrain import PretrainConfig

    add_config_command(
        sub,
        "pretrain",
        "self-supervised pretraining on images without labels",
        "Pretrain a backbone with a pretext task. colorization (Larsson thesis Ch. 2-3): a grey-input network "
        "predicts hue/chroma (or Lab) histograms at sparse hypercolumn points; validated by PSNR against the "
        "grey images. The checkpoint colorizes images (`pixelwise colorize`) and initialises segmentation "
        "(`pixelwise train --init-from RUN --in-channels 1`). label-ae (Mostajabi 2018 §3.1): an autoencoder "
        "of the training label maps alone (no images), validated by reconstruction mean IoU; it regularises "
        "segmentation training (`pixelwise train --regularizer label-ae --label-ae RUN`). jigsaw, motion and "
        "multi (Larsson Ch. 4): proxy tasks on one 3-channel backbone, each with its own head; with several "
        "--tasks their gradients combine by --combine (sum, normsgd, separate) or --round-robin Q; validated "
        "by each task's held-out loss; initialise segmentation with `pixelwise train --init-from RUN "
        "--in-channels 3`.",
        PretrainConfig,
        run_pretrain,
    )


def run_pretrain(args: argparse.Namespace) -> int:
    from pixelwise.engine.trainer import train
    from pixelwise.methods.pretrain import PretrainConfig

    config = build_config(PretrainConfig, args)
    if config.method == "label-ae":
        from pixelwise.methods.label_ae import LabelAETask

        task = LabelAETask(config)
    elif config.method in ("jigsaw", "motion", "multi"):
        from pixelwise.methods.multiproxy import MultiProxyTask

        task = MultiProxyTask(config)
    elif config.method == "autoencoder":
        from pixelwise.methods.autoencoder import AutoencoderTask

        task = AutoencoderTask(config)
    else:
        from pixelwise.methods.colorization import ColorizationTask

        task = ColorizationTask(config)
    scores = train(config, task)
    print(json.dumps({k: v for k, v in scores.items() if isinstance(v, (int, float))}, indent=2))
    return 0


def register_colorize(sub: argparse._SubParsersAction) -> None:
    from pixelwise.methods.colorization.config import ColorizeConfig

    parser = add_config_command(
        sub,
        "colorize",
        "colorize images with a colorization checkpoint",
        "Write NAME_color.png for every image (colours predicted from its lightness). For colour inputs also "
        "write NAME_panel.png (grey | colorization | original) and print the PSNR against the grey images.",
        ColorizeConfig,
        run_colorize,
        yaml=False,
    )
    parser.add_argument("images", nargs="+", help="image files (PNG/JPEG) or folders of images")


def run_colorize(args: argparse.Namespace) -> int:
    from pixelwise.cli.colorize import colorize_images
    from pixelwise.methods.colorization.config import ColorizeConfig

    colorize_images(build_config(ColorizeConfig, args), [Path(p) for p in args.images])
    return 0


def register_eval(sub: argparse._SubParsersAction) -> None:
    add_config_command(
        sub,
        "eval",
        "score a checkpoint on a labelled split",
        "Print and write all metrics (pixel acc, mean acc, mean IoU, fw IoU, per-class IoU, boundary "
        "accuracy) as JSON, a confusion-matrix PNG and an HTML report.",
        EvalConfig,
        run_eval,
    )


def run_eval(args: argparse.Namespace) -> int:
    from pixelwise.evaluation import evaluate_checkpoint

    evaluate_checkpoint(build_config(EvalConfig, args))
    return 0


def register_predict(sub: argparse._SubParsersAction) -> None:
    parser = add_config_command(
        sub,
        "predict",
        "predict label maps for images",
        "Write a colour-coded label PNG, an overlay PNG and a class-id PNG for every image.",
        PredictConfig,
        run_predict,
        yaml=False,
    )
    parser.add_argument("images", nargs="+", help="image files (PNG/JPEG) or folders of images")


def run_predict(args: argparse.Namespace) -> int:
    from pixelwise.cli.predict import predict_images

    predict_images(build_config(PredictConfig, args), [Path(p) for p in args.images])
    return 0


def register_pipeline(sub: argparse._SubParsersAction) -> None:
    from pixelwise.pipeline.config import PipelineConfig

    add_config_command(
        sub,
        "pipeline",
        "pretrain -> tune -> train -> evaluate -> report, resumable",
        "The whole system: colorization pretraining on the images (labels unused), optional Mix-and-Match "
        "tuning and label-autoencoder regulariser, segmentation training on --labels-fraction of the labels, "
        "evaluation, and OUTPUT/report/report.html (metrics, per-class IoU, confusion matrix, training curves, "
        "example predictions and colorizations). Finished stages are skipped, interrupted ones resumed.",
        PipelineConfig,
        run_pipeline,
    )


def run_pipeline(args: argparse.Namespace) -> int:
    from pixelwise.pipeline.config import PipelineConfig
    from pixelwise.pipeline.run import run_pipeline as pipeline

    scores = pipeline(build_config(PipelineConfig, args))
    print(json.dumps({k: scores[k] for k in ("mean_iou", "pixel_acc", "stages")}, indent=2))
    return 0


def register_export(sub: argparse._SubParsersAction) -> None:
    add_config_command(
        sub,
        "export",
        "export a segmentation checkpoint to ONNX",
        "Write an ONNX graph (input 'images' in [0, 1], output 'logits'; normalisation and stride padding "
        "inside, dynamic batch/height/width) and check it against PyTorch with onnxruntime. Needs the optional "
        "packages onnx, onnxscript and onnxruntime (pip install 'pixelwise[export]').",
        ExportConfig,
        run_export,
        yaml=False,
    )


def run_export(args: argparse.Namespace) -> int:
    from pixelwise.cli.export import export_checkpoint

    export_checkpoint(build_config(ExportConfig, args))
    return 0


def register_datasets(sub: argparse._SubParsersAction) -> None:
    from pixelwise.methods.train_config import TrainConfig

    parser = sub.add_parser(
        "datasets",
        help="describe and validate a dataset",
        description="Without --data: list the dataset forms. With --data: count images, list classes with pixel "
        "frequencies, and (--validate) check every file, reporting each problem with its file name.",
    )
    parser.add_argument("--data", help="dataset spec, e.g. camvid:../shared/data/camvid")
    parser.add_argument("--split", default="train", help="split to describe")
    parser.add_argument("--validate", action="store_true", help="decode and check every sample")
    # The same label-reading options as train, generated from its fields (one help text for both).
    skip = tuple(name for name in option_fields(TrainConfig) if name not in DATA_READ_OPTIONS)
    add_dataclass_arguments(parser, TrainConfig, skip=skip)
    parser.set_defaults(run=run_datasets)


DATA_READ_OPTIONS = ("ignore_index", "label_map", "label_suffix", "image_suffix")


def run_datasets(args: argparse.Namespace) -> int:
    from pixelwise.cli.describe import describe_dataset

    options = data_options(args)
    return describe_dataset(args.data, args.split, args.validate, options)


def register_models(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "models",
        help="list architectures and backbones; receptive fields",
        description="List segmentation architectures and backbones with parameter counts, or print a layer-by-layer "
        "receptive-field / stride table (Long thesis Table 2.1 composition rule).",
    )
    parser.add_argument(
        "--rf", metavar="NAME", help="print the receptive-field table of NAME (alexnet, vgg16, resnet18...)"
    )
    parser.add_argument(
        "--num-classes",
        default=11,
        help="classes used for the parameter counts (>= 1)",
        **checked_flag(int, minimum=1),
    )
    parser.set_defaults(run=run_models)


def run_models(args: argparse.Namespace) -> int:
    from pixelwise.cli.describe import describe_models

    return describe_models(args.rf, args.num_classes)


def register_label_ae(sub: argparse._SubParsersAction) -> None:
    from pixelwise.cli.label_ae import register_label_ae as register

    register(sub)


def register_tune(sub: argparse._SubParsersAction) -> None:
    from pixelwise.cli.tune import register_tune as register

    register(sub)


def register_zoomout(sub: argparse._SubParsersAction) -> None:
    from pixelwise.methods.zoomout.config import ZoomOutConfig

    add_config_command(
        sub,
        "zoomout",
        "train the superpixel zoom-out classifier",
        "Superpixel zoom-out (Mostajabi thesis §3.3-3.4): SLIC superpixels described by every backbone stage "
        "averaged over them, a sub-scene box and the scene, mirror-maxed; an MLP trained on these fixed features "
        "with the class-rebalanced log-loss. The backbone comes from --init-from RUN (any pixelwise run) or "
        "--weights FILE and stays frozen. Validation reports mean IoU and the superpixel oracle's. The "
        "checkpoint works with `pixelwise eval` and `predict`. (The end-to-end variant is `train --arch zoomout`.)",
        ZoomOutConfig,
        run_zoomout,
    )


def run_zoomout(args: argparse.Namespace) -> int:
    from pixelwise.engine.trainer import train
    from pixelwise.methods.zoomout import ZoomOutTask
    from pixelwise.methods.zoomout.config import ZoomOutConfig

    config = build_config(ZoomOutConfig, args)
    scores = train(config, ZoomOutTask(config))
    print(
        json.dumps({k: scores[k] for k in ("mean_iou", "oracle_mean_iou", "pixel_acc", "mean_acc")}, indent=2)
    )
    return 0


def register_depth(sub: argparse._SubParsersAction) -> None:
    from pixelwise.cli.depth import register_depth as register

    register(sub)


def register_weak(sub: argparse._SubParsersAction) -> None:
    from pixelwise.cli.weak import register_weak as register

    register(sub)


def register_distill(sub: argparse._SubParsersAction) -> None:
    from pixelwise.cli.distill import register_distill as register

    register(sub)


def register_correspond(sub: argparse._SubParsersAction) -> None:
    from pixelwise.cli.correspond import register_correspond as register

    register(sub)


def register_proposals(sub: argparse._SubParsersAction) -> None:
    from pixelwise.cli.proposals import register_proposals as register

    register(sub)


def register_joint(sub: argparse._SubParsersAction) -> None:
    from pixelwise.cli.joint import register_joint as register

    register(sub)


def register_parts(sub: argparse._SubParsersAction) -> None:
    from pixelwise.cli.parts import register_parts as register

    register(sub)


# name -> the function that adds its full parser (cli/main.py lists the names with their summaries).
REGISTER = {
    "train": register_train,
    "pretrain": register_pretrain,
    "tune": register_tune,
    "eval": register_eval,
    "predict": register_predict,
    "colorize": register_colorize,
    "pipeline": register_pipeline,
    "export": register_export,
    "datasets": register_datasets,
    "models": register_models,
    "label-ae": register_label_ae,
    "zoomout": register_zoomout,
    "weak": register_weak,
    "depth": register_depth,
    "distill": register_distill,
    "correspond": register_correspond,
    "proposals": register_proposals,
    "joint": register_joint,
    "parts": register_parts,
}
