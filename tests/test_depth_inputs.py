"""Depth from segmentation (Mostajabi thesis §5.5.1): the label input, the input normaliser's extra channels,
16-bit depth PNGs and RGB-D list files, and the harder synthetic world (spec depth-joint.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pixelwise.data import build_dataset, train_transforms
from pixelwise.data.rgbd import PartialLabels, export_rgbd, read_depth_png, write_depth_png
from pixelwise.data.scene import CAMERA_HEIGHT, HARD_CAMERA_HEIGHT
from pixelwise.methods.depth import DepthConfig, DepthTask, input_channels, one_hot_labels
from pixelwise.models.inputs import IMAGENET_MEAN, IMAGENET_STD, InputNormalizer


def test_one_hot_labels_follow_class_ids_and_void_is_all_zero() -> None:
    seg = torch.tensor([[[0, 2], [255, 1]]])
    hot = one_hot_labels(seg, 3)
    assert hot.shape == (1, 3, 2, 2)
    assert hot[0, :, 0, 0].tolist() == [1, 0, 0] and hot[0, :, 0, 1].tolist() == [0, 0, 1]
    assert hot[0, :, 1, 1].tolist() == [0, 1, 0]
    assert hot[0, :, 1, 0].tolist() == [0, 0, 0]  # void: no class channel is on
    assert input_channels("seg", 6) == (6, 0) and input_channels("seg+rgb", 6) == (9, 3)
    assert input_channels("rgb", 6) == (3, None)  # RGB keeps the legacy normaliser rule


def _find_window(small: torch.Tensor, big: torch.Tensor) -> tuple[int, int, bool]:
    """Where (top, left, flipped) ``small`` [h,w] sits in ``big`` [H,W]."""
    h, w = small.shape
    for flipped in (False, True):
        view = small.flip(-1) if flipped else small
        for top in range(big.shape[0] - h + 1):
            for left in range(big.shape[1] - w + 1):
                if torch.equal(big[top : top + h, left : left + w], view):
                    return top, left, flipped
    raise AssertionError("window not found")


def test_crops_and_flips_move_the_label_input_with_the_depth() -> None:
    """The one-hot input is built from the transformed labels, so it stays on the depth it describes."""
    torch.manual_seed(3)
    plain = build_dataset("synthetic:4:24x32", "train")
    jittered = build_dataset(
        "synthetic:4:24x32", "train", transform=train_transforms((16, 20), (1.0, 1.0), True, 0.0)
    )
    config = DepthConfig(data="synthetic:4:24x32", input="seg+rgb")
    task = DepthTask(config)
    task.info = plain.info
    flips = set()
    for index in range(4):
        image, target = jittered[index]
        depth = target["depth"].as_subclass(torch.Tensor)[0]
        top, left, flipped = _find_window(depth, plain[index][1]["depth"].as_subclass(torch.Tensor)[0])
        flips.add(flipped)
        seg = plain[index][1]["seg"].as_subclass(torch.Tensor)[top : top + 16, left : left + 20]
        seg = seg.flip(-1) if flipped else seg
        inputs = task.model_inputs(image[None], {"seg": target["seg"][None]})
        assert inputs.shape == (1, 3 + 6, 16, 20)
        torch.testing.assert_close(inputs[0, :3], image.as_subclass(torch.Tensor))
        torch.testing.assert_close(inputs[0, 3:], one_hot_labels(seg[None], 6)[0])
    assert flips == {False, True}  # both cases were exercised


def test_input_normalizer_leaves_extra_channels_untouched() -> None:
    x = torch.rand(2, 3 + 5, 7, 9)
    out = InputNormalizer(8, 4, image_channels=3)(x)
    assert out.shape == (2, 8, 8, 12)  # padded to the stride
    torch.testing.assert_close(out[:, 3:, :7, :9], x[:, 3:])
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(out[:, :3, :7, :9], (x[:, :3] - mean) / std)
    labels_only = InputNormalizer(5, 4, image_channels=0)(x[:, 3:])
    torch.testing.assert_close(labels_only[:, :, :7, :9], x[:, 3:])
    # 1 and 3 channels (and the default None) are exactly as before
    for channels in (1, 3):
        legacy = InputNormalizer(channels, 4)
        grey = (sum(IMAGENET_MEAN) / 3, sum(IMAGENET_STD) / 3)
        m, s = (mean, std) if channels == 3 else grey
        image = torch.rand(1, channels, 8, 8)
        assert torch.equal(legacy(image), (image - m) / s)
        assert torch.equal(InputNormalizer(channels, 4, image_channels=channels)(image), legacy(image))
    with pytest.raises(ValueError, match="image_channels"):
        InputNormalizer(2, 4, image_channels=3)


def test_depth_pngs_round_trip_in_millimetres(tmp_path: Path) -> None:
    metres = np.array([[0.0, 0.001, 1.2344], [65.535, 80.0, np.nan]], dtype=np.float32)
    with pytest.warns(UserWarning, match="1 pixels beyond 65.535 m"):  # the 80 m one saturates, and says so
        write_depth_png(tmp_path / "d.png", metres)
    from PIL import Image

    with Image.open(tmp_path / "d.png") as image:
        stored = np.asarray(image)
    assert stored.dtype == np.uint16 and stored.tolist() == [[0, 1, 1234], [65535, 65535, 0]]
    back = read_depth_png(tmp_path / "d.png")
    assert back.dtype == np.float32
    np.testing.assert_allclose(back[0], [0.0, 0.001, 1.234], atol=1e-6)  # exact to the millimetre
    assert back[1, 2] == 0  # NaN is stored as "unknown"
    exact = np.round(np.random.default_rng(0).uniform(0.5, 60, (5, 6)), 3).astype(np.float32)
    write_depth_png(tmp_path / "e.png", exact)
    np.testing.assert_allclose(read_depth_png(tmp_path / "e.png"), exact, atol=5e-7 * 60)


def test_rgbd_list_files_mix_labelled_and_depth_only_images(tmp_path: Path) -> None:
    scenes = build_dataset("synthetic:4:24x32", "train")
    list_file = export_rgbd(scenes, tmp_path / "rgbd", labelled=[True, False, True, False])
    assert "labels/" not in list_file.read_text().splitlines()[1]
    data = build_dataset(f"rgbd:{list_file}", "train")
    assert len(data) == 4 and data.labelled == [True, False, True, False]
    image, target = data[1]
    assert target["has_seg"].item() is False and bool((target["seg"] == 255).all())
    image0, target0 = data[0]
    assert torch.equal(
        target0["seg"].as_subclass(torch.Tensor), scenes[0][1]["seg"].as_subclass(torch.Tensor)
    )
    truth = scenes[0][1]["depth"].as_subclass(torch.Tensor).clamp(max=65.535)  # 16 bits of mm: 65.535 m
    assert (target0["depth"].as_subclass(torch.Tensor) - truth).abs().max() <= 5e-4  # millimetre rounding
    torch.testing.assert_close(image0, scenes[0][0], atol=0, rtol=0)
    partial = PartialLabels(data, [True, True, False, False])  # a line without labels stays depth-only
    assert partial.labelled == [True, False, False, False]
    # --input seg reads the labels: the depth-only lines (all-void labels, all-zero input) are left out
    from pixelwise.methods.depth.task import labelled_only

    assert [int(i) for i in labelled_only(data, "train", "seg").indices] == [0, 2]
    # the depth channel of the data's own depth equals that of its 16-bit PNG (the sky beyond 65.535 m too)
    from pixelwise.data.rgbd import depth_channel

    own = depth_channel(scenes[0][1]["depth"])
    torch.testing.assert_close(depth_channel(target0["depth"]), own, atol=1e-3, rtol=0)  # mm rounding


def test_the_hard_world_varies_the_camera_and_keeps_the_default_world() -> None:
    default = build_dataset("synthetic:6:24x32", "train")
    hard = build_dataset("synthetic:6:24x32:hard", "train")
    assert default.variant == "default" and hard.variant == "hard"
    heights = {round(hard.scene(i).camera.height, 6) for i in range(6)}
    assert len(heights) == 6 and all(HARD_CAMERA_HEIGHT[0] <= h <= HARD_CAMERA_HEIGHT[1] for h in heights)
    assert {default.scene(i).camera.height for i in range(6)} == {CAMERA_HEIGHT}
    assert not torch.equal(default[0][0], hard[0][0])
    # the default stream does not depend on the new option: the same spec without it renders the same scenes
    again = build_dataset("synthetic:6:24x32:default", "train")
    assert torch.equal(again[3][0], default[3][0])
    with pytest.raises(ValueError, match="second frame|default synthetic"):
        from pixelwise.data.scene import EgoMotion, render_second_frame

        render_second_frame(hard.scene(0), EgoMotion(forward=1.0))


def test_depth_from_labels_trains_and_records_its_input(tmp_path: Path) -> None:
    from pixelwise.engine.checkpoint import load_checkpoint
    from pixelwise.engine.trainer import train

    config = DepthConfig(data="synthetic:8:24x32", crop=[24, 32], batch_size=4, epochs=1, input="seg+rgb",
                         arch="zoomout", head_width=8, threads=1, num_examples=1, output=str(tmp_path / "d"))  # fmt: skip
    scores = train(config, DepthTask(config))
    assert scores["rmse"] > 0
    (panel,) = (tmp_path / "d" / "examples").rglob("depth_00.png")  # image | GT | prediction | error map
    from PIL import Image

    with Image.open(panel) as image:
        assert image.size[0] > 4 * 32
    meta = load_checkpoint(tmp_path / "d" / "last.safetensors").meta
    assert meta["model"]["depth_input"] == "seg+rgb" and meta["model"]["in_channels"] == 9
    assert meta["model"]["image_channels"] == 3 and meta["depth_input"] == "seg+rgb"
    json.dumps(meta)
    with pytest.raises(ValueError, match="--seg-from"):
        DepthTask(DepthConfig(input="pred-seg"))
