"""CLI: every subcommand has --help, flags override the YAML config, errors are one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.cli.commands import REGISTER
from pixelwise.cli.main import SUMMARIES, build_parser, main
from pixelwise.cli.options import build_config
from pixelwise.engine.config import ConfigError
from pixelwise.methods.segmentation import TrainConfig

SUBCOMMANDS = (
    "train",
    "pretrain",
    "tune",
    "eval",
    "predict",
    "colorize",
    "pipeline",
    "export",
    "datasets",
    "models",
    "label-ae",
    "zoomout",
    "weak",
    "depth",
    "distill",
    "correspond",
    "proposals",
    "joint",
    "parts",
)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_explains_itself(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: pixelwise " + command in capsys.readouterr().out
    assert list(REGISTER) == list(SUMMARIES) == list(SUBCOMMANDS)


def test_the_command_list_is_the_full_parsers_summaries_and_needs_no_torch() -> None:
    actions = build_parser()._subparsers._group_actions[0]._choices_actions  # type: ignore[union-attr]
    assert {action.dest: action.help for action in actions} == SUMMARIES
    # `pixelwise --help` lists the commands without building them, so it answers without importing torch.
    code = "import sys\nfrom pixelwise.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
    code += "print('torch imported:', 'torch' in sys.modules)"
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "proposals" in probe.stdout and "torch imported: False" in probe.stdout, probe.stdout[-500:]


def test_every_command_explains_itself_without_importing_torch() -> None:
    # Each --help builds only its own parser from torch-free option modules (method packages export lazily).
    code = "import sys\nfrom pixelwise.cli.main import main\n"
    for command in SUBCOMMANDS:
        code += f"try:\n    main(['{command}', '--help'])\nexcept SystemExit:\n    pass\n"
    code += "print('torch imported:', 'torch' in sys.modules)"
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert f"usage: pixelwise {SUBCOMMANDS[-1]}" in probe.stdout, probe.stdout[-500:]
    assert "torch imported: False" in probe.stdout, probe.stdout[-500:]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_flag_has_help(command: str) -> None:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    for action in sub._actions:
        assert action.help and action.help.strip(), action.dest


def test_flags_override_yaml_which_overrides_defaults(tmp_path: Path) -> None:
    config_file = tmp_path / "run.yaml"
    config_file.write_text("epochs: 7\nlr: 0.5\nbase-size: [90, 120]\n")
    args = build_parser().parse_args(["train", "--config", str(config_file), "--lr", "0.1"])
    config = build_config(TrainConfig, args)
    assert (config.epochs, config.lr, config.base_size, config.batch_size) == (7, 0.1, [90, 120], 8)


def test_unknown_yaml_option_is_reported(tmp_path: Path) -> None:
    config_file = tmp_path / "run.yaml"
    config_file.write_text("epoch: 7\n")
    with pytest.raises(ConfigError, match="unknown option"):  # a ValueError: one line, exit status 2
        build_config(TrainConfig, build_parser().parse_args(["train", "--config", str(config_file)]))


def test_models_prints_the_alexnet_receptive_fields_of_table_2_1(capsys) -> None:
    assert main(["models", "--rf", "alexnet"]) == 0
    out = capsys.readouterr().out
    assert "195 x 195" in out and "conv2" in out


def test_bad_data_is_one_clear_error_line(tmp_path: Path, capsys) -> None:
    code = main(["datasets", "--data", str(tmp_path / "missing.txt")])
    assert code == 2
    err = capsys.readouterr().err
    assert "missing.txt" in err and "Traceback" not in err


@pytest.mark.slow
def test_train_eval_predict_from_the_command_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    common = ["--data", "synthetic:12:48x64"]
    assert (
        main(
            [
                "train",
                *common,
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--crop",
                "48",
                "64",
                "--output",
                str(run),
            ]
        )
        == 0
    )
    assert (
        main(["eval", "--checkpoint", str(run), *common, "--flip", "--output", str(tmp_path / "eval")]) == 0
    )
    for name in ("metrics.json", "confusion.png", "report.html", "examples/00.png"):
        assert (tmp_path / "eval" / name).is_file(), name
    assert "mean_iou" in (tmp_path / "eval" / "report.html").read_text()
    image = tmp_path / "street.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(image)
    assert main(["predict", "--checkpoint", str(run), "--output", str(tmp_path / "pred"), str(image)]) == 0
    labels = np.asarray(Image.open(tmp_path / "pred" / "street_ids.png"))
    assert labels.shape == (50, 70) and labels.max() < 6
    assert (tmp_path / "pred" / "street_overlay.png").is_file()
