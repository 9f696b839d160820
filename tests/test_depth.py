"""Depth (Mostajabi thesis §5.5): the error metrics, and the depth command on the synthetic scenes' depth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from pixelwise.cli.main import main
from pixelwise.metrics import DepthErrors


def test_depth_errors_by_hand() -> None:
    truth = torch.tensor([[1.0, 2.0], [4.0, 0.0]])  # 0: unknown, never scored
    prediction = torch.tensor([[2.0, 2.0], [3.0, 9.0]])
    errors = DepthErrors()
    errors.update(prediction, truth)
    scores = errors.scores()
    assert scores["pixels"] == 3
    assert scores["rmse"] == pytest.approx(math.sqrt((1 + 0 + 1) / 3))
    assert scores["abs_rel"] == pytest.approx((1 / 1 + 0 + 1 / 4) / 3)
    assert scores["sq_rel"] == pytest.approx((1 / 1 + 0 + 1 / 4) / 3)
    assert scores["rmse_log"] == pytest.approx(math.sqrt((math.log(2) ** 2 + 0 + math.log(4 / 3) ** 2) / 3))
    assert scores["delta1"] == pytest.approx(1 / 3)  # ratios 2, 1, 4/3: only the exact one is < 1.25
    assert scores["delta2"] == pytest.approx(2 / 3) and scores["delta3"] == pytest.approx(2 / 3)
    thesis = DepthErrors(relative_to="prediction")  # the thesis divides by the prediction
    thesis.update(prediction, truth)
    assert thesis.scores()["abs_rel"] == pytest.approx((1 / 2 + 0 + 1 / 3) / 3)


@pytest.mark.slow
def test_depth_command_learns_more_than_a_constant(tmp_path: Path, capsys) -> None:
    from pixelwise.data import build_dataset

    run = tmp_path / "depth"
    flags = ["--data", "synthetic:32:48x64", "--epochs", "6", "--batch-size", "8", "--crop", "48", "64"]
    assert main(["depth", *flags, "--threads", "1", "--num-examples", "0", "--output", str(run)]) == 0
    scores = json.loads((run / "metrics.json").read_text())
    constant = DepthErrors()  # the best single depth in log space: the mean log depth of the val scenes
    truths = [
        target["depth"].as_subclass(torch.Tensor) for _, target in build_dataset("synthetic:32:48x64", "val")
    ]
    mean_log = torch.cat([t[t > 0] for t in truths]).log().mean().exp()
    for truth in truths:
        constant.update(torch.full_like(truth, float(mean_log)), truth)
    assert scores["abs_rel"] < constant.scores()["abs_rel"]  # it predicts depth, not one number
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run), "--data", "synthetic:8:48x64"]) == 2
    assert "a depth checkpoint, not segmentation" in capsys.readouterr().err
    # predict writes the depth map an RGB depth model sees in an image: colour map + 16-bit millimetres
    from PIL import Image

    from pixelwise.data.rgbd import read_depth_png

    image, target = build_dataset("synthetic:32:48x64", "val")[0]
    Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(tmp_path / "scene.png")
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run), "--output", str(out), str(tmp_path / "scene.png")]) == 0
    predicted = torch.from_numpy(read_depth_png(out / "scene_depth_mm.png"))
    truth = target["depth"].as_subclass(torch.Tensor)[0]
    known = truth > 0
    assert predicted.shape == truth.shape and (out / "scene_depth.png").is_file()
    relative = ((predicted[known] - truth[known]).abs() / truth[known]).mean()
    assert relative < 2 * constant.scores()["abs_rel"], relative  # a depth map of this scene, to PNG rounding


def test_a_wrapped_models_backbone_initialises_other_models() -> None:
    """A depth (or tag-localiser) run holds its backbone under ``net.``: --init-from finds it there too."""
    from pixelwise.methods.depth import DepthModel
    from pixelwise.methods.segmentation import backbone_weights
    from pixelwise.models import ModelConfig

    depth = DepthModel(ModelConfig("fcn32s", "resnet18"))
    found = backbone_weights(depth.state_dict())
    assert found.keys() == depth.backbone.state_dict().keys()
    assert backbone_weights({"a.taps.backbone.w": torch.zeros(1), "b.taps.backbone.w": torch.ones(1)}) == {}
