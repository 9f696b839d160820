"""Images for reports: colourised label maps, overlays, side-by-side panels and confusion-matrix heat maps."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Color = tuple[int, int, int]
_TITLE_HEIGHT = 18
_GAP = 4


def _to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def colorize_labels(
    label: torch.Tensor | np.ndarray,
    palette: Sequence[Color],
    ignore_index: int = 255,
    ignore_color: Color = (0, 0, 0),
) -> np.ndarray:
    """Map an [H, W] integer label map to uint8 RGB [H, W, 3]: class ``k`` -> ``palette[k]``.

    ``ignore_index`` pixels get ``ignore_color``; any other label without a palette entry raises ``ValueError``.
    """
    lab = _to_numpy(label).astype(np.int64)
    if lab.ndim != 2:
        raise ValueError(f"label must be [H, W], got shape {lab.shape}")
    colors = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    if len(colors) == 0:
        raise ValueError("palette is empty")
    ignore = lab == ignore_index
    unknown = ~ignore & ((lab < 0) | (lab >= len(colors)))
    if unknown.any():
        raise ValueError(f"labels without a palette colour: {sorted(np.unique(lab[unknown]).tolist())[:10]}")
    out = colors[np.where(ignore, 0, lab)]
    out[ignore] = ignore_color
    return out


def to_uint8_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """[3, H, W] float tensor in [0, 1] (or an [H, W, 3] array, uint8 or float in [0, 1]) -> uint8 [H, W, 3]."""
    arr = _to_numpy(image)
    if isinstance(image, torch.Tensor) and arr.ndim == 3 and arr.shape[0] == 3:
        arr = arr.transpose(1, 2, 0)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"image must be [3, H, W] tensor or [H, W, 3] array, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    return (np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def overlay(
    image: torch.Tensor | np.ndarray,
    label: torch.Tensor | np.ndarray,
    palette: Sequence[Color],
    alpha: float = 0.5,
    ignore_index: int = 255,
) -> np.ndarray:
    """Blend label colours over the image: ``(1 - alpha) * image + alpha * colour``; ignore pixels unchanged."""
    img = to_uint8_image(image)
    colors = colorize_labels(label, palette, ignore_index)
    if colors.shape != img.shape:
        raise ValueError(f"image {img.shape[:2]} and label {colors.shape[:2]} sizes differ")
    blended = (1.0 - alpha) * img.astype(np.float64) + alpha * colors.astype(np.float64)
    out = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    ignore = _to_numpy(label) == ignore_index
    out[ignore] = img[ignore]
    return out


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 [H, W, 3] (or [H, W]) array as PNG, creating parent directories."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(path, format="PNG")
    return path


def add_legend(
    rgb: np.ndarray,
    class_names: Sequence[str],
    palette: Sequence[Color],
    labels: Sequence[torch.Tensor | np.ndarray] = (),
    ignore_index: int = 255,
) -> np.ndarray:
    """``rgb`` [H, W, 3] with a legend strip below: a swatch and the name of every class found in ``labels``
    (all classes when none are given), wrapped to the image width."""
    present = sorted({int(v) for lab in labels for v in np.unique(_to_numpy(lab))} - {ignore_index})
    shown = [c for c in (present if labels else range(len(class_names))) if c < len(class_names)]
    swatch, pad, line = 10, 4, 14
    font = ImageFont.load_default()
    width = rgb.shape[1]
    x, y, items = pad, pad, []
    for cls in shown:
        text = class_names[cls]
        advance = swatch + 4 + int(font.getlength(text)) + 3 * pad
        if x + advance > width and x > pad:
            x, y = pad, y + line
        items.append((cls, text, x, y))
        x += advance
    strip = Image.new("RGB", (width, y + line + pad), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for cls, text, x, y in items:
        draw.rectangle([x, y + 1, x + swatch, y + 1 + swatch], fill=tuple(palette[cls]), outline=(0, 0, 0))
        draw.text((x + swatch + 4, y), text, fill=(0, 0, 0), font=font)
    return np.concatenate([np.asarray(rgb, dtype=np.uint8), np.asarray(strip)], axis=0)


def save_panel(images: Sequence[np.ndarray], titles: Sequence[str], path: str | Path) -> Path:
    """Save images side by side (tops aligned, white background) with a title above each one."""
    if len(images) != len(titles) or not images:
        raise ValueError(f"need matching non-empty images and titles, got {len(images)} and {len(titles)}")
    height = max(im.shape[0] for im in images) + _TITLE_HEIGHT
    width = sum(im.shape[1] for im in images) + _GAP * (len(images) - 1)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for im, title in zip(images, titles):
        canvas.paste(
            Image.fromarray(np.ascontiguousarray(im, dtype=np.uint8)).convert("RGB"), (x, _TITLE_HEIGHT)
        )
        draw.text((x + 2, 3), title, fill=(0, 0, 0))
        x += im.shape[1] + _GAP
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")
    return path


def save_colorization_panel(colour: torch.Tensor, original: torch.Tensor, path: str | Path) -> Path:
    """grey input | colorization | original for one [3, H, W] image in [0, 1] (grey = L = mean of RGB)."""
    grey = original.mean(dim=0, keepdim=True).expand_as(original)
    panels = [to_uint8_image(x.detach().cpu()) for x in (grey, colour, original)]
    return save_panel(panels, ["grey input", "colorization", "original"], path)


def _normalized(cm: np.ndarray, normalize: str | None) -> np.ndarray:
    cm = cm.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalize == "true":  # rows: fraction of each ground-truth class
            return cm / cm.sum(axis=1, keepdims=True)
        if normalize == "pred":  # columns: fraction of each predicted class
            return cm / cm.sum(axis=0, keepdims=True)
        if normalize == "all":
            return cm / cm.sum()
    if normalize is None:
        return cm
    raise ValueError(f"normalize must be 'true', 'pred', 'all' or None, got {normalize!r}")


def save_confusion_png(
    cm: torch.Tensor | np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    normalize: str | None = "true",
) -> Path:
    """Heat map of the confusion matrix (rows ground truth), annotated values, mean IU (§3.4.1) in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pixelwise.metrics.confusion import segmentation_scores

    counts = torch.as_tensor(_to_numpy(cm))
    mean_iou = segmentation_scores(counts, class_names)["mean_iou"]
    values = _normalized(counts.numpy(), normalize)
    n = len(class_names)
    size = max(4.0, 0.5 * n + 2.0)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(np.nan_to_num(values), cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=class_names, rotation=90)
    ax.set_yticks(range(n), labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    _annotate(ax, values, normalize is not None)
    iou_text = "nan" if math.isnan(mean_iou) else f"{100 * mean_iou:.1f}"
    ax.set_title(f"confusion ({normalize or 'counts'}), mean IU {iou_text}")
    return save_figure(fig, path, dpi=100)


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Lay out, save as PNG (creating the folder) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    try:
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return path


def _annotate(ax: Axes, values: np.ndarray, fractional: bool) -> None:
    finite = values[np.isfinite(values)]
    threshold = 0.5 * (finite.max() if finite.size else 1.0)
    fontsize = max(4, min(9, 120 // max(1, values.shape[0])))
    for (i, j), v in np.ndenumerate(values):
        if not np.isfinite(v):
            continue
        text = f"{v:.2f}" if fractional else f"{int(v)}"
        color = "white" if v > threshold else "black"
        ax.text(j, i, text, ha="center", va="center", color=color, fontsize=fontsize)


def colorize_depth(
    depth: torch.Tensor | np.ndarray, near: float = 1.0, far: float = 80.0, colormap: str = "turbo"
) -> np.ndarray:
    """Depth [H, W] (or [1, H, W]) in metres -> uint8 RGB [H, W, 3]: log depth from ``near`` to ``far`` through
    ``colormap`` (near = the map's low end); unknown depth (<= 0) is black. A log scale, because metric errors
    grow with distance and a linear one would paint everything beyond a few metres the same colour."""
    from matplotlib import colormaps

    values = _to_numpy(depth).astype(np.float64).squeeze()
    if values.ndim != 2:
        raise ValueError(f"depth must be [H, W], got shape {values.shape}")
    known = values > 0
    t = (np.log(np.clip(values, near, far)) - math.log(near)) / (math.log(far) - math.log(near))
    out = (colormaps[colormap](np.where(known, t, 0.0))[..., :3] * 255 + 0.5).astype(np.uint8)
    out[~known] = 0
    return out


def depth_error_map(
    prediction: torch.Tensor | np.ndarray, truth: torch.Tensor | np.ndarray, worst: float = 0.5
) -> np.ndarray:
    """Relative error |prediction - truth| / truth per pixel -> uint8 RGB (magma, 0 to ``worst`` and beyond);
    pixels without ground truth are black."""
    from matplotlib import colormaps

    pred = _to_numpy(prediction).astype(np.float64).squeeze()
    gt = _to_numpy(truth).astype(np.float64).squeeze()
    known = gt > 0
    relative = np.where(known, np.abs(pred - gt) / np.where(known, gt, 1.0), 0.0)
    out = (colormaps["magma"](np.clip(relative / worst, 0, 1))[..., :3] * 255 + 0.5).astype(np.uint8)
    out[~known] = 0
    return out


def save_depth_panel(
    image: torch.Tensor,
    truth: torch.Tensor,
    prediction: torch.Tensor,
    path: str | Path,
    segmentation: tuple[torch.Tensor, torch.Tensor, Sequence[Color]] | None = None,
) -> Path:
    """Image | GT depth | predicted depth | relative error (colour-mapped PNG); with ``segmentation`` =
    (labels, predicted labels, palette) the two label maps follow (the joint model)."""
    images = [to_uint8_image(image[:3]), colorize_depth(truth), colorize_depth(prediction),
              depth_error_map(prediction, truth)]  # fmt: skip
    titles = ["image", "depth (GT)", "depth (pred)", "|err|/GT (0-50%)"]
    if segmentation is not None:
        labels, predicted, palette = segmentation
        images += [colorize_labels(labels, palette), colorize_labels(predicted, palette)]
        titles += ["labels (GT)", "labels (pred)"]
    return save_panel(images, titles, path)
