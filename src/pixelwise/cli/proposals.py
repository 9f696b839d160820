"""``pixelwise proposals``: object segment proposals from pairwise networks (Long thesis Ch. 4)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from pixelwise.cli.options import add_dataclass_arguments, build_config
from pixelwise.methods.proposals.config import (
    ProposalEvalConfig,
    ProposalExportConfig,
    ProposalPredictConfig,
    ProposalTrainConfig,
)

if TYPE_CHECKING:
    import torch


def register_proposals(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "proposals",
        help="object segment proposals from a pairwise network",
        description="Object segment proposals (Long thesis Ch. 4): at every region centre of every pyramid "
        "pathway, the network says which pixels of a window belong to the object under the centre (a k x k conv, "
        "the transpose and one shared matrix); NMS on the region grids ranks them.",
    )
    tools = parser.add_subparsers(dest="tool", required=True, metavar="TOOL", help="which tool")
    train = tools.add_parser(
        "train", help="train a region network",
        description="Train RegionNet on instance maps with the region loss (a window counts only when its object "
        "fits it). Writes OUTPUT/config.yaml, log.jsonl, last.safetensors (resumable), best.safetensors (by val "
        "AR) and proposal overlays.",
    )  # fmt: skip
    train.add_argument("--config", help="YAML file of options (flags override it)")
    add_dataclass_arguments(train, ProposalTrainConfig)
    train.set_defaults(run=run_train)
    evaluate = tools.add_parser(
        "eval", help="score a region network's proposals",
        description="Recall at IoU 0.5 / 0.7, ABO, AR (exact continuous form) and AR@10/100/1000 of RUN's "
        "proposals on instance data; writes OUTPUT/eval.json and OUTPUT/recall.png (recall vs IoU threshold, and "
        "recall@0.5 by object size per pathway).",
    )  # fmt: skip
    add_dataclass_arguments(evaluate, ProposalEvalConfig)
    evaluate.add_argument("checkpoint", metavar="RUN", help="run folder or checkpoint of `proposals train`")
    evaluate.set_defaults(run=run_eval)
    predict = tools.add_parser(
        "predict", help="draw proposals on images",
        description="Rank RUN's proposals on each IMAGE; writes OUTPUT/<stem>_proposals.png (the best --show "
        "masks on the image) and OUTPUT/proposals.json (per image: window box, score, pathway of each proposal).",
    )  # fmt: skip
    add_dataclass_arguments(predict, ProposalPredictConfig)
    predict.add_argument("checkpoint", metavar="RUN", help="run folder or checkpoint of `proposals train`")
    predict.add_argument("images", nargs="+", help="image files")
    predict.set_defaults(run=run_predict)
    export = tools.add_parser(
        "export", help="write the region network as ONNX",
        description="Write RUN's network to OUTPUT as ONNX at a fixed input size (--size; the transpose's gather is "
        "laid out for one grid): input 'images' [1, 3, H, W] in [0, 1], outputs regions_<pathway> [1, W^2, h, w] "
        "and scores_<pathway> [1, 1, h, w]; NMS and the read-out stay outside the graph. Checked against PyTorch "
        "with onnxruntime.",
    )  # fmt: skip
    add_dataclass_arguments(export, ProposalExportConfig)
    export.add_argument("checkpoint", metavar="RUN", help="run folder or checkpoint of `proposals train`")
    export.set_defaults(run=run_export)


def run_train(args: argparse.Namespace) -> int:
    from pixelwise.engine.trainer import train
    from pixelwise.methods.proposals.task import ProposalTask

    config = build_config(ProposalTrainConfig, args)
    scores = train(config, ProposalTask(config))
    print(
        json.dumps(
            {k: scores[k] for k in ("ar", "r50", "r70", "abo", "ar@10", "ar@100", "ar@1000")}, indent=2
        )
    )
    return 0


def _model(run: str, device: str):
    from pixelwise.engine.distributed import resolve_device
    from pixelwise.methods.kinds import build_model_from_checkpoint

    model, _ = build_model_from_checkpoint(run, expect="region-proposals")
    target = resolve_device(device, 0)
    return model.to(target), target


def run_eval(args: argparse.Namespace) -> int:
    from pixelwise.methods.proposals.evaluation import evaluate_proposals, save_recall_plot

    config = build_config(ProposalEvalConfig, args)
    model, device = _model(args.checkpoint, config.device)
    record = evaluate_proposals(model, config, device)
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    save_recall_plot(record, model.config.pathways, out / "recall.png")
    (out / "eval.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record["scores"], indent=2))
    print(f"wrote {out / 'eval.json'} and {out / 'recall.png'}")
    return 0


def _load(path: str, size: list[int] | None) -> torch.Tensor:
    from pixelwise.cli.correspond_jobs import read_image  # one image reader for the CLI tools

    return read_image(path, size)


def run_predict(args: argparse.Namespace) -> int:
    from pixelwise.methods.proposals.overlays import save_proposal_overlay
    from pixelwise.methods.proposals.predict import ProposalOptions, propose

    config = build_config(ProposalPredictConfig, args)
    model, device = _model(args.checkpoint, config.device)
    options = ProposalOptions(config.nms, config.top_k, config.lowest_stride)
    out, listing = Path(config.output), {}
    for path in args.images:
        image = _load(path, config.size)
        found = propose(model, image[None].to(device), options)[0]
        save_proposal_overlay(image, found, out / f"{Path(path).stem}_proposals.png", config.show)
        listing[path] = [
            {"top": m.top, "left": m.left, "height": int(m.mask.shape[0]), "width": int(m.mask.shape[1]),
             "pixels": int(m.mask.sum()), "score": round(s, 6), "pathway": model.config.pathways[lv]}
            for m, s, lv in zip(found.masks, found.scores, found.levels)
        ]  # fmt: skip
        print(f"{path}: {len(found.masks)} proposals")
    (out / "proposals.json").write_text(json.dumps(listing, indent=1))
    print(f"wrote {out}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    import torch

    from pixelwise.engine.export import export_module, onnx_run
    from pixelwise.methods.proposals.model import FlatRegionOutputs

    config = build_config(ProposalExportConfig, args)
    model, _ = _model(args.checkpoint, "cpu")
    flat = FlatRegionOutputs(model).eval()
    example = torch.rand(1, 3, *config.size)
    path = export_module(flat, config.output, example, flat.output_names())
    with torch.no_grad():
        expected = flat(example)
    difference = max(float((a - b).abs().max()) for a, b in zip(onnx_run(path, example), expected))
    print(f"wrote {path}; onnxruntime vs PyTorch max |difference| {difference:.2e}")
    return 0
