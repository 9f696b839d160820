"""Relative motion (V, Larsson §4.7.1): pair sampling, equiprobable bins, invariance, the head, and its data
(exact synthetic flow under ego-motion, V-syn; Farnebäck between consecutive frames, V-cam)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.data import SyntheticScenes
from pixelwise.data.flow import (
    FramePairs,
    SyntheticFlow,
    camvid_frame_pairs,
    farneback_flow,
    hflip_flow,
    resize_flow,
)
from pixelwise.data.scene import (
    FAR,
    Camera,
    EgoMotion,
    ego_flow,
    ego_project,
    render_scene_full,
    render_second_frame,
)
from pixelwise.data.validation import DatasetError
from pixelwise.methods.proxies.relflow import (
    BINS,
    RelativeFlowProxy,
    bin_index,
    default_sigma,
    fit_bin_edges,
    pair_points,
    relative_flow,
)
from pixelwise.models.backbones import create_backbone
from pixelwise.models.taps import FeatureTaps

cv2.setNumThreads(1)  # the CI box has 2 busy cores


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------- bins and targets
def test_bins_are_equiprobable_on_the_fitting_set() -> None:
    values = torch.rand(100_003, generator=_seeded(0)) ** 3 * 20  # skewed, like flow amplitudes
    edges = fit_bin_edges(values)
    assert edges.shape == (BINS - 1,) and bool((edges[1:] > edges[:-1]).all())
    counts = torch.bincount(bin_index(values, edges), minlength=BINS)
    assert counts.numel() == BINS
    assert (counts - values.numel() / BINS).abs().max() <= 1, counts
    # Bin k is [edge_{k-1}, edge_k): an edge value opens the next bin; below/above everything: first/last bin.
    assert bin_index(edges[3:4], edges).item() == 4
    assert bin_index(torch.tensor([-1.0, 1e9]), edges).tolist() == [0, BINS - 1]


def test_proxy_fits_its_edges_once_and_keeps_them_in_the_checkpoint() -> None:
    flows = SyntheticFlow(6, size=(48, 64), seed=1)
    proxy = RelativeFlowProxy({"a": 4}, {"a": _grid(1)}, hidden=8, pairs=16)
    assert not proxy.fitted
    edges = proxy.fit_from(flows, per_image=4000)
    assert proxy.fitted and torch.equal(proxy.edges, edges)
    assert torch.equal(proxy.fit_from(flows, per_image=4000), edges)  # deterministic
    # Fresh pairs from the same sampler land about equally in every bin (equiprobable under training targets).
    gen = _seeded(3)
    targets = []
    for i in range(len(flows)):
        flow = flows[i][1]["flow"][None]
        targets.append(proxy.targets(flow, *proxy.sample_pairs(flow, gen)))
        targets.append(proxy.targets(flow, *pair_points(1, (48, 64), 4000, None, gen)))
    share = torch.bincount(torch.cat([t.flatten() for t in targets]), minlength=BINS).float()
    share = share / share.sum()
    assert share.min() > 0.4 / BINS and share.max() < 1.8 / BINS, share
    restored = RelativeFlowProxy({"a": 4}, {"a": _grid(1)}, hidden=8)
    restored.load_state_dict(proxy.state_dict())
    assert "edges" in proxy.state_dict() and torch.equal(restored.edges, edges)


def test_translation_parallel_to_the_image_plane_gives_zero_targets() -> None:
    camera = Camera(horizon=40.0, vx=70.0, f=128.0)
    depth = np.full((96, 128), 12.0, np.float32)  # a wall facing the camera
    flow = torch.from_numpy(ego_flow(depth, camera, EgoMotion(right=0.45, up=0.3)))
    torch.testing.assert_close(flow[0], torch.full((96, 128), -128 * 0.45 / 12))  # the wall slides left
    torch.testing.assert_close(flow[1], torch.full((96, 128), 128 * 0.3 / 12))  # and down (camera went up)
    p1, p2 = pair_points(3, (96, 128), 500, generator=_seeded(1))
    assert relative_flow(flow[None].expand(3, -1, -1, -1), p1, p2).abs().max() < 1e-4
    # Any constant flow added changes no target; moving towards the wall (expansion) does.
    random = torch.randn(3, 2, 96, 128, generator=_seeded(2)) * 4
    shifted = random + torch.tensor([7.5, -3.0]).view(1, 2, 1, 1)
    torch.testing.assert_close(
        relative_flow(shifted, p1, p2), relative_flow(random, p1, p2), atol=1e-4, rtol=0
    )
    zoom = torch.from_numpy(ego_flow(depth, camera, EgoMotion(forward=1.0)))[None].expand(3, -1, -1, -1)
    assert relative_flow(zoom, p1, p2).mean() > 1.0


# ------------------------------------------------------------------------------------------- pair sampling
def test_pair_points_stay_in_the_image_and_follow_sigma() -> None:
    size, sigma = (60, 80), 6.0
    p1, p2 = pair_points(4, size, 5000, sigma, _seeded(0))
    assert p1.dtype == p2.dtype == torch.int64 and p1.shape == p2.shape == (4, 5000, 2)
    for p in (p1, p2):
        assert (p >= 0).all() and (p[..., 0] < 60).all() and (p[..., 1] < 80).all()
    rows = torch.bincount(p1[..., 0].flatten(), minlength=60).float()
    assert rows.min() > 0.7 * rows.mean() and rows.max() < 1.3 * rows.mean()  # p1 uniform
    # Away from the borders the offsets are untruncated: zero-mean, independent, spread sigma (plus rounding).
    far = ((p1[..., 0] - 30).abs() <= 30 - 4 * sigma) & ((p1[..., 1] - 40).abs() <= 40 - 4 * sigma)
    offsets = (p2 - p1)[far].float()
    expected = math.sqrt(sigma**2 + 1 / 12)
    assert offsets.mean(0).abs().max() < 0.3
    assert ((offsets.std(0) - expected).abs() < 0.05 * expected).all(), offsets.std(0)
    assert abs(torch.corrcoef(offsets.T)[0, 1]) < 0.05
    # Deterministic per generator; sigma defaults to 1/8 of the shorter side.
    assert torch.equal(
        pair_points(4, size, 50, sigma, _seeded(0))[1], pair_points(4, size, 50, sigma, _seeded(0))[1]
    )
    assert default_sigma((120, 160)) == 15.0
    default = pair_points(2, (120, 160), 400, None, _seeded(1))[1]
    assert torch.equal(default, pair_points(2, (120, 160), 400, 15.0, _seeded(1))[1])


def test_pixels_with_unknown_flow_are_never_sampled() -> None:
    flow = torch.randn(2, 2, 40, 50, generator=_seeded(0))
    flow[0, 0, :, :25] = float("nan")  # image 0: only the right half is known
    flow[1, 1, :20] = float("nan")  # image 1: only the bottom half
    proxy = RelativeFlowProxy({"a": 4}, {"a": _grid(1)}, hidden=8, pairs=2000)
    p1, p2 = proxy.sample_pairs(flow, _seeded(1))
    for p in (p1, p2):
        assert (p[0, :, 1] >= 25).all() and (p[1, :, 0] >= 20).all()
    assert (p2 != p1).any(dim=-1).float().mean() > 0.9  # the fallback p2 = p1 is rare
    assert torch.isfinite(relative_flow(flow, p1, p2)).all()
    flow[1] = float("nan")
    with pytest.raises(ValueError, match=r"image\(s\) \[1\] of the batch have no pixel with known"):
        proxy.sample_pairs(flow, _seeded(1))


# ------------------------------------------------------------------------------------------- head and loss
def _grid(stride: int):
    from pixelwise.models.receptive_field import Grid

    return Grid(stride)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    flows = SyntheticFlow(4, size=(48, 64), seed=2)
    items = [flows[i] for i in range(4)]
    return torch.stack([image for image, _ in items]), torch.stack([t["flow"] for _, t in items])


def test_loss_reaches_the_backbone_and_a_few_adam_steps_lower_it(batch) -> None:
    torch.manual_seed(0)
    images, flow = batch
    backbone = create_backbone("resnet18", 3, 32)
    taps = FeatureTaps(backbone, ("conv1", "layer1", "layer2"))
    proxy = RelativeFlowProxy.for_taps(taps, hidden=64, pairs=64)
    with pytest.raises(RuntimeError, match="bin edges not fitted; call proxy.fit_from"):
        proxy.loss(taps, images, flow)
    proxy.fit_from(flow)
    assert all(
        k.startswith(("head.", "edges")) for k in proxy.state_dict()
    )  # checkpoints keep taps.backbone.*
    optimiser = torch.optim.Adam([*taps.parameters(), *proxy.parameters()], lr=1e-3)
    losses = []
    for step in range(12):
        out = proxy.loss(taps, images, flow, generator=_seeded(7))  # the same pairs every step
        optimiser.zero_grad()
        out["loss"].backward()
        if step == 0:
            assert abs(out["loss"].item() - math.log(BINS)) < 0.5  # starts near chance
            assert backbone.conv1.weight.grad is not None and backbone.conv1.weight.grad.abs().sum() > 0
        assert 0.0 <= float(out["accuracy"]) <= 1.0 and not out["accuracy"].requires_grad
        optimiser.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_grey_input_and_bad_shapes(batch) -> None:
    images, flow = batch
    seen = {}

    def taps(x: torch.Tensor) -> dict[str, torch.Tensor]:
        seen["x"] = x
        return {"a": x[:, :1] * 2}

    proxy = RelativeFlowProxy({"a": 1}, {"a": _grid(1)}, hidden=8, grey=True)
    proxy.fit_from(flow)
    out = proxy.loss(taps, images, flow)
    assert torch.isfinite(out["loss"]) and torch.equal(seen["x"][:, 0], seen["x"][:, 2])
    with pytest.raises(ValueError, match="differ in batch or size"):
        proxy.loss(taps, images, flow[..., :40])


# ------------------------------------------------------------------------------------------ V-syn: exact flow
def _scene(seed: int, size=(96, 128)):
    return render_scene_full(np.random.default_rng([seed, 11]), *size)


def _warp_back(frame2: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """frame2 sampled at p + flow(p) (bilinear): frame 1 again where the flow is right."""
    h, w = flow.shape[1:]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(frame2.astype(np.float32), xx + flow[0], yy + flow[1], cv2.INTER_LINEAR)


def _co_visible(scene, motion, seg2, depth2) -> np.ndarray:
    """First-frame pixels whose point the second frame sees: inside it, not occluded, away from edges."""
    row, col, z2 = ego_project(scene.depth, scene.camera, motion)
    h, w = scene.seg.shape
    inside = (row >= 1) & (row < h - 1) & (col >= 1) & (col < w - 1)
    r, c = np.clip(np.floor(row).astype(int), 0, h - 1), np.clip(np.floor(col).astype(int), 0, w - 1)
    z = np.minimum(z2, FAR)
    seen = inside & (seg2[r, c] == scene.seg) & (np.abs(depth2[r, c] - z) < 0.03 * z)
    kernel = np.ones((3, 3), np.uint8)
    interior = cv2.dilate(scene.seg, kernel) == cv2.erode(scene.seg, kernel)  # bilinear reads one surface
    return seen & interior


def test_no_motion_repaints_the_first_frame_exactly() -> None:
    for seed in range(3):
        scene = _scene(seed)
        image, seg, depth = render_second_frame(scene, EgoMotion())
        assert np.array_equal(image, scene.image) and np.array_equal(seg, scene.seg)
        np.testing.assert_allclose(depth, scene.depth, rtol=1e-5)
        assert not np.abs(ego_flow(scene.depth, scene.camera, EgoMotion())).max() > 1e-9


def test_full_description_keeps_existing_renders() -> None:
    dataset = SyntheticScenes(3, size=(60, 80), seed=4, cache=False)
    flows = SyntheticFlow(3, size=(60, 80), seed=4)
    for i in range(3):
        scene, (image_u8, seg, depth) = dataset.scene(i), dataset.load_raw(i)
        assert np.array_equal(scene.image.transpose(2, 0, 1), image_u8.numpy())
        assert np.array_equal(scene.seg, seg.numpy()) and np.array_equal(scene.depth, depth.numpy())
        torch.testing.assert_close(flows[i][0], dataset[i][0].as_subclass(torch.Tensor))  # same first frame


def test_exact_flow_agrees_with_the_second_rendered_frame() -> None:
    motion = EgoMotion(forward=0.6, right=-0.15, yaw=math.radians(-0.7))
    for seed in range(3):
        scene = _scene(seed)
        image2, seg2, depth2 = render_second_frame(scene, motion)
        flow = ego_flow(scene.depth, scene.camera, motion)
        seen = _co_visible(scene, motion, seg2, depth2)
        assert seen.mean() > 0.5
        warped = np.abs(_warp_back(image2, flow) - scene.image).mean(-1)[seen]
        unmoved = np.abs(image2.astype(np.float32) - scene.image).mean(-1)[seen]
        # Left: texture resampling (bilinear, per-pixel noise, window edges); the wrong flow is far worse.
        assert warped.mean() < 0.4 * unmoved.mean() and np.median(warped) < 3, (warped.mean(), unmoved.mean())
        wrong = np.abs(_warp_back(image2, -flow) - scene.image).mean(-1)[seen]
        assert wrong.mean() > 2 * warped.mean()


def test_a_known_point_moves_exactly_by_its_flow() -> None:
    """Sideways by 3 z / f: the points at depth z shift by exactly 3 px, so their colours reappear there."""
    scene = _scene(5)
    z = max((p.obj.z for p in scene.objects), key=lambda z: (scene.depth == np.float32(z)).sum())  # most seen
    f = scene.camera.f
    motion = EgoMotion(right=-3 * z / f)
    flow = ego_flow(scene.depth, scene.camera, motion)
    on = scene.depth == np.float32(z)
    np.testing.assert_allclose(flow[0][on], 3.0, atol=1e-4)
    np.testing.assert_allclose(flow[1][on], 0.0, atol=1e-4)
    image2, _, depth2 = render_second_frame(scene, motion)
    rows, cols = np.nonzero(on[:, :-3] & (depth2[:, 3:] == np.float32(z)))
    assert len(rows) > 20
    assert np.array_equal(image2[rows, cols + 3], scene.image[rows, cols])


def test_flow_geometry_yaw_and_forward_motion() -> None:
    scene = _scene(6)
    cam = scene.camera
    # A pure turn moves every point alike whatever its depth: at the vanishing point by -f tan(yaw).
    turned = ego_flow(scene.depth, cam, EgoMotion(yaw=0.02))
    far_away = ego_flow(np.full_like(scene.depth, 1e4), cam, EgoMotion(yaw=0.02))
    np.testing.assert_allclose(turned, far_away, atol=1e-4)
    r, c = int(cam.horizon), int(cam.vx)
    assert abs(turned[0, r, c] + cam.f * math.tan(0.02)) < 0.05 * cam.f * 0.02
    # Forward: a ground pixel at depth Z moves to row horizon + f h / (Z - t) (expansion from the horizon).
    ground = scene.depth.shape[0] - 1
    z = float(scene.depth[ground, c])
    flow = ego_flow(scene.depth, cam, EgoMotion(forward=0.5))
    expected = cam.horizon + cam.f * 1.5 / (z - 0.5) - (ground + 0.5)
    assert abs(flow[1, ground, c] - expected) < 1e-3 and flow[1, ground, c] > 0
    # Sky (depth FAR) is at infinity: no flow under translation. Behind the camera: NaN.
    sky = scene.depth >= FAR
    assert np.abs(flow[:, sky]).max() < 1e-6
    assert np.isnan(ego_flow(scene.depth, cam, EgoMotion(forward=z + 1.0))[:, ground, c]).all()
    with pytest.raises(ValueError, match=r"\|yaw\| < 0.5 rad"):
        EgoMotion(yaw=1.0)


def test_farneback_on_the_rendered_frames_roughly_agrees_with_the_exact_flow() -> None:
    motion = EgoMotion(forward=0.6, right=-0.15, yaw=math.radians(-0.7))
    for seed in range(2):
        scene = _scene(seed)
        image2, seg2, depth2 = render_second_frame(scene, motion)
        exact = ego_flow(scene.depth, scene.camera, motion)
        estimate = farneback_flow(scene.image, image2).numpy()
        grey = cv2.cvtColor(scene.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        textured = np.hypot(*np.gradient(grey)) > 3
        where = _co_visible(scene, motion, seg2, depth2) & textured
        error = np.median(np.hypot(*(estimate - exact))[where])
        magnitude = np.median(np.hypot(*exact)[where])
        assert magnitude > 1.5 and error < 0.35 * magnitude, (error, magnitude)
        # The conventions agree: negated or swapped (dy, dx) flow is much further off.
        assert np.median(np.hypot(*(estimate + exact))[where]) > 4 * error
        assert np.median(np.hypot(*(estimate - exact[::-1]))[where]) > 4 * error


def test_synthetic_flow_dataset_is_deterministic_and_in_range() -> None:
    a = SyntheticFlow(5, size=(48, 64), seed=3, with_next=True)
    b = SyntheticFlow(5, size=(48, 64), seed=3, cache=False)
    image, target = a[4]
    assert (
        image.shape == (3, 48, 64) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    )
    assert target["flow"].shape == (2, 48, 64) and target["next"].shape == (3, 48, 64)
    assert torch.equal(b[4][1]["flow"], target["flow"]) and torch.equal(b[4][0], image)
    assert not torch.equal(SyntheticFlow(5, size=(48, 64), seed=4)[4][0], image)
    motions = [a.motion(i) for i in range(5)]
    assert all(
        0.2 <= m.forward <= 1.0 and abs(m.right) <= 0.2 and abs(m.yaw) <= math.radians(1) for m in motions
    )
    assert len({m.forward for m in motions}) == 5
    assert torch.isfinite(target["flow"]).all()
    torch.testing.assert_close(
        target["flow"], torch.from_numpy(ego_flow(a.scene(4).depth, a.scene(4).camera, motions[4]))
    )


# ------------------------------------------------------------------------------------------- V-cam: Farnebäck
def test_farneback_convention_on_a_shifted_texture() -> None:
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (64, 80)).astype(np.float32), (0, 0), 2.0)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    moved = np.roll(texture, shift=(1, 2), axis=(0, 1))  # content moves 2 px right, 1 px down
    flow = farneback_flow(texture, moved)[:, 16:-16, 16:-16]
    assert abs(flow[0].median() - 2) < 0.2 and abs(flow[1].median() - 1) < 0.2
    assert (
        torch.equal(hflip_flow(hflip_flow(flow)), flow) and (hflip_flow(flow)[0] == -flow[0].flip(-1)).all()
    )


def _write_clip(folder, names) -> tuple:
    scene = _scene(7, size=(72, 96))
    motion = EgoMotion(forward=0.4, right=0.1)
    second = render_second_frame(scene, motion)[0]
    folder.mkdir()
    for name, image in zip(names, [scene.image, second, scene.image, second]):
        Image.fromarray(image).save(folder / name)
    return scene, motion


def test_frame_pairs_from_a_folder(tmp_path) -> None:
    scene, motion = _write_clip(tmp_path / "clip", ["c_0009.png", "c_0010.png", "c_0012.png", "c_0013.png"])
    pairs = FramePairs(tmp_path / "clip")
    # 9 -> 10 and 12 -> 13 are consecutive; 10 -> 12 is a gap (natural order: 9 before 10).
    assert [(a.name, b.name) for a, b in pairs.pairs] == [
        ("c_0009.png", "c_0010.png"),
        ("c_0012.png", "c_0013.png"),
    ]
    image, target = pairs[0]
    assert image.shape == (3, 72, 96) and target["flow"].shape == (2, 72, 96)
    exact = ego_flow(scene.depth, scene.camera, motion)
    seen = np.isfinite(exact).all(0)
    assert np.median(np.hypot(*(target["flow"].numpy() - exact))[seen]) < 0.5 * np.median(
        np.hypot(*exact)[seen]
    )
    small = FramePairs(tmp_path / "clip", size=(36, 48), length=1)
    assert len(small) == 1
    _, small_target = small[0]
    torch.testing.assert_close(small_target["flow"], resize_flow(target["flow"], (36, 48)))
    # Halving the frame halves the flow (in its own pixels).
    assert abs(small_target["flow"].abs().mean() / target["flow"].abs().mean() - 0.5) < 0.05


def test_frame_pairs_errors_name_the_folder(tmp_path) -> None:
    with pytest.raises(DatasetError, match=r"missing: frame folder not found"):
        FramePairs(tmp_path / "missing")
    _write_clip(tmp_path / "gaps", ["a_0001.png", "a_0003.png", "a_0004.png", "b_0002.png"][:1])
    with pytest.raises(DatasetError, match=r"gaps: 1 frame\(s\) but no consecutive pair"):
        FramePairs(tmp_path / "gaps")
    with pytest.raises(DatasetError, match=r"val.txt: CamVid list file not found"):
        camvid_frame_pairs(tmp_path)


@pytest.mark.camvid
def test_camvid_val_clip_gives_100_pairs_of_small_finite_flow(camvid_root) -> None:
    pairs = camvid_frame_pairs(camvid_root)
    assert len(pairs) == 100  # 101 frames of one 15 Hz clip, numbered every other camera frame
    numbers = [(int(a.stem[-5:]), int(b.stem[-5:])) for a, b in pairs.pairs]
    assert all(b - a == 2 for a, b in numbers) and numbers[0][0] < numbers[-1][0]
    magnitudes = []
    for i in range(0, 100, 20):
        image, target = pairs[i]
        assert image.shape == (3, 360, 480) and target["flow"].shape == (2, 360, 480)
        magnitudes.append(target["flow"].norm(dim=0).flatten())
    magnitude = torch.cat(magnitudes)
    assert torch.isfinite(magnitude).all()
    # Driving at 15 Hz: most pixels move a few pixels (the scene near the image edges moves more).
    assert magnitude.median() < 5 and (magnitude < 20).float().mean() > 0.95, magnitude.median()
