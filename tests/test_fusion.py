"""Long thesis §3.4: late fusion (two streams, class scores summed at the last layer) vs early fusion (one
4-channel network), the depth channel the data wrappers append, and the multi-task FCN (two heads, one backbone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pixelwise.cli.main import main
from pixelwise.data import build_dataset
from pixelwise.data.rgbd import WithDepthChannel, depth_channel, export_rgbd
from pixelwise.models import ModelConfig, SegmentationModel
from pixelwise.models.fusion import LateFusionConfig, LateFusionModel
from pixelwise.models.multitask import MultiOutputConfig, MultiOutputModel


def test_late_fusion_is_the_sum_of_its_two_streams_and_trains_both() -> None:
    torch.manual_seed(0)
    model = LateFusionModel(LateFusionConfig("fcn8s", "resnet18", 4, 4, 32))
    with torch.no_grad():  # FCN score layers start at zero (Long §3.3.4): make both streams say something
        for stream in (model.rgb, model.extra):
            for score in stream.head.scores.values():
                score.weight.normal_(0, 0.1)
    images = torch.rand(2, 4, 32, 48)
    model.eval()
    fused = model(images)["seg"]
    rgb = model.rgb(images[:, :3])["seg"]
    extra = model.extra(images[:, 3:])["seg"]
    torch.testing.assert_close(fused, rgb + extra)
    assert rgb.abs().sum() > 0 and extra.abs().sum() > 0
    assert model.extra.config.in_channels == 1 and model.extra.config.image_channels == 0
    model.train()
    model(images)["seg"].logsumexp(1).sum().backward()  # end to end: both backbones learn from the one loss
    for stream in (model.rgb, model.extra):
        assert sum(float(p.grad.abs().sum()) for p in stream.backbone.parameters() if p.grad is not None) > 0


def test_early_fusion_reads_the_depth_channel_unnormalised() -> None:
    model = SegmentationModel(ModelConfig("fcn8s", "resnet18", 4, 4, 32, image_channels=3))
    x = torch.rand(1, 4, 32, 32)
    assert torch.equal(model.inputs(x)[:, 3], x[:, 3])


def test_the_depth_channel_follows_the_crop_and_flip_of_the_depth(tmp_path: Path) -> None:
    from pixelwise.data import train_transforms

    torch.manual_seed(0)
    transform = train_transforms((16, 24), (1.0, 1.0), True, 0.0)
    scenes = build_dataset("synthetic:3:24x32", "train", transform=transform)
    image, target = WithDepthChannel(scenes)[1]
    assert image.shape == (4, 16, 24)
    torch.testing.assert_close(image[3:], depth_channel(target["depth"]))
    assert depth_channel(torch.tensor([[[0.0, 10.0]]])).tolist() == [[[0.0, 0.0]]]  # unknown and 10 m: centre
    # a folder of 16-bit PNGs named by image stem (real RGB-D data), attached before the transform
    plain = build_dataset("synthetic:3:24x32", "train")
    export_rgbd(plain, tmp_path / "rgbd")
    for index, name in enumerate(plain.names):
        (tmp_path / "rgbd" / "depth" / f"{index:05d}.png").rename(tmp_path / "rgbd" / "depth" / f"{name}.png")
    folder = WithDepthChannel(build_dataset("synthetic:3:24x32", "train"), tmp_path / "rgbd" / "depth", None)
    image, target = folder[2]
    truth = plain[2][1]["depth"].as_subclass(torch.Tensor).clamp(max=65.535)
    assert (target["depth"].as_subclass(torch.Tensor) - truth).abs().max() <= 5e-4
    with pytest.raises(Exception, match="no depth PNG"):
        WithDepthChannel(build_dataset("synthetic:3:24x32", "val"), tmp_path / "rgbd" / "depth", None)


def test_the_multitask_fcn_has_two_heads_on_one_backbone() -> None:
    model = MultiOutputModel(MultiOutputConfig("fcn8s", "resnet18", {"seg": 5, "depth": 1}, 3, None, 32, 8))
    outputs = model(torch.rand(2, 3, 32, 32))
    assert outputs["seg"].shape == (2, 5, 32, 32) and outputs["depth"].shape == (2, 1, 32, 32)
    assert set(model.head) == {"seg", "depth"} and len(list(model.taps.backbone.children())) > 0
    torch.testing.assert_close(
        outputs["depth"], torch.ones_like(outputs["depth"])
    )  # exp(0): zero-init scores


def test_the_zoomout_head_keeps_its_single_classifier_and_gains_one_per_output() -> None:
    from pixelwise.models.heads import ZoomOutHead
    from pixelwise.models.receptive_field import Grid

    channels, grids = {"a": 4, "b": 2}, {"a": Grid(8, 0.0), "b": Grid(4, 0.0)}
    legacy = ZoomOutHead(channels, grids, 5, hidden=3)
    assert all(key.startswith("classifier.") for key in legacy.state_dict())  # older checkpoints' keys
    multi = ZoomOutHead(channels, grids, 1, hidden=3, outputs={"seg": 5, "depth": 1})
    taps = {"a": torch.rand(2, 4, 2, 2), "b": torch.rand(2, 2, 4, 4)}
    out = multi(taps, size=(16, 16))
    assert set(out) == {"seg", "depth"} and out["seg"].shape == (2, 5, 16, 16) and out["depth"].shape[1] == 1
    assert set(legacy(taps, size=(16, 16))) == {"seg"}


def test_train_fusion_late_and_multitask_run_end_to_end(tmp_path: Path, capsys) -> None:
    from pixelwise.engine.checkpoint import load_checkpoint
    from pixelwise.methods.kinds import build_model_from_checkpoint

    flags = ["--data", "synthetic:8:24x32", "--crop", "24", "32", "--batch-size", "4", "--epochs", "1",
             "--threads", "1", "--num-examples", "1"]  # fmt: skip
    late = tmp_path / "late"
    assert main(["train", *flags, "--fusion", "late", "--extra-input", "depth", "--output", str(late)]) == 0
    assert load_checkpoint(late / "last.safetensors").meta["model"]["kind"] == "late-fusion"
    assert any((late / "examples").rglob("*.png"))  # overlays of the RGB part of fused inputs
    # eval reads the run's own extra input (the scenes' depth); predict takes depth PNGs named by image stem
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(late),
                "--data",
                "synthetic:8:24x32",
                "--output",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["mean_iou"] >= 0
    from PIL import Image

    from pixelwise.data.rgbd import write_depth_png

    (tmp_path / "depths").mkdir()
    Image.new("RGB", (32, 24), (90, 120, 60)).save(tmp_path / "frame.png")
    write_depth_png(tmp_path / "depths" / "frame.png", torch.full((24, 32), 7.5))
    predict = [
        "predict",
        "--checkpoint",
        str(late),
        "--output",
        str(tmp_path / "p"),
        str(tmp_path / "frame.png"),
    ]
    capsys.readouterr()
    assert main(predict) == 2 and "--extra-input FOLDER" in capsys.readouterr().err
    assert main([*predict, "--extra-input", str(tmp_path / "depths")]) == 0
    assert (tmp_path / "p" / "frame_labels.png").is_file()
    multi = tmp_path / "multi"
    assert main(["train", *flags, "--multitask", "depth", "--output", str(multi)]) == 0
    scores = json.loads((multi / "metrics.json").read_text())
    assert "mean_iou" in scores and scores["depth_rmse"] > 0
    model, _ = build_model_from_checkpoint(multi, expect="segmentation")  # eval / predict read its seg output
    assert model(torch.rand(1, 3, 24, 32))["seg"].shape == (1, 6, 24, 32)
    capsys.readouterr()
    assert main(["train", *flags, "--fusion", "early", "--output", str(tmp_path / "x")]) == 2
    assert "--extra-input" in capsys.readouterr().err
