"""Reliability (issue 6): killed and interrupted runs resume bit-exactly, one run per folder, untrusted files run no
code, bad data is named (or skipped), NaN losses and memory exhaustion stop cleanly.

Trainings are tiny (16 synthetic 32x32 images, a 1.8M-parameter VGG, 2 epochs of 4 steps) so the file stays fast.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pixelwise.cli.main import main
from pixelwise.data import DatasetError, build_dataset
from pixelwise.data.validation import load_image, load_label
from pixelwise.engine import checkpoint as checkpoint_module
from pixelwise.engine.checkpoint import CheckpointWriteError, load_checkpoint, save_checkpoint
from pixelwise.engine.errors import NAN_SKIP_LIMIT, TrainingError
from pixelwise.engine.runlock import LOCK_NAME, acquire_run_lock, release_run_lock
from pixelwise.engine.trainer import Trainer
from pixelwise.methods.segmentation import SegmentationTask, TrainConfig, segmentation_trainer

RUN = dict(
    data="synthetic:16:32x32",
    crop=[32, 32],
    scale=[0.75, 1.25],
    batch_size=4,  # 4 steps per epoch
    epochs=2,
    backbone="vgg16_narrow",
    arch="fcn32s",
    num_examples=1,
    seed=3,
    log_every=1,
    # One thread: the same in every process, so child-process runs match in-process ones bit-exactly, and far
    # faster than OpenMP threads spinning on a busy 2-core machine.
    threads=1,
)
REPO = Path(__file__).resolve().parent.parent


def config(output: Path, **overrides) -> TrainConfig:
    return TrainConfig(output=str(output), **{**RUN, **overrides})


def cli_args(output: Path) -> list[str]:
    args = ["train", "--output", str(output)]
    for key, value in RUN.items():
        values = value if isinstance(value, list) else [value]
        args += [f"--{key.replace('_', '-')}", *map(str, values)]
    return args


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "last.safetensors").model_state


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # bit-exact on CPU


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    threads = torch.get_num_threads()  # Trainer sets it process-wide from --threads
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """Final weights of an uninterrupted run; every interrupted-and-resumed run must end with exactly these."""
    run = tmp_path_factory.mktemp("reference") / "run"
    segmentation_trainer(config(run)).fit()
    assert not (run / LOCK_NAME).exists()  # released at the end
    return weights(run)


# ------------------------------------------------------------------------------------------ killed runs


def start_cli_run(run: Path, **env: str) -> subprocess.Popen:
    """``pixelwise train`` in a child process (its stderr in stderr.txt beside the run, for post-mortems)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO / "src"), **env}
    with open(run.parent / "stderr.txt", "w") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "pixelwise.cli.main", *cli_args(run)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=environment,
        )


