"""Training curves from ``log.jsonl`` files: loss per iteration and the validation score, one panel per run."""

from __future__ import annotations

import json
from pathlib import Path


def read_log(path: str | Path) -> list[dict]:
    """The JSON lines of a run's log (missing file: no lines)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_training_curves(logs: dict[str, Path], scores: dict[str, str], path: str | Path) -> Path:
    """One column per run (name -> log.jsonl): training loss over iterations, validation ``scores[name]`` below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pixelwise.report.images import save_figure

    names = list(logs)
    fig, axes = plt.subplots(2, len(names), figsize=(4 * len(names), 5), squeeze=False)
    for column, name in enumerate(names):
        records = read_log(logs[name])
        train = [r for r in records if r.get("kind") == "train"]
        val = [r for r in records if r.get("kind") == "val" and r.get(scores[name]) is not None]
        top, bottom = axes[0][column], axes[1][column]
        top.plot(
            [r["iteration"] for r in train], [r["loss"] for r in train], ".-", lw=1
        )  # dots: short runs show
        top.set_title(name)
        top.set_xlabel("iteration")
        top.set_ylabel("training loss")
        bottom.plot([r["iteration"] for r in val], [r[scores[name]] for r in val], "o-")
        bottom.set_xlabel("iteration")
        bottom.set_ylabel(f"val {scores[name]}")
    return save_figure(fig, path, dpi=90)
