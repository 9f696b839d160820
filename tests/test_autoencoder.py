"""The shortcut autoencoder (Larsson thesis §1.3.2; specs/mixture-models.md): λ = 0 is the plain autoencoder, the
truncated paths share the full path's weights, and a pretraining run initialises ``train --init-from``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pixelwise.cli.main import main
from pixelwise.engine.checkpoint import load_checkpoint
from pixelwise.methods.autoencoder import (
    FULL,
    Autoencoder,
    AutoencoderConfig,
    reconstruction_losses,
    shortcut_objective,
)
from pixelwise.methods.segmentation import TrainConfig, segmentation_trainer

SHORTCUTS = ("layer1", "layer2", "layer3")


def _pair(weight: float = 1.0) -> tuple[Autoencoder, Autoencoder]:
    torch.manual_seed(0)
    plain = Autoencoder(AutoencoderConfig(dropout=0.0))
    shortcut = Autoencoder(AutoencoderConfig(dropout=0.0, shortcuts=SHORTCUTS, shortcut_weight=weight))
    shortcut.load_state_dict(plain.state_dict())  # the same keys: shortcuts add no weights
    return plain.eval(), shortcut.eval()


def _objective(model: Autoencoder, images: torch.Tensor) -> torch.Tensor:
    outputs, target = model(images)
    return shortcut_objective(reconstruction_losses(outputs, target), model.config.shortcut_weight)


def test_every_path_reconstructs_the_input_size() -> None:
    _, model = _pair()
    outputs, target = model(torch.rand(2, 3, 40, 52))
    assert set(outputs) == {FULL, *SHORTCUTS} and target.shape == (2, 3, 40, 52)
    assert all(x.shape == target.shape for x in outputs.values())


def test_zero_shortcut_weight_is_the_plain_autoencoder() -> None:
    plain, shortcut = _pair(weight=0.0)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    loss_plain, loss_zero = _objective(plain, images), _objective(shortcut, images)
    assert torch.allclose(loss_plain, loss_zero)
    loss_plain.backward()
    loss_zero.backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), shortcut.named_parameters()):
        if a.grad is None:
            assert b.grad is None or not b.grad.any(), name
        else:
            assert torch.allclose(a.grad, b.grad, atol=1e-6), name


def test_the_loss_is_full_plus_weighted_shortcut_losses() -> None:
    _, shortcut = _pair(weight=0.5)
    images = torch.rand(1, 3, 32, 32)
    losses = reconstruction_losses(*shortcut(images))
    expected = losses[FULL] + 0.5 * sum(losses[k] for k in SHORTCUTS)
    assert torch.allclose(_objective(shortcut, images), expected)
    assert torch.allclose(losses[FULL], ((shortcut(images)[0][FULL] - shortcut(images)[1]) ** 2).mean())


def test_shortcut_paths_share_one_set_of_weights() -> None:
    plain, shortcut = _pair()
    assert list(plain.state_dict()) == list(shortcut.state_dict())
    images = torch.rand(1, 3, 32, 32)
    before, _ = shortcut(images)
    with torch.no_grad():
        shortcut.decoders["conv1"][-1].weight.add_(0.1)  # g_1: the last step of every path
    after, _ = shortcut(images)
    assert all(not torch.allclose(before[p], after[p]) for p in before)
    with torch.no_grad():
        shortcut.decoders["layer4"][-2].weight.add_(0.1)  # g_L: only the full path goes through it
    again, _ = shortcut(images)
    assert not torch.allclose(after[FULL], again[FULL])
    assert all(torch.equal(after[p], again[p]) for p in SHORTCUTS)


def test_unknown_or_last_stage_shortcuts_are_refused() -> None:
    with pytest.raises(ValueError, match="choose from conv1, layer1, layer2, layer3"):
        Autoencoder(AutoencoderConfig(shortcuts=("layer4",)))
    with pytest.raises(ValueError, match="not an inner stage"):
        Autoencoder(AutoencoderConfig(shortcuts=("fc7",)))


def test_an_autoencoder_run_initialises_train_init_from(tmp_path: Path) -> None:
    run = tmp_path / "ae"
    flags = ["--data", "synthetic:8:32x48", "--output", str(run), "--epochs", "1", "--batch-size", "4",
             "--crop", "32", "48", "--method", "autoencoder", "--shortcuts", *SHORTCUTS]  # fmt: skip
    assert main(["pretrain", *flags]) == 0
    meta = json.loads((run / "last.json").read_text())
    assert meta["model"]["kind"] == "autoencoder" and meta["model"]["shortcuts"] == list(SHORTCUTS)
    scores = json.loads((run / "metrics.json").read_text())
    assert {"psnr", "loss_full", "loss_layer1"} <= set(scores)
    config = TrainConfig(data="synthetic:8:32x48", output=str(tmp_path / "seg"), epochs=1, batch_size=4,
                         crop=[32, 48], init_from=str(run))  # fmt: skip
    trainer = segmentation_trainer(config)
    source = load_checkpoint(run).model_state
    for key, value in trainer.model.backbone.state_dict().items():
        assert torch.equal(value, source[f"taps.backbone.{key}"]), key