def wait_for(proc: subprocess.Popen, condition, what: str, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def logged_iterations(run: Path) -> list[int]:
    path = run / "log.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["iteration"] for line in lines if '"train"' in line]


def resume_and_compare(run: Path, reference: dict[str, torch.Tensor], capsys) -> str:
    assert main([*cli_args(run), "--resume"]) == 0
    assert_same_weights(weights(run), reference)
    assert not list(run.glob("*.tmp")) and not (run / LOCK_NAME).exists()
    return capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_exact(tmp_path: Path, reference, capsys) -> None:
    run = tmp_path / "run"
    proc = start_cli_run(run)
    wait_for(proc, lambda: max(logged_iterations(run), default=0) >= 6, "step 2 of epoch 2")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = load_checkpoint(run / "last.safetensors").meta["state"]
    assert state["epoch"] == 1 and state["step_in_epoch"] == 0  # the last complete checkpoint: end of epoch 1
    assert max(logged_iterations(run)) > state["iteration"]  # killed mid-epoch: those steps were lost
    assert (run / LOCK_NAME).exists()  # a SIGKILLed run cannot release its lock ...
    err = resume_and_compare(run, reference, capsys)
    assert "stale lock" in err  # ... and the next run recognises it as stale (the pid is gone)


@pytest.mark.slow
def test_sigkill_during_checkpoint_write_then_resume_is_bit_exact(tmp_path: Path, reference, capsys) -> None:
    run = tmp_path / "run"
    # The test hook pauses every checkpoint write between the complete temp file and its rename.
    proc = start_cli_run(run, PIXELWISE_TEST_CHECKPOINT_WRITE_DELAY="1.0")
    last, tmp = run / "last.safetensors", run / "last.safetensors.tmp"
    wait_for(proc, lambda: last.exists() and tmp.exists(), "the second write of last.safetensors")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert tmp.exists()  # killed inside the write ...
    assert load_checkpoint(last).meta["state"]["epoch"] == 1  # ... and the previous checkpoint is whole
    resume_and_compare(run, reference, capsys)


class CallHook(SegmentationTask):
    """The segmentation task with ``action(call_number)`` run before each loss computation."""

    action = staticmethod(lambda call: None)

    def __init__(self, config) -> None:
        super().__init__(config)
        self.calls = 0

    def loss(self, net, images, targets):
        self.calls += 1
        replaced = type(self).action(self.calls)
        if replaced is not None:
            return replaced(net, images, targets)
        return super().loss(net, images, targets)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "call", "step_in_epoch"),
    [(signal.SIGTERM, 6, 2), (signal.SIGINT, 4, 4)],  # mid-epoch 2; after the last step of epoch 1
)
def test_sigterm_and_sigint_save_a_resumable_checkpoint(
    tmp_path: Path, reference, capsys, monkeypatch, signum, call, step_in_epoch
) -> None:
    def send(number: int) -> None:
        if number == call:  # the handler only sets a flag: this step still finishes
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(CallHook, "action", staticmethod(send))
    monkeypatch.setattr("pixelwise.methods.segmentation.SegmentationTask", CallHook)
    run = tmp_path / "run"
    # As in an interactive shell (a background job starts with SIGINT ignored, and the trainer keeps that).
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert main(cli_args(run)) == 128 + signum  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    finally:
        signal.signal(signal.SIGINT, outer)
    errors = [line for line in capsys.readouterr().err.splitlines() if "stopped by" in line]
    assert len(errors) == 1 and signal.Signals(signum).name in errors[0] and "--resume" in errors[0]
    state = load_checkpoint(run / "last.safetensors").meta["state"]
    assert (state["epoch"], state["step_in_epoch"], state["iteration"]) == (call // 5, step_in_epoch, call)
    assert not (run / LOCK_NAME).exists()
    monkeypatch.setattr(CallHook, "action", staticmethod(lambda number: None))
    resume_and_compare(run, reference, capsys)


# ------------------------------------------------------------------------------------------ run-folder lock


def test_lock_refuses_a_live_run_and_takes_over_a_dead_ones(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_NAME).write_text(
            json.dumps({"pid": sleeper.pid, "host": socket.gethostname(), "started": "today"})
        )
        with pytest.raises(TrainingError, match=f"in use by another pixelwise run \\(pid {sleeper.pid}"):
            acquire_run_lock(tmp_path)
        sleeper.kill()
        os.waitid(os.P_PID, sleeper.pid, os.WEXITED | os.WNOWAIT)  # dead but not reaped: a zombie
        lock = acquire_run_lock(tmp_path)
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(TrainingError, match="in use"):  # now we hold it
            acquire_run_lock(tmp_path)
        release_run_lock(lock)
        assert not lock.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_run_or_resume_into_a_busy_folder_is_refused(tmp_path: Path, resume: bool) -> None:
    run = tmp_path / "run"
    run.mkdir()
    lock = acquire_run_lock(run)  # as if another run were training there right now
    try:
        with pytest.raises(TrainingError, match="in use by another pixelwise run"):
            segmentation_trainer(config(run, epochs=1, resume=resume)).fit()
        assert not (run / "last.safetensors").exists() and lock.exists()
    finally:
        release_run_lock(lock)


# ------------------------------------------------------------------------------------------ untrusted files


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))  # would create the marker folder if it ever ran


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_malicious_pickle_runs_nothing_and_is_one_error_line(tmp_path: Path, capsys, suffix: str) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / f"evil{suffix}"
    evil.write_bytes(pickle.dumps({"conv1.weight": _Exploit(marker)}))
    torch_zip = tmp_path / "evil_zip.pth"  # torch.save's zip container, same payload
    torch.save({"conv1.weight": _Exploit(marker)}, torch_zip)
    common = ["--data", "synthetic:8:32x32", "--backbone", "vgg16_narrow", "--arch", "fcn32s"]
    commands = [
        ["train", *common, "--weights", str(evil), "--output", str(tmp_path / "a")],
        ["train", *common, "--weights", str(torch_zip), "--output", str(tmp_path / "b")],
        ["train", *common, "--init-from", str(evil), "--output", str(tmp_path / "c")],
        ["eval", "--checkpoint", str(evil), "--data", "synthetic:8:32x32", "--output", str(tmp_path / "d")],
        ["predict", "--checkpoint", str(evil), "--output", str(tmp_path / "e"), str(evil)],
    ]
    for command in commands:
        assert main(command) == 2, command
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(evil.parent) in err, err
        assert "weights_only=False" not in err  # never advise unpickling an untrusted file
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ numerical faults


