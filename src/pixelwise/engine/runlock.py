"""OUTPUT/.lock: one run per folder. A lock names its process; one whose process is gone is taken over."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import torch

from pixelwise.engine.distributed import DistInfo, all_reduce_sum
from pixelwise.engine.errors import TrainingError

LOCK_NAME = ".lock"  # OUTPUT/.lock: JSON {pid, host, started} of the run using the folder


# ----------------------------------------------------------------------------------------------- run-folder lock
def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    try:  # a killed process its parent has not reaped yet is a zombie: it no longer runs
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS): trust kill(0)
        return True


def _lock_holder(path: Path) -> dict[str, Any] | None:
    """The lock file's content, or None while it is still empty (its owner is between create and write)."""
    try:
        holder = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _lock_is_stale(path: Path, holder: dict[str, Any] | None) -> bool:
    if holder is None:  # empty or garbled: stale only once it is clearly not a run that is just starting
        try:
            return time.time() - path.stat().st_mtime > 10
        except OSError:
            return True
    if holder.get("host") != socket.gethostname():  # another machine's process cannot be checked from here
        return False
    return not _process_alive(int(holder.get("pid", -1)))


def acquire_run_lock(folder: Path) -> Path:
    """Create ``folder/.lock`` (O_EXCL) naming this process, or raise TrainingError while another run holds it.

    A lock whose process is gone (SIGKILL, crash, power cut) is stale and is taken over. Two processes taking
    over the same stale lock in the same instant are not told apart; everything else is.
    """
    path = folder / LOCK_NAME
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _lock_holder(path)
            if not _lock_is_stale(path, holder):
                who = (
                    f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}"
                    if holder
                    else "starting"
                )
                raise TrainingError(
                    f"{folder} is in use by another pixelwise run ({who}); wait for it to finish or choose "
                    f"another --output. If no such run exists, delete {path}"
                ) from None
            print(f"removing stale lock {path} (its run no longer exists)", file=sys.stderr)
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}))
        return path
    raise TrainingError(f"{path}: could not take the run lock (several runs are starting in {folder}?)")


def release_run_lock(path: Path) -> None:
    holder = _lock_holder(path)
    if holder is not None and holder.get("pid") == os.getpid():  # never remove a lock another run took over
        path.unlink(missing_ok=True)


def lock_run_folder(folder: Path, dist_info: DistInfo, device: torch.device) -> Path | None:
    """Rank 0 takes FOLDER/.lock; every rank learns whether it did, so no rank waits alone in a collective."""
    lock, error = None, None
    if dist_info.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            lock = acquire_run_lock(folder)
        except TrainingError as err:
            error = err
    if dist_info.enabled:
        failed = all_reduce_sum(torch.tensor([float(error is not None)], device=device))
        if failed.item() and error is None and not dist_info.is_main:
            raise TrainingError(f"{folder}: rank 0 could not lock the run folder (see its message)")
    if error is not None:
        raise error
    return lock
