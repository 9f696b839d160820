"""No silent wrong results (issue 17): a changed --resume, damaged checkpoints and misused models are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pixelwise.engine.checkpoint import load_checkpoint, save_checkpoint
from pixelwise.engine.trainer import TrainingError
from pixelwise.methods.kinds import build_model_from_checkpoint
from pixelwise.methods.segmentation import segmentation_trainer
from pixelwise.models import create_model
from test_engine import tiny_config


@pytest.mark.slow
def test_resume_with_changed_flags_is_refused_and_keeps_the_config(tmp_path: Path) -> None:
    run = tmp_path / "run"
    segmentation_trainer(tiny_config(run, epochs=2, time_limit=0.0)).fit()  # stops after epoch 1
    before = (run / "config.yaml").read_text()
    with pytest.raises(TrainingError, match=r"--lr 0.002 -> 0.5.*--optimizer 'adamw' -> 'sgd'"):
        segmentation_trainer(tiny_config(run, epochs=2, lr=0.5, optimizer="sgd", resume=True)).fit()
    assert (run / "config.yaml").read_text() == before  # a refused resume writes nothing
    segmentation_trainer(tiny_config(run, epochs=3, resume=True)).fit()  # --epochs may change: extend the run
    assert load_checkpoint(run / "last.safetensors").meta["state"]["epoch"] == 3


def test_a_checkpoint_holding_nan_is_refused_at_load(tmp_path: Path) -> None:
    model = create_model("fcn32s", "resnet18", num_classes=3)
    state = model.state_dict()
    state["head.scores.layer4.weight"][0, 0] = float("nan")
    path = save_checkpoint(tmp_path / "bad.safetensors", state, {"model": model.config.to_dict()})
    with pytest.raises(ValueError, match=r"bad.safetensors: .*head.scores.layer4.weight.*NaN"):
        build_model_from_checkpoint(path)


def test_models_refuse_integer_images_and_no_classes() -> None:
    model = create_model("fcn8s", "resnet18", num_classes=3)
    with pytest.raises(TypeError, match=r"floating.*\[0, 1\].*255"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="num_classes"):
        create_model("fcn8s", "resnet18", num_classes=0)


def test_version_and_python_dash_m() -> None:
    import subprocess
    import sys

    from pixelwise import __version__

    for command in ([sys.executable, "-m", "pixelwise", "--version"],):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stdout.strip() == f"pixelwise {__version__}"


def test_a_device_that_is_not_there_is_a_one_line_error() -> None:
    from pixelwise.engine.distributed import resolve_device

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no usable CUDA GPU; use --device cpu"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="not a device name"):
        resolve_device("gpu0")


def test_a_list_file_in_the_current_folder_is_read(tmp_path: Path, monkeypatch) -> None:
    from pixelwise.data.validation import parse_list_file

    (tmp_path / "list.txt").write_text("images/a.png labels/a.png\n")
    monkeypatch.chdir(tmp_path)
    ((image, label),) = parse_list_file(Path("list.txt"))
    assert image == tmp_path / "images" / "a.png" and label == tmp_path / "labels" / "a.png"


@pytest.mark.slow
def test_ignore_index_names_the_void_value_of_list_and_folder_data(tmp_path: Path) -> None:
    """CamVid in list form marks void with 11: without --ignore-index 11 that is an out-of-range class."""
    import numpy as np
    from PIL import Image

    from pixelwise.data import DatasetError, build_dataset
    from pixelwise.engine.config import EvalConfig
    from pixelwise.evaluation import evaluate_checkpoint
    from pixelwise.methods.segmentation import segmentation_trainer

    images, labels = tmp_path / "img", tmp_path / "lab"
    images.mkdir()
    labels.mkdir()
    rng = np.random.default_rng(0)
    for index in range(4):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(images / f"f{index}.png")
        label = rng.integers(0, 3, (48, 64)).astype(np.uint8)
        label[:8] = 11  # the void band
        Image.fromarray(label).save(labels / f"f{index}.png")
    (labels / "classes.txt").write_text("a\nb\nc\n")
    data = f"folders:{images}:{labels}"
    with pytest.raises(DatasetError, match="11"):
        segmentation_trainer(tiny_config(tmp_path / "refused", data=data, val_data=data, epochs=1))
    dataset = build_dataset(data, void=11)
    assert int(dataset[0][1]["seg"][:8].unique()) == 255  # void -> the ignore value
    run = tmp_path / "run"
    segmentation_trainer(
        tiny_config(run, data=data, val_data=data, epochs=1, batch_size=2, ignore_index=11)
    ).fit()
    scored = evaluate_checkpoint(EvalConfig(checkpoint=str(run), data=data))  # the run's void by default
    assert 0 <= scored["mean_iou"] <= 1


@pytest.mark.parametrize("command", ["train", "eval", "predict", "export"])
def test_an_output_that_cannot_be_written_is_a_one_line_error(tmp_path: Path, capsys, command: str) -> None:
    from pixelwise.cli.main import main

    a_file = tmp_path / "taken"
    a_file.write_text("")
    base = {"train": ["train", "--data", "synthetic:8:32x32"], "eval": ["eval", "--checkpoint", "x", "--data", "y"],
            "predict": ["predict", "--checkpoint", "x", "img.png"], "export": ["export", "--checkpoint", "x"]}[command]  # fmt: skip
    bad = [str(a_file / "below")] if command != "export" else [str(a_file / "model.onnx")]
    if command != "export":
        assert main([*base, "--output", str(a_file)]) == 2  # a file where a folder is needed
        assert "is a file" in capsys.readouterr().err
    else:
        assert main([*base, "--output", str(tmp_path)]) == 2  # a folder where a file is needed
        assert "is a folder" in capsys.readouterr().err
    assert main([*base, "--output", *bad]) == 2  # its parent is a file
    err = capsys.readouterr().err
    assert "nothing can be written below it" in err and "Traceback" not in err


def test_amp_defaults_to_native_bfloat16_only(monkeypatch) -> None:
    """--amp auto: on where bfloat16 is native, off where it would be emulated (~8x slower), and said once."""
    from pixelwise.engine.distributed import amp_note, native_bf16

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # an AVX512 machine run as an AVX2 one
    assert not native_bf16(torch.device("cpu"))
    assert "off here" in amp_note(torch.device("cpu"), forced=False)
    assert "much slower" in amp_note(torch.device("cpu"), forced=True)


def test_the_trainer_resolves_amp_auto(tmp_path: Path) -> None:
    from pixelwise.engine.distributed import native_bf16
    from pixelwise.methods.segmentation import segmentation_trainer

    assert segmentation_trainer(tiny_config(tmp_path / "a")).amp == native_bf16(torch.device("cpu"))
    assert segmentation_trainer(tiny_config(tmp_path / "b", amp=False)).amp is False


def test_datasets_describes_a_list_file_as_the_whole_list(tmp_path: Path, capsys) -> None:
    import numpy as np
    from PIL import Image

    from pixelwise.cli.main import main

    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "img" / "a.png")
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "lab" / "a.png")
    (tmp_path / "classes.txt").write_text("bg\nfg\n")
    (tmp_path / "val.txt").write_text("img/a.png lab/a.png\n")
    assert main(["datasets", "--data", str(tmp_path / "val.txt")]) == 0
    out = capsys.readouterr().out
    assert "[the whole list / folder]" in out and "[train]" not in out