def nan_loss(net, images, targets):
    return torch.full((), float("nan"), requires_grad=True)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(CallHook, "action", staticmethod(lambda n: nan_loss if n == 6 else None))
    run = tmp_path / "run"
    trainer = Trainer(config(run, on_nan="stop"), CallHook(config(run)))
    with pytest.raises(
        TrainingError, match="non-finite loss .* epoch 2, iteration 6.*last.safetensors is kept"
    ):
        trainer.fit()
    checkpoint = load_checkpoint(run / "last.safetensors")
    assert checkpoint.meta["state"]["iteration"] == 4  # written at the end of epoch 1, not overwritten
    assert all(torch.isfinite(v).all() for v in checkpoint.model_state.values() if v.is_floating_point())


def test_nan_loss_skip_batch_drops_the_batch_and_keeps_batchnorm_clean(tmp_path: Path, monkeypatch) -> None:
    def poison(net, images, targets):  # a NaN *input*: the forward pass writes NaN into BatchNorm statistics
        return SegmentationTask.loss(trainer.task, net, images * float("nan"), targets)

    monkeypatch.setattr(CallHook, "action", staticmethod(lambda n: poison if n == 3 else None))
    run = tmp_path / "run"
    trainer = Trainer(config(run, epochs=1, on_nan="skip-batch"), CallHook(config(run)))
    trainer.fit()
    assert trainer.state.nan_skips == 1 and trainer.state.iteration == 4
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if r["kind"] == "nan_skip"] == [3]
    state = load_checkpoint(run / "last.safetensors").model_state
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_too_many_nan_batches_in_a_row_stop_anyway(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(CallHook, "action", staticmethod(lambda n: nan_loss))
    run = tmp_path / "run"
    overrides = dict(epochs=1, batch_size=1, on_nan="skip-batch")
    trainer = Trainer(config(run, **overrides), CallHook(config(run, **overrides)))
    with pytest.raises(TrainingError, match=f"{NAN_SKIP_LIMIT} batches in a row"):
        trainer.fit()
    assert trainer.task.calls == NAN_SKIP_LIMIT


def test_out_of_memory_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    def allocate_too_much(net, images, targets):
        torch.empty(1 << 50, dtype=torch.uint8)  # 1 PiB: the real CPU allocator refuses it

    monkeypatch.setattr(CallHook, "action", staticmethod(lambda n: allocate_too_much))
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match="does not fit in cpu memory.*lower --batch-size.*--accumulate"):
        Trainer(config(run), CallHook(config(run))).fit()
    assert not (run / LOCK_NAME).exists()

    def other_error(net, images, targets):
        raise RuntimeError("shape mismatch")  # not memory: must surface unchanged

    monkeypatch.setattr(CallHook, "action", staticmethod(lambda n: other_error))
    with pytest.raises(RuntimeError, match="^shape mismatch$"):
        Trainer(config(tmp_path / "other"), CallHook(config(run))).fit()


def test_failed_checkpoint_write_keeps_the_previous_file(tmp_path: Path, monkeypatch) -> None:
    path = save_checkpoint(tmp_path / "last.safetensors", {"w": torch.ones(3)}, {"state": {"epoch": 1}})
    before = path.read_bytes()

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "save_file", disk_full)
    with pytest.raises(CheckpointWriteError, match="No space left.*no partial file"):
        save_checkpoint(path, {"w": torch.zeros(3)}, {"state": {"epoch": 2}})
    assert path.read_bytes() == before and not list(tmp_path.glob("*.tmp"))


# ------------------------------------------------------------------------------------------ bad data


