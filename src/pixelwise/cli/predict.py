"""``pixelwise predict``: colour-coded label PNGs, overlays and class-id PNGs for a list of images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pixelwise.data.rgbd import depth_folder, image_with_depth, write_depth_png
from pixelwise.data.validation import IMAGE_EXTENSIONS, load_image
from pixelwise.engine.checkpoint import inference_scales
from pixelwise.engine.config import PredictConfig
from pixelwise.engine.distributed import resolve_device
from pixelwise.engine.inference import predict_probabilities, rescale
from pixelwise.engine.runtimes import inference_runtime
from pixelwise.methods.kinds import build_model_from_checkpoint
from pixelwise.report.images import add_legend, colorize_depth, colorize_labels, overlay, save_png


def expand_inputs(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such image or folder: {path}")
    if not files:
        raise ValueError(f"no images found in {', '.join(map(str, paths))}")
    seen: dict[str, Path] = {}
    for file in files:  # outputs are named by stem: two inputs of one name would overwrite each other
        if file.stem in seen and seen[file.stem].resolve() != file.resolve():
            raise ValueError(
                f"{seen[file.stem]} and {file} would both be written as {file.stem}_*.png; predict them into "
                "separate --output folders (or rename one)"
            )
        seen[file.stem] = file
    return list({f.resolve(): f for f in files}.values())


def save_ids_png(classes: np.ndarray, ids_lut: np.ndarray | None, path: Path) -> None:
    """Class indices as an 8-bit PNG, or through ``ids_lut`` in the dataset's ids (16-bit when an id is > 255)."""
    if ids_lut is None:
        save_png(classes, path)
        return
    ids = ids_lut[classes]
    if int(ids_lut.max()) <= 255:
        save_png(ids.astype(np.uint8), path)
    else:
        from PIL import Image

        Image.fromarray(ids.astype(np.uint16)).save(path, format="PNG")


@torch.no_grad()
def predict_images(config: PredictConfig, inputs: list[Path]) -> list[Path]:
    """Predict every image; returns the written colour label PNG paths."""
    if not config.checkpoint:
        raise ValueError("predict needs --checkpoint")
    device = resolve_device(config.device)
    model, meta = build_model_from_checkpoint(config.checkpoint, expect=("segmentation", "depth"))
    described = meta["model"]
    if described["kind"] == "depth":
        return predict_depth(model.to(device), meta, config, inputs, device)
    depth_pngs = fusion_depth_folder(config, meta)
    # Joint depth + segmentation and multi-task models also predict depth: written beside the labels.
    has_depth = described["kind"] == "depth-seg" or "depth" in described.get("outputs", {})
    depth_model = model.to(device) if has_depth else None
    model = inference_runtime(model.to(device), config.engine, meta, config.channels_last)
    scales, scales_from = inference_scales(config.scales, meta)
    print(f"predicting at scales {scales} ({scales_from})")
    palette = [tuple(c) for c in meta["dataset"]["palette"]]
    # Trained through a label map (Cityscapes labelId -> trainId, --label-map): NAME_ids.png holds the dataset's
    # own ids, which is what its tools and benchmark servers read; otherwise the class indices.
    source_ids = meta["dataset"].get("source_ids")
    ids_lut = np.asarray(source_ids, dtype=np.uint16) if source_ids is not None else None
    output = Path(config.output)
    written = []
    for path in tqdm(expand_inputs(inputs), desc="predict"):
        image = torch.from_numpy(load_image(path).copy()).permute(2, 0, 1).float() / 255
        network_input = image_with_depth(image, depth_pngs / f"{path.stem}.png") if depth_pngs else image
        batch = network_input[None].to(device)  # grey models convert RGB to lightness themselves
        probs = predict_probabilities(model, batch, scales, config.flip, config.window)
        labels = probs.argmax(dim=1)[0].cpu()
        names = meta["dataset"]["class_names"]
        coloured = add_legend(colorize_labels(labels, palette), names, palette, [labels])
        written.append(save_png(coloured, output / f"{path.stem}_labels.png"))
        shown = add_legend(overlay(image, labels, palette, config.alpha), names, palette, [labels])
        save_png(shown, output / f"{path.stem}_overlay.png")
        save_ids_png(labels.numpy().astype(np.uint8), ids_lut, output / f"{path.stem}_ids.png")
        if depth_model is not None:  # colour-mapped for people, 16-bit millimetres for tools
            depth = depth_model(rescale(batch, scales[0]))["depth"].float()  # at the run's evaluation scale
            depth = F.interpolate(depth, size=image.shape[-2:], mode="bilinear", align_corners=False)[
                0, 0
            ].cpu()
            save_png(colorize_depth(depth), output / f"{path.stem}_depth.png")
            write_depth_png(output / f"{path.stem}_depth_mm.png", depth)
    print(f"wrote {len(written)} predictions to {output}")
    return written


def fusion_depth_folder(config: PredictConfig, meta: dict) -> Path | None:
    """The depth PNG folder a fusion run (train --fusion early / late) reads beside each image, else None."""
    fusion = meta.get("config", {}).get("fusion", "none")
    if fusion == "none":
        return None
    folder = depth_folder(config.extra_input)
    if folder is None:
        raise ValueError(
            f"{config.checkpoint}: a {fusion}-fusion model reads RGB + depth: pass --extra-input FOLDER of 16-bit "
            "millimetre depth PNGs named by each image's stem"
        )
    return Path(folder)


@torch.no_grad()
def predict_depth(
    model: torch.nn.Module, meta: dict, config: PredictConfig, inputs: list[Path], device: torch.device
) -> list[Path]:
    """A depth run (``pixelwise depth --input rgb``): NAME_depth.png (colour map) and NAME_depth_mm.png (16-bit
    millimetres) per image, at the run's evaluation scale (flips, tiles and several scales do not apply)."""
    reads = meta["model"].get("depth_input", "rgb")
    if reads != "rgb":
        raise ValueError(
            f"{config.checkpoint}: a depth model of --input {reads} reads label maps, which predict does not "
            "have; predict runs --input rgb depth models (score the others with `pixelwise depth`)"
        )
    [scale, *_], scales_from = inference_scales(config.scales, meta)
    print(f"predicting depth at scale {scale} ({scales_from})")
    output = Path(config.output)
    written = []
    for path in tqdm(expand_inputs(inputs), desc="predict depth"):
        image = torch.from_numpy(load_image(path).copy()).permute(2, 0, 1).float() / 255
        depth = model(rescale(image[None].to(device), scale))["depth"].float()
        depth = F.interpolate(depth, size=image.shape[-2:], mode="bilinear", align_corners=False)[0, 0].cpu()
        written.append(save_png(colorize_depth(depth), output / f"{path.stem}_depth.png"))
        write_depth_png(output / f"{path.stem}_depth_mm.png", depth)
    print(f"wrote {len(written)} depth maps to {output}")
    return written
