"""Checkpoints: one safetensors file holding tensors, with JSON metadata in its header, written atomically.

Nothing is ever unpickled: weights are safetensors, everything else is JSON. A checkpoint carries the model's
``ModelConfig``, the dataset's classes and palette and the resolved run config, so ``eval``/``predict`` rebuild the
model from the file alone. ``last.safetensors`` adds optimiser state, RNG state and the position in training (for
``--resume``); ``best.safetensors`` is an inference model (weights only, training-only branches stripped).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

# 2: heads read every feature cell at its true centre (the fcn.md geometry erratum); 1: ResNet cells read at
# s*i + (s-1)/2 instead of s*i, up to 15.5 px off. A format-1 backbone is still good; its heads are not.
FORMAT_VERSION = 2
GEOMETRY_FORMAT = 2
META_KEY = "pixelwise"
# Test-only hook: seconds to sleep after a checkpoint's temp file is written and before it is renamed, so that
# tests/test_reliability.py can SIGKILL a run in the middle of a checkpoint write. Never set it otherwise.
WRITE_DELAY_ENV = "PIXELWISE_TEST_CHECKPOINT_WRITE_DELAY"


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, permissions); no partial file is left behind."""


@dataclass
class Checkpoint:
    meta: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None = None
    rng_state: dict[str, torch.Tensor] = field(default_factory=dict)
    extra_state: dict[str, Any] | None = None  # e.g. the gradient combiner's statistics (engine/combine.py)


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)  # atomic on POSIX: readers see the old file or the new one, never half a file
    _fsync_dir(final.parent)


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (the directory entry), so a power cut cannot bring the old file back."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a directory; the rename is still atomic
        pass
    finally:
        os.close(fd)


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, values in info["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": info["param_groups"]}