def write_dataset(root: Path, n: int = 6, size=(32, 32)) -> Path:
    """n RGB images with valid 3-class labels, list.txt and classes.txt; returns the list file."""
    (root / "img").mkdir(parents=True)
    (root / "lab").mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / "img" / f"s{i}.png")
        Image.fromarray(rng.integers(0, 3, size, dtype=np.uint8)).save(root / "lab" / f"s{i}.png")
        lines.append(f"img/s{i}.png lab/s{i}.png")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    (root / "classes.txt").write_text("a\nb\nc\n")
    return root / "list.txt"


def break_samples(root: Path) -> None:
    (root / "img" / "s1.png").write_bytes((root / "img" / "s1.png").read_bytes()[:60])  # truncated
    Image.fromarray(np.zeros((31, 32), np.uint8)).save(root / "lab" / "s3.png")  # wrong size
    Image.fromarray(np.full((32, 32), 9, np.uint8)).save(root / "lab" / "s4.png")  # class 9 of 3


def test_bad_samples_stop_the_run_before_training_naming_the_first_and_counting_the_rest(
    tmp_path: Path,
) -> None:
    list_file = write_dataset(tmp_path / "data")
    break_samples(tmp_path / "data")
    with pytest.raises(DatasetError, match=r"s1\.png.*2 more bad sample.*--skip-bad"):
        segmentation_trainer(config(tmp_path / "run", data=str(list_file), batch_size=2))


def test_skip_bad_trains_on_the_good_samples_and_writes_a_report(tmp_path: Path, capsys) -> None:
    list_file = write_dataset(tmp_path / "data")
    break_samples(tmp_path / "data")
    run = tmp_path / "run"
    trainer = segmentation_trainer(config(run, data=str(list_file), batch_size=2, epochs=1, skip_bad=True))
    assert len(trainer.train_set) == 3 and len(trainer.val_set) == 3
    assert "left out 3 bad sample(s)" in capsys.readouterr().err
    trainer.fit()
    skipped = (run / "skipped.txt").read_text().splitlines()
    assert len(skipped) == 3  # train and val share the list file: each bad file reported once
    for name, reason in (
        ("img/s1.png", "cannot decode"),
        ("lab/s3.png", "label is 32x31"),
        ("lab/s4.png", "9 ("),
    ):
        assert any(line.startswith(str(tmp_path / "data" / name)) and reason in line for line in skipped), (
            name
        )
    # Validation streamed from disk: nothing of the val split stayed in memory.
    assert trainer.val_set.cache is False and all(item is None for item in trainer.val_set._cache)


def test_skip_bad_drops_missing_files_and_unmatched_folder_entries(tmp_path: Path) -> None:
    from pixelwise.data.validation import skip_bad_samples

    list_file = write_dataset(tmp_path / "data", n=3)
    (tmp_path / "data" / "lab" / "s2.png").unlink()
    with skip_bad_samples() as report:
        dataset = build_dataset(str(list_file))
        dataset.preload(progress=False)
    assert len(dataset) == 2 and len(report) == 1 and "s2.png" in report[0] and "not found" in report[0]
    (tmp_path / "data" / "lab" / "classes.txt").write_text("a\nb\nc\n")
    with skip_bad_samples() as report:
        dataset = build_dataset(f"folders:{tmp_path / 'data' / 'img'}:{tmp_path / 'data' / 'lab'}")
    assert dataset.names == ["s0", "s1"] and "img/s2.png" in report[0]


def test_every_sample_bad_is_an_error_even_with_skip_bad(tmp_path: Path) -> None:
    from pixelwise.data.validation import skip_bad_samples

    list_file = write_dataset(tmp_path / "data", n=2)
    for i in range(2):
        (tmp_path / "data" / "img" / f"s{i}.png").write_bytes(b"junk")
    with skip_bad_samples(), pytest.raises(DatasetError, match="all 2 samples"):
        build_dataset(str(list_file)).preload(progress=False)


