"""Rank-aware run logging: a JSONL file of records (loss, lr, val metrics) written by rank 0 only."""

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

    def write(self, **record: Any) -> None:
        if not self.enabled:
            return
        record = {"time": round(time.time() - self.start, 3), **record}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(scores_to_json(record)) + "\n")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]
