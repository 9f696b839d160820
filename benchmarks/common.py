"""Shared pieces of the benchmark scripts: paths, result records (command, machine, date) and JSON writing."""

from __future__ import annotations

import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "data" / "camvid"


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (YAML values) -> config overrides."""
    return {k.replace("-", "_"): yaml.safe_load(v) for k, v in (item.split("=", 1) for item in items)}


def machine() -> str:
    """The CPU model (lscpu's "Model name"), whether it has native bfloat16, and the threads torch uses."""
    model, flags = platform.processor() or platform.machine(), ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = next(
            line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")
        )
        flags = next(line for line in info.splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    isa = "avx512_bf16" if "avx512_bf16" in flags else ("avx2" if "avx2" in flags else "")
    return f"{model} ({platform.machine()}, {isa}) {torch.get_num_threads()} threads".replace(" ()", "")


def provenance() -> dict[str, str]:
    """The command that is running and the date: what every recorded number carries."""
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def fit_and_record(
    benchmark: str,
    tag: str,
    config: Any,
    result_path: Path,
    task: Any = None,
    reseed: int | None = None,
    **values: Any,
) -> dict[str, Any]:
    """Train one arm (``task``, default segmentation), write its result JSON and print one line.

    The record holds the steps, training examples, parameters and val scores besides ``values``. ``reseed``
    reseeds the global RNG after the model is built, so arms whose models draw different amounts of random numbers
    at init still see the same augmentation (a resumed run restores its own RNG state instead).
    """
    from pixelwise.engine.trainer import Trainer
    from pixelwise.methods.segmentation import SegmentationTask

    started = time.time()
    task = task if task is not None else SegmentationTask(config)
    trainer = Trainer(config, task)
    if reseed is not None:
        torch.manual_seed(reseed)
    scores = trainer.fit()
    minutes = (time.time() - started) / 60
    record = result_record(
        benchmark,
        tag,
        config,
        minutes,
        **values,
        iterations=trainer.state.iteration,
        training_examples=len(trainer.train_set),
        parameters=sum(p.numel() for p in trainer.model.parameters()),
        val={k: v for k, v in scores.items() if k != "per_class_acc"},
    )
    write_result(result_path, record)
    key = task.score_key
    print(f"{tag}: val {key} {scores[key]:.4f} after {trainer.state.iteration} steps, {minutes:.1f} min")
    return record


def result_record(benchmark: str, tag: str, config: Any, minutes: float, **values: Any) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "tag": tag,
        **provenance(),
        "machine": machine(),
        "wall_minutes_including_eval": round(minutes, 2),
        "resumed": bool(getattr(config, "resume", False)),
        "config": config.to_dict(),
        **values,
    }


def clean(value: Any) -> Any:
    """NaN -> None, recursively (strict JSON)."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def write_result(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(record), indent=2))


def camvid_recipe(output: Path, seed: int, **overrides: Any) -> dict[str, Any]:
    """The CamVid training recipe every benchmark starts from (docs/results.md): FCN-8s / ResNet-18 from scratch,
    AdamW 2e-3 + poly, batch 8, frames cached at 180x240, scale jitter 0.75-1.5, 180x240 crops, inference at half
    the full resolution. An existing ``last.safetensors`` in ``output`` is resumed."""
    values: dict[str, Any] = dict(
        data=f"camvid:{CAMVID}",
        output=str(output),
        arch="fcn8s",
        backbone="resnet18",
        batch_size=8,
        base_size=[180, 240],
        crop=[180, 240],
        scale=[0.75, 1.5],
        optimizer="adamw",
        lr=2e-3,
        weight_decay=1e-4,
        schedule="poly",
        eval_scale=0.5,
        seed=seed,
        resume=(output / "last.safetensors").exists(),
    )
    values.update(overrides)
    return values