# Hypothesis: whatever bytes or label maps arrive, loaders either load them correctly or raise DatasetError.
# No example database (nothing written into the repository); a failure prints the example that reproduces it.
FUZZ = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _encoded(fmt: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    mode = {"PNG": "RGBA", "JPEG": "RGB", "BMP": "RGB", "TIFF": "I;16", "GIF": "P", "WEBP": "RGB"}[fmt]
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65535, (9, 7), dtype=np.uint16))
    else:
        image = Image.fromarray(rng.integers(0, 255, (9, 7, 4), dtype=np.uint8), "RGBA").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _check_loads_or_dataset_error(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"x{suffix}"
        path.write_bytes(data)
        try:
            image = load_image(path)
        except DatasetError as err:
            assert str(err).startswith(str(path))
        else:
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        try:
            label = load_label(path, [(0, 0, 0)])
        except DatasetError as err:
            assert str(err).startswith(str(path))
        else:
            assert label.ndim == 2 and np.issubdtype(label.dtype, np.integer)


@pytest.mark.filterwarnings("ignore")  # Pillow warns about some damaged headers
@FUZZ
@given(data=st.binary(max_size=512), suffix=st.sampled_from([".png", ".jpg", ".tif", ".bmp"]))
def test_fuzz_random_bytes(data: bytes, suffix: str) -> None:
    _check_loads_or_dataset_error(data, suffix)


@pytest.mark.filterwarnings("ignore")  # Pillow warns about some damaged headers
@FUZZ
@given(
    fmt=st.sampled_from(["PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP"]),
    seed=st.integers(0, 3),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)), max_size=4),
)
def test_fuzz_damaged_image_files(fmt: str, seed: int, cut: float, flips) -> None:
    data = bytearray(_encoded(fmt, seed))
    for where, value in flips:  # corrupt a few bytes ...
        data[int(where * len(data))] = value
    _check_loads_or_dataset_error(
        bytes(data[: max(1, int(cut * len(data)))]), f".{fmt.lower()}"
    )  # ... truncate


@pytest.mark.filterwarnings("ignore")  # Pillow warns about some damaged headers
@FUZZ
@given(
    height=st.integers(1, 6),
    width=st.integers(1, 6),
    dtype=st.sampled_from([np.uint8, np.uint16]),
    mode=st.sampled_from(["L", "P", "RGB", "I;16"]),
    values=st.lists(st.integers(0, 65535), min_size=1, max_size=36),
)
def test_fuzz_label_maps(height: int, width: int, dtype, mode: str, values: list[int]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        list_file = write_dataset(Path(folder), n=1, size=(4, 5))
        label = np.resize(np.array(values, dtype=np.int64), (height, width)).astype(dtype)
        if mode == "I;16":
            image = Image.fromarray(label.astype(np.uint16))
        else:
            image = Image.fromarray(label.clip(0, 255).astype(np.uint8), "L")
            image = image.convert("RGB") if mode == "RGB" else image
            if mode == "P":
                image = image.convert("P")
        image.save(Path(folder) / "lab" / "s0.png")
        try:
            _, target = build_dataset(str(list_file))[0]
        except DatasetError as err:
            assert str(err).startswith(str(Path(folder) / "lab" / "s0.png"))
        else:
            seg = target["seg"]
            assert seg.shape == (4, 5) and set(seg.unique().tolist()) <= {0, 1, 2, 255}


def _png16(array: np.ndarray) -> bytes:
    """A 16-bit RGB PNG written by hand (Pillow cannot write 16-bit colour)."""
    height, width, _ = array.shape
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_16_bit_colour_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    array = np.zeros((2, 3, 3), np.uint16)
    array[..., 0], array[..., 1], array[..., 2] = 65535, 257 * 100, 255  # full, 100/255, below one 8-bit step
    (tmp_path / "x.png").write_bytes(_png16(array))
    assert load_image(tmp_path / "x.png")[0, 0].tolist() == [255, 100, 0]


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_with_130_and_keeps_the_last_checkpoint(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    def send(number: int) -> None:
        if number == 6:  # mid-epoch 2: the first asks for a clean stop, the second insists
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(CallHook, "action", staticmethod(send))
    monkeypatch.setattr("pixelwise.methods.segmentation.SegmentationTask", CallHook)
    run = tmp_path / "run"
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert main(cli_args(run)) == 130
    finally:
        signal.signal(signal.SIGINT, outer)
    assert "interrupted" in capsys.readouterr().err
    assert load_checkpoint(run / "last.safetensors").meta["state"]["epoch"] == 1  # epoch 1's, intact
    assert not (run / LOCK_NAME).exists()
