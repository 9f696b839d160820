"""Rank-aware run logging: a JSONL file of records (loss, lr, val metrics) written by rank 0 only, mirrored to
TensorBoard event files (OUTPUT/tensorboard/) when the optional ``tensorboard`` package is installed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pixelwise.metrics import scores_to_json


class JsonlLogger:
    """Append one JSON object per line; flushed each write so a killed run keeps its log."""

    def __init__(self, path: str | Path, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self.start = time.time()
        self.board = tensorboard_writer(self.path.parent / "tensorboard") if enabled else None

    def write(self, **record: Any) -> None:
        if not self.enabled:
            return
        record = {"time": round(time.time() - self.start, 3), **record}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(scores_to_json(record)) + "\n")
        if self.board is not None and "iteration" in record:
            for key, value in record.items():  # numbers only: e.g. train/loss, val/mean_iou, report/mean_iou
                if (
                    isinstance(value, (int, float))
                    and not isinstance(value, bool)
                    and key not in ("iteration", "time")
                ):
                    self.board.add_scalar(f"{record.get('kind', 'log')}/{key}", value, record["iteration"])
            self.board.flush()


def tensorboard_writer(folder: Path) -> Any:
    """A SummaryWriter when ``tensorboard`` is installed (``pip install pixelwise[tensorboard]``), else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional: log.jsonl holds the same numbers
        return None
    return SummaryWriter(log_dir=str(folder))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]
