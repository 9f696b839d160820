"""``pixelwise correspond``: dense correspondence from frozen convnet features (Long thesis Ch. 2)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pixelwise.cli.options import add_dataclass_arguments, build_config
from pixelwise.methods.correspondence.config import AlignConfig


def register_correspond(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "correspond",
        help="dense correspondence from frozen convnet features",
        description="Correspondence from the frozen features of any run (Long thesis Ch. 2): `correspond align` "
        "matches every feature cell of SOURCE in TARGET (L2 data term, quadratic smoothness, min-sum belief "
        "propagation: conv flow, §2.2) and warps TARGET onto SOURCE.",
    )
    tools = parser.add_subparsers(dest="tool", required=True, metavar="TOOL", help="which tool")
    align = tools.add_parser(
        "align",
        help="conv flow between two images",
        description="Conv flow from SOURCE to TARGET on one stage's cells (each at its receptive-field centre); "
        "writes OUTPUT/panel.png (source | target | target warped to source | flow magnitude) and flow.json "
        "(energy, mean displacement, PSNR of the warp and of plain copying).",
    )
    add_dataclass_arguments(align, AlignConfig)
    align.add_argument("source", help="image whose cells are matched")
    align.add_argument("target", help="image they are matched in")
    align.set_defaults(run=run_align)


def _image(path: str, size: list[int] | None) -> torch.Tensor:
    from pixelwise.data.validation import load_image

    image = torch.from_numpy(load_image(Path(path)).copy()).permute(2, 0, 1).float() / 255
    if size:
        image = torch.nn.functional.interpolate(
            image[None], size=tuple(size), mode="bilinear", antialias=True
        )[0]
    return image


def run_align(args: argparse.Namespace) -> int:
    from pixelwise.methods.correspondence import FeatureConfig, conv_flow, dense_features, feature_extractor
    from pixelwise.methods.correspondence.warp import warp_image
    from pixelwise.metrics.correspondence import psnr
    from pixelwise.report.images import save_panel, to_uint8_image

    config = build_config(AlignConfig, args)
    source, target = _image(args.source, config.size), _image(args.target, config.size)
    if source.shape != target.shape:
        raise ValueError(f"{args.source} and {args.target} differ in size; pass --size H W to resize both")
    extractor = feature_extractor(config.init_from, (config.stage,), FeatureConfig(backbone=config.backbone))
    grid = dense_features(extractor, torch.stack([source, target]))[config.stage]
    flow = conv_flow(grid.image(0), grid.image(1), config.beta, config.radius, config.iterations)
    dense = flow.dense()
    warped = warp_image(target, dense).clamp(0, 1)
    magnitude = dense.norm(dim=0)
    scale = magnitude / magnitude.max().clamp(min=1e-6)
    out = Path(config.output)
    panel = [to_uint8_image(x) for x in (source, target, warped, scale.expand(3, -1, -1))]
    save_panel(panel, ["source", "target", "target warped to source", "|flow|"], out / "panel.png")
    record = {
        "stage": config.stage,
        "beta": config.beta,
        "cells": list(flow.cells.shape[:2]),
        "energy": flow.energy.total if flow.energy else None,
        "mean_displacement_px": float(magnitude.mean()),
        "psnr_warped": float(psnr(warped, source)),
        "psnr_copy": float(psnr(target, source)),
    }
    (out / "flow.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))
    print(f"wrote {out / 'panel.png'}")
    return 0
