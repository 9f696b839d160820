"""Properties of the procedural scenes that later experiments rely on (geometry, depth, colour cues)."""

import time

import numpy as np
import torch

from pixelwise.data import SyntheticScenes
from pixelwise.data.scene import FAR, ROAD, SKY, render_scene


def _scenes(n: int = 12) -> list:
    ds = SyntheticScenes(n, seed=5, cache=False)
    return [ds[i] for i in range(n)]


def test_layout_and_depth_follow_the_ground_plane():
    for _, target in _scenes():
        seg, depth = target["seg"], target["depth"][0]
        assert (seg[0] != ROAD).all() and (seg[-1] != SKY).all()  # sky above the horizon, ground below
        assert (depth[seg == SKY] == FAR).all()
        rows = torch.nonzero((seg == ROAD).any(1)).flatten()
        road_depth = torch.stack([depth[r][seg[r] == ROAD].max() for r in rows])
        assert (road_depth[1:] <= road_depth[:-1]).all()  # nearer towards the image bottom


def test_colour_comes_from_class_but_grey_level_does_not():
    """Hue separates the classes almost perfectly; luminance alone does not (colorization needs context)."""
    images, segs = zip(*[(image, target["seg"]) for image, target in _scenes()])
    rgb, seg = torch.stack(images).permute(1, 0, 2, 3).flatten(1), torch.stack(segs).flatten()
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    angle = torch.atan2(rgb[0] - luma, rgb[2] - luma)
    hue = torch.stack([angle.cos(), angle.sin()], 1)
    classes = seg.unique()
    hue_centres = torch.stack([hue[seg == c].mean(0) for c in classes])
    luma_centres = torch.stack([luma[seg == c].mean() for c in classes])
    hue_acc = (classes[torch.cdist(hue, hue_centres).argmin(1)] == seg).float().mean()
    luma_acc = (classes[(luma[:, None] - luma_centres).abs().argmin(1)] == seg).float().mean()
    assert hue_acc > 0.9 and luma_acc < 0.5


def test_render_is_fast():
    render_scene(np.random.default_rng(0), 120, 160)
    start = time.perf_counter()
    for i in range(10):
        render_scene(np.random.default_rng(i), 120, 160)
    assert (time.perf_counter() - start) / 10 < 0.05  # ~2-3 ms normally; loose for a busy 2-core CI box