def _flatten_tree(value: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON skeleton of nested dicts/lists whose tensors are stored as ``tensors[prefix...]`` references."""
    if isinstance(value, torch.Tensor):
        tensors[prefix] = value.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(value, dict):
        return {str(k): _flatten_tree(v, f"{prefix}.{k}", tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_flatten_tree(v, f"{prefix}.{i}", tensors) for i, v in enumerate(value)]
    return value


def _unflatten_tree(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tensor__"}:
            return tensors[value["__tensor__"]]
        return {k: _unflatten_tree(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_unflatten_tree(v, tensors) for v in value]
    return value


def save_checkpoint(
    path: str | Path,
    model_state: dict[str, torch.Tensor],
    meta: dict[str, Any],
    optimizer_state: dict[str, Any] | None = None,
    rng_state: dict[str, torch.Tensor] | None = None,
    extra_state: dict[str, Any] | None = None,
) -> Path:
    """Write ``path`` (.safetensors) and a human-readable ``path.json`` sidecar, each via temp file + fsync + rename.

    A process killed at any point leaves either the previous ``path`` or the new one, never a partial file
    (at worst a stray ``path.tmp``, which nothing reads and the next save overwrites). A failed write (e.g. a
    full disk) removes its temp files and raises :class:`CheckpointWriteError`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model_state.items()}
    meta = {"format_version": FORMAT_VERSION, **meta}
    if optimizer_state is not None:
        optim_tensors, meta["optimizer"] = _flatten_optimizer(optimizer_state)
        tensors.update(optim_tensors)
    for name, value in (rng_state or {}).items():
        tensors[f"rng.{name}"] = value.cpu().contiguous()
    if extra_state is not None:
        meta["extra_state"] = _flatten_tree(extra_state, "extra", tensors)
    tmp = path.with_name(path.name + ".tmp")
    sidecar = path.with_suffix(".json")
    tmp_json = sidecar.with_name(sidecar.name + ".tmp")
    try:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta)})
        if os.environ.get(WRITE_DELAY_ENV):
            time.sleep(float(os.environ[WRITE_DELAY_ENV]))
        _fsync_replace(tmp, path)
        readable = {k: v for k, v in meta.items() if k not in ("optimizer", "extra_state")}
        tmp_json.write_text(json.dumps(readable, indent=2))
        _fsync_replace(tmp_json, sidecar)
    except Exception as err:
        tmp.unlink(missing_ok=True)  # a half-written temp file would only eat the disk space that ran out
        tmp_json.unlink(missing_ok=True)
        raise CheckpointWriteError(
            f"{path}: could not write checkpoint ({type(err).__name__}: {err}); no partial file was left: "
            f"{path.name} is the previous complete checkpoint, if any. Free disk space or choose another --output"
        ) from err
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (its ``best.safetensors``, else ``last.safetensors``)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.safetensors", "last.safetensors"):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path}: no best.safetensors or last.safetensors in this run folder")
    if not path.is_file() and path.with_suffix(".safetensors").is_file():
        return path.with_suffix(".safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (CPU tensors)."""
    path = resolve_checkpoint(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as err:
        raise ValueError(f"{path}: not a readable safetensors checkpoint ({err})") from err
    if META_KEY not in header:
        raise ValueError(
            f"{path}: a safetensors file without pixelwise metadata (use --weights for plain weights)"
        )
    try:
        meta = json.loads(header[META_KEY])
    except ValueError as err:
        raise ValueError(f"{path}: checkpoint metadata is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: checkpoint metadata is not a JSON object")
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    for name, tensor in model.items():  # a diverged run's weights would "evaluate" to a constant prediction
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(
                f"{path}: tensor {name} holds NaN/inf values; the run diverged before this was saved (use an "
                "earlier checkpoint, or retrain with a lower --lr)"
            )
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    optim = None
    if "optimizer" in meta:
        optim = _unflatten_optimizer(
            {k: v for k, v in tensors.items() if k.startswith("optim.")}, meta.pop("optimizer")
        )
    extra = _unflatten_tree(meta.pop("extra_state"), tensors) if "extra_state" in meta else None
    return Checkpoint(meta=meta, model_state=model, optimizer_state=optim, rng_state=rng, extra_state=extra)


# Model kinds that never map a feature cell to a pixel (global pool5 features, the label autoencoder's own
# 2x2-pooled grid): their format-1 checkpoints are as good as new ones.
GEOMETRY_FREE_KINDS = frozenset({"label-ae", "mixmatch"})


def has_current_geometry(meta: dict[str, Any]) -> bool:
    """False for checkpoints written before the geometry fix, whose heads were trained on misread cells."""
    kind = (meta.get("model") or {}).get("kind", "segmentation")
    return int(meta.get("format_version", 1)) >= GEOMETRY_FORMAT or kind in GEOMETRY_FREE_KINDS


def require_current_geometry(meta: dict[str, Any], path: str | Path) -> None:
    """Refuse a pre-geometry-fix checkpoint where its head would be used (eval, predict, export, resume)."""
    if not has_current_geometry(meta):
        raise ValueError(
            f"{path}: written by an older pixelwise (checkpoint format {meta.get('format_version', 1)}) whose "
            "heads read ResNet feature cells up to 15.5 px from their true position; retrain it (its backbone "
            "still loads with --init-from)"
        )


def inference_scales(scales: list[float] | None, meta: dict[str, Any]) -> tuple[list[float], str]:
    """(scales, where they came from): the given ones, else the scale the training run validated at.

    A model trained on half-resolution frames and validated at --eval-scale 0.5 scores ~5 mIoU lower at 1.0 on
    CamVid (issue 16): the scale it was chosen at is the honest default.
    """
    if scales:
        return list(scales), "--scales"
    trained = float(meta.get("config", {}).get("eval_scale", 1.0))
    return [trained], "the training run's --eval-scale, from the checkpoint"


def selection_note(
    path: Path, meta: dict[str, Any], data: str | None = None, split: str | None = None
) -> str:
    """Which checkpoint is scored and what chose it; says so when it was chosen on the data being scored."""
    if "best" not in path.stem:
        return f"{path.name}: the model at the end of training (not chosen on any split)"
    chosen = meta.get("best_chosen_on", "the validation data")
    note = f"{path.name}: the epoch that scored highest on {chosen}"
    config = meta.get("config", {})
    scored_val = split == "val" and data is not None and data in (config.get("val_data"), config.get("data"))
    if scored_val and not meta.get("selection"):
        note += (
            "; that is the data scored here, so this score is optimistic (train with --select-fraction, or "
            "score last.safetensors)"
        )
    return note


def without_training_branch(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The wrapped model's weights of a run with a training-only branch, else ``state`` itself.

    A resumable ``last.safetensors`` of such a run (e.g. the label-AE regulariser) holds the wrapped model under
    ``model.`` next to the branch; eval/predict/export and ``--init-from`` want the plain model only.
    """
    inner = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    return inner or state


def inference_weights(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The inference model's weights from ``state`` (see :func:`without_training_branch`)."""
    expected = set(model.state_dict())
    if expected <= set(state):
        return state
    inner = without_training_branch(state)
    return inner if expected <= set(inner) else state
