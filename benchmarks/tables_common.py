"""What every results table needs: where the result JSONs live, how numbers print, the commands line."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def fmt(value: float | None, scale: float = 100.0) -> str:
    return "-" if value is None else f"{scale * value:.1f}"


def _load(folder: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((RESULTS / folder).glob("*.json"))]


def _commands(runs: list[dict]) -> list[str]:
    return ["", "Commands: " + "; ".join(f"`{c}`" for c in sorted({r["command"] for r in runs}))]
