"""Report images: colourised labels, overlays, panels and the confusion-matrix PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.report import colorize_labels, overlay, save_confusion_png, save_panel, save_png

PALETTE = [(128, 64, 128), (0, 0, 192), (64, 192, 0)]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _label() -> torch.Tensor:
    return torch.tensor([[0, 1, 2], [2, 255, 0]])


def test_colorize_maps_classes_to_palette_and_ignore_to_ignore_color() -> None:
    out = colorize_labels(_label(), PALETTE, ignore_color=(9, 9, 9))
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    assert [tuple(int(c) for c in out[0, k]) for k in range(3)] == PALETTE
    assert tuple(out[1, 0]) == PALETTE[2]
    assert tuple(out[1, 1]) == (9, 9, 9)
    assert np.array_equal(colorize_labels(_label().numpy(), PALETTE, ignore_color=(9, 9, 9)), out)


def test_colorize_rejects_labels_without_colour() -> None:
    with pytest.raises(ValueError, match="palette"):
        colorize_labels(torch.tensor([[0, 3]]), PALETTE)


def test_overlay_alpha_extremes_and_ignore() -> None:
    image = torch.rand(3, 2, 3)
    as_uint8 = (image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(overlay(image, _label(), PALETTE, alpha=0.0), as_uint8)
    full = overlay(as_uint8, _label(), PALETTE, alpha=1.0)
    colors = colorize_labels(_label(), PALETTE)
    assert np.array_equal(full[0], colors[0])
    assert tuple(full[1, 1]) == tuple(as_uint8[1, 1])  # ignore pixel shows the image


def test_save_png_creates_parent_dirs(tmp_path: Path) -> None:
    path = save_png(colorize_labels(_label(), PALETTE), tmp_path / "a" / "b" / "label.png")
    assert np.array_equal(np.asarray(Image.open(path)), colorize_labels(_label(), PALETTE))


def test_save_panel_lays_images_side_by_side(tmp_path: Path) -> None:
    images = [np.zeros((20, 30, 3), np.uint8), np.full((10, 15, 3), 255, np.uint8)]
    path = save_panel(images, ["image", "prediction"], tmp_path / "panel.png")
    with Image.open(path) as panel:
        assert panel.format == "PNG"
        assert panel.width >= 45 and panel.height >= 20


def test_confusion_png_is_valid(tmp_path: Path) -> None:
    cm = torch.tensor([[3, 1, 0], [0, 2, 1], [1, 0, 0]])
    path = save_confusion_png(cm, ["road", "car", "sky"], tmp_path / "out" / "confusion.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as im:
        im.verify()


def test_legend_names_exactly_the_classes_drawn_and_palettes_stay_apart() -> None:
    import numpy as np

    from pixelwise.data.info import default_palette
    from pixelwise.report.images import add_legend

    palette = default_palette(40)
    assert len(set(palette)) == 40
    # Every pair of the first 11 (CamVid-sized) colours differs clearly (the VOC palette had (128,0,0) vs (192,0,0)).
    first = np.array(palette[:11], dtype=float)
    gaps = np.abs(first[:, None] - first[None]).sum(-1)[np.triu_indices(11, 1)]
    assert gaps.min() > 60
    image = np.zeros((20, 200, 3), dtype=np.uint8)
    labels = np.array([[0, 2], [2, 255]])
    with_legend = add_legend(image, ["a", "b", "c"], palette, [labels])
    assert with_legend.shape[0] > 20 and (with_legend[:20] == 0).all()  # the image itself is untouched
    strip = with_legend[20:]
    colours = {tuple(c) for c in strip.reshape(-1, 3)}
    assert palette[0] in colours and palette[2] in colours and palette[1] not in colours  # only classes drawn
