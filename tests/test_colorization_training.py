"""Colorization pretraining end to end: sparse targets, the task, the CLI, and transfer into segmentation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pixelwise.cli.main import main
from pixelwise.engine.checkpoint import load_checkpoint
from pixelwise.engine.trainer import Trainer
from pixelwise.methods.colorization import (
    ColorizationModel,
    ColorizationTask,
    ColorizerConfig,
    gather_points,
    sparse_colour_loss,
)
from pixelwise.methods.kinds import build_model_from_checkpoint
from pixelwise.methods.pretrain import PretrainConfig
from pixelwise.methods.segmentation import InitError, TrainConfig, segmentation_trainer
from pixelwise.models.heads.hypercolumn import random_points

TINY = "synthetic:24:48x64"


def pretrain_config(output: Path, **overrides) -> PretrainConfig:
    values = dict(data=TINY, output=str(output), epochs=3, batch_size=4, crop=[48, 64], samples=64, seed=1)
    values.update(overrides)
    return PretrainConfig(**values)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> tuple[Path, dict]:
    """One short colorization pretraining on synthetic scenes, shared by the tests below."""
    run = tmp_path_factory.mktemp("pretrain") / "run"
    config = pretrain_config(run)
    scores = Trainer(config, ColorizationTask(config)).fit()
    return run, scores


def test_gather_points_reads_the_pixel_at_row_col() -> None:
    maps = torch.arange(2 * 3 * 4 * 5, dtype=torch.float).view(2, 3, 4, 5)
    points = torch.tensor([[[0, 0], [3, 4]], [[1, 2], [2, 0]]])
    gathered = gather_points(maps, points)
    assert gathered.shape == (2, 2, 3)
    assert torch.equal(gathered[1, 0], maps[1, :, 1, 2]) and torch.equal(gathered[0, 1], maps[0, :, 3, 4])
    assert torch.equal(gather_points(maps[:, 0], points)[1, 1], maps[1, 0, 2, 0])


@pytest.mark.parametrize("target", ["hue-chroma", "lab", "l2"])
def test_every_target_gives_a_finite_loss_with_gradients_everywhere(target: str) -> None:
    torch.manual_seed(0)
    model = ColorizationModel(ColorizerConfig(target=target, hidden=32))
    images = torch.rand(2, 3, 40, 56)
    points = random_points(2, 16, (40, 56))
    loss = sparse_colour_loss(model(images, points=points), images, points, target, window=3)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert all(p.grad is not None for p in model.parameters())
    colour = model.colorize(images, infer_scale=0.5)
    assert colour.shape == images.shape and 0 <= colour.min() and colour.max() <= 1


def test_model_sparse_outputs_equal_dense_outputs_at_those_pixels() -> None:
    torch.manual_seed(0)
    model = ColorizationModel(ColorizerConfig(hidden=16)).eval()
    images = torch.rand(1, 3, 64, 96)
    points = random_points(1, 20, (64, 96))
    with torch.no_grad():
        sparse = model(images, points=points)
        dense = model(images, scale=1)
    for name in ("hue", "chroma"):
        torch.testing.assert_close(sparse[name], gather_points(dense[name], points), atol=1e-4, rtol=1e-4)


def test_grey_pixels_carry_no_hue_loss() -> None:
    model = ColorizationModel(ColorizerConfig(hidden=16))
    grey = torch.rand(2, 1, 64, 64).expand(2, 3, 64, 64)
    points = random_points(2, 8, (64, 64))
    outputs = model(grey, points=points)
    sparse_colour_loss(outputs, grey, points, "hue-chroma", window=1).backward()
    assert model.head.outputs["hue"].weight.grad.abs().sum() == 0
    assert model.head.outputs["chroma"].weight.grad.abs().sum() > 0


def test_pretraining_beats_the_grey_baseline_and_writes_panels(pretrained) -> None:
    run, scores = pretrained
    assert scores["psnr"] > scores["grey_psnr"], scores
    assert list((run / "examples").glob("epoch003/*.png"))
    model, meta = build_model_from_checkpoint(run)
    assert isinstance(model, ColorizationModel) and meta["model"]["kind"] == "colorization"


def test_colorize_command_writes_colour_and_panels_and_predict_refuses(
    pretrained, tmp_path: Path, capsys
) -> None:
    from PIL import Image

    from pixelwise.data import build_dataset

    image = build_dataset("synthetic:4:48x64", "val")[0][0]
    path = tmp_path / "scene.png"
    Image.fromarray(image.mul(255).round().byte().permute(1, 2, 0).numpy()).save(path)
    out = tmp_path / "colour"
    assert main(["colorize", "--checkpoint", str(pretrained[0]), "--output", str(out), str(path)]) == 0
    assert (out / "scene_color.png").is_file() and (out / "scene_panel.png").is_file()
    assert "PSNR" in capsys.readouterr().out
    assert (
        main(["predict", "--checkpoint", str(pretrained[0]), "--output", str(tmp_path / "p"), str(path)]) == 2
    )
    assert "pixelwise colorize" in capsys.readouterr().err
    for command in (
        ["eval", "--data", "synthetic:4:48x64"],
        ["export", "--output", str(tmp_path / "m.onnx")],
    ):
        assert main([*command, "--checkpoint", str(pretrained[0])]) == 2  # one line, no traceback
        assert "a colorization checkpoint, not segmentation" in capsys.readouterr().err


def test_pretrain_command_line_resolves_and_saves_its_config(tmp_path: Path) -> None:
    run = tmp_path / "cli"
    flags = ["--data", "synthetic:8:32x48", "--output", str(run), "--epochs", "1", "--batch-size", "4"]
    assert main(["pretrain", *flags, "--crop", "32", "48", "--loss", "l2", "--hidden", "32"]) == 0
    meta = json.loads((run / "last.json").read_text())
    assert meta["model"]["target"] == "l2" and meta["config"]["method"] == "colorization"


def segmentation_config(output: Path, **overrides) -> TrainConfig:
    values = dict(data=TINY, output=str(output), epochs=1, batch_size=4, crop=[48, 64], in_channels=1, seed=2)
    values.update(overrides)
    return TrainConfig(**values)


def test_init_from_colorization_takes_the_backbone_and_a_new_head(pretrained, tmp_path: Path) -> None:
    run, _ = pretrained
    trainer = segmentation_trainer(segmentation_config(tmp_path / "seg", init_from=str(run)))
    source = load_checkpoint(run).model_state
    for key, value in trainer.model.backbone.state_dict().items():
        assert torch.equal(value, source[f"taps.backbone.{key}"]), key
    assert trainer.base_lr == trainer.config.lr  # a new head is not staged training: no lr / 100
    with pytest.raises(InitError, match="--in-channels 1"):
        segmentation_trainer(segmentation_config(tmp_path / "rgb", init_from=str(run), in_channels=3))


def test_frozen_backbone_keeps_weights_and_batchnorm_statistics(pretrained, tmp_path: Path) -> None:
    run, _ = pretrained
    trainer = segmentation_trainer(
        segmentation_config(tmp_path / "frozen", init_from=str(run), freeze="backbone")
    )
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    after = trainer.model.state_dict()
    backbone_keys = [k for k in before if k.startswith("taps.backbone.")]
    assert backbone_keys and all(
        torch.equal(before[k], after[k]) for k in backbone_keys
    )  # incl. running stats
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("head."))


def test_partial_freeze_trains_the_deeper_stages(tmp_path: Path) -> None:
    trainer = segmentation_trainer(segmentation_config(tmp_path / "part", freeze="layer2"))
    grads = {n: p.requires_grad for n, p in trainer.model.backbone.named_parameters()}
    assert not grads["conv1.weight"] and not grads["layer2.0.conv1.weight"] and grads["layer3.0.conv1.weight"]
    with pytest.raises(ValueError, match="not a stage"):
        segmentation_trainer(segmentation_config(tmp_path / "bad", freeze="layer9"))


def test_quantile_matching_gives_the_lightness_normalised_target_marginals() -> None:
    from pixelwise.methods.colorization.histogram_transfer import quantile_match

    torch.manual_seed(0)
    target = torch.rand(3, 16, 16) * 0.3 + 0.2  # no clipping at 1 after matching
    assert torch.allclose(quantile_match(target, target), target, atol=1e-6)  # identity on itself
    source = torch.rand(3, 16, 16) * 0.3 + 0.2
    matched = quantile_match(source, target)
    light = lambda x: x.mean(dim=0, keepdim=True)  # noqa: E731
    sorted_ratios = (matched / light(source)).flatten(1).sort(dim=1).values
    torch.testing.assert_close(sorted_ratios, (target / light(target)).flatten(1).sort(dim=1).values)


def test_energy_transfer_moves_the_predicted_histogram_towards_the_target() -> None:
    from pixelwise.methods.colorization.histogram_transfer import energy_transfer, symmetric_chi2

    torch.manual_seed(0)
    logits = torch.randn(8, 10, 10) + torch.linspace(0, 3, 8).view(8, 1, 1)  # favours high bins
    target = torch.linspace(3, 0, 8).exp()  # favours low bins
    target = target / target.sum()
    before = symmetric_chi2(logits.softmax(dim=0).flatten(1).mean(dim=1), target)
    after = [
        symmetric_chi2(energy_transfer(logits, target, w).softmax(dim=0).flatten(1).mean(dim=1), target)
        for w in (1.0, 5.0)
    ]
    assert after[0] < 0.6 * before and after[1] < 0.1 * before  # lambda trades the KL anchor for the match


@pytest.mark.parametrize("mode", ["quantile", "energy"])
def test_colorize_with_histogram_transfer(pretrained, tmp_path: Path, mode: str) -> None:
    from PIL import Image

    from pixelwise.data import build_dataset

    image = build_dataset("synthetic:4:48x64", "val")[1][0]
    path = tmp_path / "scene.png"
    Image.fromarray(image.mul(255).round().byte().permute(1, 2, 0).numpy()).save(path)
    flags = ["--checkpoint", str(pretrained[0]), "--output", str(tmp_path), "--histogram-transfer", mode]
    assert main(["colorize", *flags, str(path)]) == 0
    assert (tmp_path / "scene_color.png").is_file()


def test_point_histograms_equal_dense_window_histograms_at_the_points() -> None:
    from pixelwise.methods.colorization import point_histograms, window_histograms

    torch.manual_seed(0)
    indices = torch.randint(0, 6, (2, 13, 17))
    points = torch.cat([random_points(2, 30, (13, 17)), torch.tensor([[[0, 0], [12, 16]]] * 2)], dim=1)
    for window in (1, 3, 7):
        dense = gather_points(window_histograms(indices, 6, window), points)
        torch.testing.assert_close(point_histograms(indices, points, 6, window), dense)
    # Weighted votes (hue by chroma): grey pixels (weight 0) cast none; an all-grey window has no histogram.
    weights = torch.rand(2, 13, 17) * (torch.rand(2, 13, 17) > 0.3)
    weights[0, :5, :5] = 0
    for window in (1, 3, 7):
        dense = gather_points(window_histograms(indices, 6, window, weights=weights), points)
        torch.testing.assert_close(point_histograms(indices, points, 6, window, weights=weights), dense)
    corner = point_histograms(indices, torch.tensor([[[1, 1]], [[1, 1]]]), 6, 3, weights=weights)
    assert corner[0].sum() == 0 and torch.isclose(corner[1].sum(), torch.tensor(1.0))


def test_grey_pixels_do_not_vote_for_a_hue() -> None:
    """Larsson Eq. 2.3 targets: a window of red and grey pixels has all its hue mass on red's bin, none on 0."""
    from pixelwise.data.color import rgb_to_hcl
    from pixelwise.methods.colorization import hue_chroma_targets

    image = torch.full((1, 3, 7, 7), 0.5)
    image[0, :, 3, 3] = torch.tensor([0.2, 0.9, 0.2])  # one green pixel; the rest grey (hue 0 = "red")
    targets = hue_chroma_targets(rgb_to_hcl(image), bins=32, window=7)
    hue = targets.hue[0, :, 3, 3]
    assert torch.isclose(hue.sum(), torch.tensor(1.0)) and hue[0] == 0 and hue.argmax() == round(32 / 3 - 0.5)
