"""Issue 17, no silent wrong results: inputs that used to run (and report nonsense) are refused in one line.

0/255 binary masks and lossy label files are refused with the file named; nonsense numeric flags and
``--config`` values stop the command with exit status 2 before anything is written.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.cli.main import build_parser, main
from pixelwise.data import DatasetError, build_dataset, camvid_dataset
from pixelwise.data.validation import skip_bad_samples
from pixelwise.engine.config import describe_range

# ---------------------------------------------------------------------------------------------- label files


def _write_dataset(
    root: Path, labels: list[np.ndarray], classes=("background", "foreground"), ext=".png"
) -> Path:
    """One random RGB image per label map, a list file and classes.txt under ``root``; returns the list file."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "lab").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i, label in enumerate(labels):
        image = rng.integers(0, 255, (*label.shape, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "img" / f"s{i}.png")
        Image.fromarray(label.astype(np.uint8)).save(root / "lab" / f"s{i}{ext}")
        lines.append(f"img/s{i}.png lab/s{i}{ext}")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root / "list.txt"


def _mask(value: int, shape=(8, 12)) -> np.ndarray:
    """A background (0) mask with a ``value`` square in the middle."""
    label = np.zeros(shape, np.uint8)
    label[2:6, 3:9] = value
    return label


def test_binary_masks_stored_as_0_255_are_refused_when_checked(tmp_path: Path) -> None:
    list_file = _write_dataset(tmp_path, [_mask(255), _mask(255), np.zeros((8, 12), np.uint8)])
    dataset = build_dataset(str(list_file))
    with pytest.raises(DatasetError) as info:
        dataset.preload(progress=False)
    message = str(info.value)
    assert "s0.png" in message and "0/255" in message and "0/1" in message and "\n" not in message
    problems = build_dataset(str(list_file)).validate()
    assert len(problems) == 1 and "s0.png" in problems[0]
    with (
        skip_bad_samples(),
        pytest.raises(DatasetError, match="0/1"),
    ):  # a dataset-wide fault: nothing to skip
        build_dataset(str(list_file)).preload(progress=False)


def test_binary_masks_fail_datasets_validate_and_train(tmp_path: Path, capsys) -> None:
    list_file = str(_write_dataset(tmp_path, [_mask(255), _mask(255)]))
    assert main(["datasets", "--data", list_file, "--validate"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM" in out and "s0.png" in out and "1 problem(s) found" in out
    assert main(["datasets", "--data", list_file]) == 1  # the frequencies decode every label too
    assert "PROBLEM" in capsys.readouterr().out
    run = [
        "train",
        "--data",
        list_file,
        "--val-data",
        list_file,
        "--epochs",
        "1",
        "--output",
        str(tmp_path / "run"),
    ]
    assert main([*run, "--device", "cpu", "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "s0.png" in err and "0/1" in err and "Traceback" not in err


def test_0_and_255_in_some_files_of_a_multiclass_dataset_are_fine(tmp_path: Path) -> None:
    """A background-only image with a void region is normal; only a dataset of nothing else is refused."""
    list_file = _write_dataset(tmp_path, [_mask(255), _mask(1)])
    dataset = build_dataset(str(list_file))
    dataset.preload(progress=False)
    assert dataset.validate() == [] and dataset.label_set_problem() is None


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".webp", ".JPG"])
def test_lossy_label_files_in_a_list_file_are_refused(tmp_path: Path, ext: str) -> None:
    list_file = _write_dataset(tmp_path, [_mask(1), _mask(1)], ext=ext)
    with pytest.raises(DatasetError) as info:
        build_dataset(str(list_file))
    message = str(info.value)
    assert f"list.txt:1: lab/s0{ext}" in message and "lossy" in message and "PNG" in message
    assert "2 lossy label files" in message


def test_lossy_labels_are_refused_in_camvid_lists_too(tmp_path: Path) -> None:
    _write_dataset(tmp_path, [_mask(1)], ext=".jpg")
    (tmp_path / "train.txt").write_text("img/s0.png lab/s0.jpg\n")
    with pytest.raises(DatasetError, match=r"train.txt:1: lab/s0.jpg: label is a lossy JPEG"):
        camvid_dataset(tmp_path)


def test_a_jpeg_label_under_a_png_name_is_refused_by_its_content(tmp_path: Path) -> None:
    list_file = _write_dataset(tmp_path, [_mask(1), _mask(1)])
    Image.fromarray(_mask(1)).save(tmp_path / "lab" / "s1.png", format="JPEG")
    dataset = build_dataset(str(list_file))
    dataset[0]  # the real PNG still loads
    with pytest.raises(DatasetError, match=r"s1.png: label is a lossy JPEG file"):
        dataset[1]


def test_skip_bad_drops_lossy_labels_and_reports_them(tmp_path: Path) -> None:
    list_file = _write_dataset(tmp_path, [_mask(1), _mask(1)])
    Image.fromarray(_mask(1)).save(tmp_path / "lab" / "s1.jpg")
    list_file.write_text("img/s0.png lab/s0.png\nimg/s1.png lab/s1.jpg\n")
    with skip_bad_samples() as report:
        dataset = build_dataset(str(list_file))
        dataset.preload(progress=False)
    assert len(dataset) == 1 and len(report) == 1 and "s1.jpg" in report[0] and "lossy" in report[0]


# ---------------------------------------------------------------------------------------------- numeric flags

# The values issue 17 found accepted with exit status 0.
ISSUE_EXAMPLES = [
    ["--epochs", "-1"],
    ["--labels-fraction", "2"],
    ["--time-limit", "-5"],
    ["--base-size", "90", "120", "5"],
    ["--eval-scale", "0"],
    ["--accumulate", "0"],
    ["--base-size", "0", "0"],
    ["--base-size", "90"],
]


def _refused(argv: list[str], capsys) -> str:
    """Parse ``argv`` through the CLI entry point; assert argparse's error (exit 2) and return stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, (argv, err)
    assert "Traceback" not in err and "error: argument" in err, (argv, err)
    return err


@pytest.mark.parametrize("flags", ISSUE_EXAMPLES, ids=" ".join)
def test_issue_examples_are_refused_before_anything_is_written(
    tmp_path: Path, flags: list[str], capsys
) -> None:
    run = tmp_path / "run"
    err = _refused(["train", *flags, "--output", str(run)], capsys)
    assert flags[0] in err and not run.exists()


def _subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, parser) of every command and sub-command, e.g. ("weak", "localise")."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _subparsers(sub, (*path, name))


def _invalid_values(action: argparse.Action) -> list[list[str]]:
    """Command-line words that the flag must refuse: its bounds crossed, a wrong count, a word for a number."""
    meta = action.field.metadata  # type: ignore[attr-defined]
    kind, count = action.type, meta.get("length", 1)
    bad: list[float] = []
    if "minimum" in meta:
        bad.append(meta["minimum"] - 1)
    if "exclusive_minimum" in meta:
        bad.append(meta["exclusive_minimum"])
    if "maximum" in meta:
        bad.append(meta["maximum"] + 1)
    if "exclusive_maximum" in meta:
        bad.append(meta["exclusive_maximum"])
    if "choices" in meta:
        bad.append(max(meta["choices"]) + 1)
    values = [[str(kind(v))] * count for v in bad]
    values.append(["many"] * count)
    if kind is float:
        values.append(["nan"] * count)
    if "length" in meta:
        values.append(["1"] * (count + 1))
    return values


def _numeric_flags() -> list[tuple[tuple[str, ...], argparse.Action]]:
    return [
        (path, action)
        for path, sub in _subparsers(build_parser())
        for action in sub._actions
        if action.type in (int, float)
    ]


def test_every_numeric_flag_declares_what_it_accepts_and_documents_it() -> None:
    flags = _numeric_flags()
    assert {path for path, _ in flags} >= {("train",), ("eval",), ("pipeline",), ("tune", "diagnose")}
    for path, action in flags:
        meta = action.field.metadata  # type: ignore[attr-defined]
        accepted = describe_range(meta)
        assert accepted or "choices" in meta, f"{' '.join(path)} {action.option_strings[0]} declares no range"
        assert not accepted or accepted in action.help, action.help


@pytest.mark.parametrize("command", sorted({path[0] for path, _ in _numeric_flags()}))
def test_every_numeric_flag_refuses_invalid_values(command: str, capsys) -> None:
    """Walks the documented numeric flags of each command (and its sub-commands) with invalid values."""
    checked = 0
    for path, action in _numeric_flags():
        if path[0] == command:
            for words in _invalid_values(action):
                err = _refused([*path, action.option_strings[0], *words], capsys)
                assert f"argument {action.option_strings[0]}:" in err, err
                checked += 1
    assert checked >= (30 if command == "train" else 1)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("epochs: -1\n", "epochs: must be >= 1, got -1"),
        ("epochs: one\n", "epochs: must be a whole number"),
        ("epochs: 2.5\n", "epochs: must be a whole number"),
        ("epochs: [1\n", "not valid YAML"),
        ("base-size: [90]\n", "base-size: takes 2 values, got 1"),
        ("base-size: 90\n", "base-size: takes a list"),
        ("lr: .nan\n", "lr: must be a finite number"),
        ("labels-fraction: 2\n", "labels-fraction: must be > 0 and <= 1"),
        ("optimizer: rmsprop\n", "optimizer: must be one of sgd, adamw"),
        ("hflip: 3\n", "hflip: must be true or false"),
        ("epochs: null\n", "epochs: needs a value"),
        ("- epochs\n", "must be a mapping"),
        ("epoch: 3\n", "unknown option(s) epoch"),
    ],
)
def test_bad_config_files_are_one_line_errors(tmp_path: Path, text: str, needle: str, capsys) -> None:
    config_file = tmp_path / "run.yaml"
    config_file.write_text(text)
    run = tmp_path / "run"
    assert main(["train", "--config", str(config_file), "--output", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run.yaml" in err and needle in err and "Traceback" not in err, err
    assert not run.exists()


def test_config_values_are_converted_like_flags(tmp_path: Path) -> None:
    from pixelwise.cli.options import build_config
    from pixelwise.methods.segmentation import TrainConfig

    config_file = tmp_path / "run.yaml"
    config_file.write_text(
        "lr: 1e-3\nepochs: 7\ntime-limit: null\nbase-size: [90, 120]\n"
    )  # 1e-3: a str to YAML
    config = build_config(TrainConfig, build_parser().parse_args(["train", "--config", str(config_file)]))
    assert (config.lr, config.epochs, config.time_limit, config.base_size) == (0.001, 7, None, [90, 120])
    args = build_parser().parse_args(["train", "--base-size"])  # empty: "off", as before
    assert build_config(TrainConfig, args).base_size == []


def test_help_still_lists_every_flag_with_its_range(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and "--labels-fraction" in out
    assert "(default: 30; >= 1)" in " ".join(out.split())


def test_the_console_script_refuses_without_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixelwise.cli.main",
            "train",
            "--epochs",
            "-1",
            "--output",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "argument --epochs: must be >= 1" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
