"""Model kinds: the one table that says which model a checkpoint rebuilds into and which command uses it.

Every checkpoint's metadata names its model's ``kind`` (``StoredConfig.KIND``). A method that adds a kind adds
one row here, next to the others; the engine never needs to know (it only saves and loads tensors + JSON).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixelwise.engine.checkpoint import inference_weights, load_checkpoint, require_current_geometry


def _segmentation(described: dict[str, Any]) -> nn.Module:
    from pixelwise.models import ModelConfig, SegmentationModel

    return SegmentationModel(ModelConfig.from_dict(described))


def _colorization(described: dict[str, Any]) -> nn.Module:
    from pixelwise.methods.colorization.model import ColorizationModel, ColorizerConfig

    return ColorizationModel(ColorizerConfig.from_dict(described))


def _superpixel_zoomout(described: dict[str, Any]) -> nn.Module:
    from pixelwise.methods.zoomout import SuperpixelZoomOut, SuperpixelZoomOutConfig

    return SuperpixelZoomOut(SuperpixelZoomOutConfig.from_dict(described))


def _tag_localiser(described: dict[str, Any]) -> nn.Module:
    from pixelwise.methods.weak import TagLocaliser, TagLocaliserConfig

    return TagLocaliser(TagLocaliserConfig.from_dict(described))


def _region_proposals(described: dict[str, Any]) -> nn.Module:
    from pixelwise.methods.proposals.model import RegionNet, RegionNetConfig

    return RegionNet(RegionNetConfig.from_dict(described))


def _multi_task(described: dict[str, Any]) -> nn.Module:
    from pixelwise.models.multitask import MultiOutputConfig, MultiOutputModel

    return MultiOutputModel(MultiOutputConfig.from_dict(described))


def _late_fusion(described: dict[str, Any]) -> nn.Module:
    from pixelwise.models.fusion import LateFusionConfig, LateFusionModel

    return LateFusionModel(LateFusionConfig.from_dict(described))


def _depth(described: dict[str, Any]) -> nn.Module:
    from pixelwise.methods.depth import DepthModel, DepthModelConfig

    return DepthModel(DepthModelConfig.from_dict(described))


def _depth_seg(described: dict[str, Any]) -> nn.Module:
    from pixelwise.methods.joint import JointModel, JointModelConfig

    return JointModel(JointModelConfig.from_dict(described))


@dataclass(frozen=True)
class Kind:
    """How to rebuild a kind of model (None: a kind the inference commands do not run) and what uses it."""

    build: Callable[[dict[str, Any]], nn.Module] | None
    command: str
    family: str  # what a caller asks for: segmenters all answer to "segmentation"


KINDS: dict[str, Kind] = {
    "segmentation": Kind(_segmentation, "`pixelwise predict` / `eval` / `export`", "segmentation"),
    "zoomout-superpixel": Kind(_superpixel_zoomout, "`pixelwise predict` / `eval`", "segmentation"),
    "colorization": Kind(_colorization, "`pixelwise colorize`", "colorization"),
    "tag-localiser": Kind(_tag_localiser, "`pixelwise weak points`", "tag-localiser"),
    "depth": Kind(
        _depth, "`pixelwise predict` / `export` (depth maps) or `pixelwise depth` (its errors)", "depth"
    ),
    "multi-task": Kind(
        _multi_task, "`pixelwise predict` / `eval` / `export` (its seg output)", "segmentation"
    ),
    "late-fusion": Kind(  # reads RGB + the extra channels: eval / predict take --extra-input
        _late_fusion, "`pixelwise eval` / `predict` / `export` (with --extra-input)", "segmentation"
    ),
    "depth-seg": Kind(  # eval / predict read its seg output; export writes both outputs
        _depth_seg, "`pixelwise eval` / `predict` / `export` (RGB in, seg and depth out)", "segmentation"
    ),
    "mixmatch": Kind(
        None, "`pixelwise train --init-from` (it holds pretrained weights, not a predictor)", "mixmatch"
    ),
    "multi-proxy": Kind(
        None,
        "`pixelwise train --init-from` (a pretrained backbone with proxy heads, not a predictor)",
        "multi-proxy",
    ),
    "distill-student": Kind(
        None, "`pixelwise train --init-from` (a distilled backbone, not a predictor)", "distill-student"
    ),
    "multiproxy-testbench": Kind(
        None,
        "`benchmarks/multiproxy_bench.py` (a test-bench base network, probed there)",
        "multiproxy-testbench",
    ),
    "region-proposals": Kind(_region_proposals, "`pixelwise proposals eval` / `predict`", "region-proposals"),
    "label-ae": Kind(
        None,
        "`pixelwise train --regularizer label-ae --label-ae` (a label model, not a predictor)",
        "label-ae",
    ),
    "autoencoder": Kind(
        None, "`pixelwise train --init-from` (a pretrained encoder, not a predictor)", "autoencoder"
    ),
    "parts-net": Kind(
        None, "`pixelwise parts eval` / `parts show` (a mixture-of-parts classifier)", "parts-net"
    ),
}


def build_model_from_checkpoint(
    path: str | Path, expect: str | tuple[str, ...] | None = None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes (segmentation, superpixel zoom-out, colorization, tag localiser),
    weights loaded, in eval mode.

    ``expect`` names the family (or families) the caller takes: any other kind is a one-line error that names
    its command.
    """
    checkpoint = load_checkpoint(path)
    require_current_geometry(checkpoint.meta, path)
    described = checkpoint.meta.get("model")
    if not isinstance(described, dict):
        raise ValueError(
            f"{path}: the checkpoint does not describe its model (no 'model' entry in its metadata)"
        )
    name = described.get("kind", "segmentation")
    kind = KINDS.get(name)
    if kind is None:
        raise ValueError(f"{path}: unknown model kind {name!r} (written by a newer pixelwise?)")
    families = (expect,) if isinstance(expect, str) else expect
    if families is not None and kind.family not in families:
        wanted = " or ".join(families)
        raise ValueError(f"{path}: a {name} checkpoint, not {wanted}; use it with {kind.command}")
    if kind.build is None:
        raise ValueError(f"{path}: a {name} checkpoint; use it with {kind.command}")
    try:
        model = kind.build(described)
        model.load_state_dict(inference_weights(checkpoint.model_state, model))
    except (TypeError, KeyError, RuntimeError) as err:  # metadata and tensors that do not fit together
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{path}: the checkpoint's weights do not fit the model it describes ({first_line})"
        ) from err
    return model.eval(), checkpoint.meta
