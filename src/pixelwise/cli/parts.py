"""``pixelwise parts``: stacked Bernoulli mixture models of parts (Larsson thesis Ch. 1.2, Appendix A).

``fit`` fits Edges -> Mixture / RotMix without labels and the class models (or SVM) with them, and writes the
network, its parts grid and its held-out error; ``eval`` scores a fitted network; ``show`` draws its parts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pixelwise.cli.options import add_dataclass_arguments, build_config
from pixelwise.methods.mixtures.config import PartsEvalConfig, PartsFitConfig, PartsShowConfig

CHECKPOINT_NAME = "parts-net.safetensors"


def register_parts(sub: argparse._SubParsersAction) -> None:
    """Add ``parts`` to the ``pixelwise`` subcommands."""
    parser = sub.add_parser(
        "parts",
        help="fit and evaluate stacked Bernoulli mixture models of parts",
        description="Stacked Bernoulli mixture models with latent transformations (Larsson thesis §1.2, App. A): "
        "binary oriented edges, a mixture of S x S parts coded one-hot and OR-pooled, one model per class "
        "(likelihood classification) or a linear SVM; RotMix layers learn parts with latent rotations by "
        "Permutation EM. Trained greedily by EM, no gradients; labels only at the top.",
    )
    tools = parser.add_subparsers(dest="tool", required=True, metavar="TOOL", help="which tool")
    fit = tools.add_parser(
        "fit", help="fit a parts network on digits or your images",
        description="Fit layer 2 on the training part of --data without labels, then the top layer on "
        "--labels-per-class labelled images per class. Writes OUTPUT/parts-net.safetensors (+ .json), "
        "OUTPUT/parts.png (one row per part, one column per transformation) and OUTPUT/metrics.json (held-out "
        "error).",
    )  # fmt: skip
    fit.add_argument("--config", help="YAML file of options (flags override it)")
    add_dataclass_arguments(fit, PartsFitConfig)
    fit.set_defaults(run=run_fit)
    evaluate = tools.add_parser(
        "eval", help="error rate of a fitted parts network",
        description="Classify the held-out images (by default the fitted run's data, variation and split) and "
        "write eval.json: error rate, per-class error and, on rotated data with an oriented model, the "
        "circular correlation of the recovered rotation with the applied one.",
    )  # fmt: skip
    add_dataclass_arguments(evaluate, PartsEvalConfig)
    evaluate.add_argument("checkpoint", metavar="RUN", help="run folder or checkpoint of `parts fit`")
    evaluate.set_defaults(run=run_eval)
    show = tools.add_parser(
        "show", help="draw a parts network's parts",
        description="Write layer 2's parts as a PNG grid: one row per part, one column per transformation; each "
        "pixel's hue is its most probable edge orientation, its brightness that probability.",
    )  # fmt: skip
    add_dataclass_arguments(show, PartsShowConfig)
    show.add_argument("checkpoint", metavar="RUN", help="run folder or checkpoint of `parts fit`")
    show.set_defaults(run=run_show)


def _checkpoint(path: str) -> Path:
    candidate = Path(path)
    return candidate / CHECKPOINT_NAME if candidate.is_dir() else candidate


def _threads(threads: int | None) -> None:
    import torch  # here, not at the top: `pixelwise parts --help` needs no torch

    if threads:
        torch.set_num_threads(threads)


def run_fit(args: argparse.Namespace) -> int:
    from pixelwise.data.digits import load_digit_data, per_class_subset, stratified_split
    from pixelwise.methods.mixtures import PartsNet, PartsNetConfig, error_rate, save_parts_grid

    config = build_config(PartsFitConfig, args)
    _threads(config.threads)
    overrides = {k: getattr(config, k) for k in ("parts", "rotations", "class_rotations", "patches_per_image")
                 if getattr(config, k) is not None}  # fmt: skip
    shared = ("polarities", "transform", "class_components", "patch_size", "pool", "edge_k", "edge_radius",
              "minimum_contrast", "min_edges", "parts_eps", "class_eps", "class_score", "standardize",
              "iterations", "svm_c", "seed")  # fmt: skip
    overrides.update({k: getattr(config, k) for k in shared})
    images, labels, classes, _ = load_digit_data(
        config.data, config.variant, config.backgrounds, config.split_seed
    )
    net_config = PartsNetConfig.for_model(
        config.model, image_size=tuple(images.shape[-2:]), channels=images.shape[1], **overrides
    )
    train, test = stratified_split(labels, config.test_fraction, config.split_seed)
    chosen = per_class_subset(train, labels, config.labels_per_class)
    started = time.time()
    net = PartsNet(net_config, classes).fit_parts(images[train])
    top_features = (
        net.complete_features(images[chosen])
        if net_config.class_rotations > 1
        else net.features(images[chosen])
    )
    net.fit_top(top_features, labels[chosen])
    minutes = (time.time() - started) / 60
    error = error_rate(net.predict(images[test]), labels[test])
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    net.save(out / CHECKPOINT_NAME, fit=config.__dict__, fit_minutes=round(minutes, 3))
    save_parts_grid(net, out / "parts.png")
    metrics = {"error": error, "test_images": len(test), "train_images": len(train), "labelled": len(chosen),
               "minutes": round(minutes, 3)}  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"held-out error {100 * error:.2f}% on {len(test)} images ({minutes:.1f} min); wrote {out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from pixelwise.data.digits import load_digit_data, stratified_split
    from pixelwise.methods.mixtures import PartsNet, circular_correlation, error_rate

    config = build_config(PartsEvalConfig, args)
    _threads(config.threads)
    path = _checkpoint(args.checkpoint)
    net, meta = PartsNet.load(path)
    fitted = meta.get("fit", {})

    def pick(name: str, default: object) -> object:  # this command's flag, else the fitted run's value
        value = getattr(config, name)
        return value if value is not None else fitted.get(name, default)

    data, variant = pick("data", "digits"), pick("variant", "basic")
    split_seed = pick("split_seed", 0)
    images, labels, classes, angles = load_digit_data(data, variant, pick("backgrounds", None), split_seed)
    if classes != net.classes:
        raise ValueError(
            f"{data} has classes {classes} but {path} was fitted on {net.classes}; use matching data"
        )
    chosen = (
        torch.arange(len(labels))
        if config.all_images
        else stratified_split(labels, pick("test_fraction", 0.3), split_seed)[1]
    )
    features = net.features(net.check_images(images[chosen]))
    predicted = net.scores(features).argmax(dim=1)
    truth = labels[chosen]
    record = {
        "checkpoint": str(path), "data": data, "variant": variant, "images": len(chosen),
        "error": error_rate(predicted, truth),
        "per_class_error": {c: error_rate(predicted[truth == i], truth[truth == i]) for i, c in enumerate(classes)
                            if bool((truth == i).any())},
    }  # fmt: skip
    if net.config.class_rotations > 1 and bool(angles[chosen].abs().sum() > 0):
        poses = net.poses(features, truth).double() * (2 * torch.pi / net.config.class_rotations)
        record["rotation_circular_correlation"] = {
            c: round(circular_correlation(poses[truth == i], angles[chosen][truth == i].double()), 4)
            for i, c in enumerate(classes) if bool((truth == i).sum() > 1)
        }  # fmt: skip
    out = Path(config.output) if config.output else path.parent
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(record, indent=2))
    print(
        f"error {100 * record['error']:.2f}% on {len(chosen)} images of {data} ({variant}); wrote {out / 'eval.json'}"
    )
    return 0


def run_show(args: argparse.Namespace) -> int:
    from pixelwise.methods.mixtures import PartsNet, parts_grid
    from pixelwise.report.images import save_png

    config = build_config(PartsShowConfig, args)
    path = _checkpoint(args.checkpoint)
    net, _ = PartsNet.load(path)
    grid = parts_grid(net.layer.mu, net.config.parts, net.layer.transformations, config.scale)
    target = save_png(grid, config.output or path.parent / "parts.png")
    print(f"wrote {target} ({net.config.parts} parts x {net.layer.transformations} transformations)")
    return 0
