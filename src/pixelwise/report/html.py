"""A self-contained HTML page for an evaluation: metrics table, per-class IoU bars, confusion matrix, examples.

Images are embedded as base64 data URIs so the single file can be mailed or attached to an issue.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

MAIN_METRICS = ("pixel_acc", "mean_acc", "mean_iou", "fw_iou")


def _image_tag(path: Path, width: int | None = None) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    size = f' width="{width}"' if width else ""
    return f'<img src="data:image/png;base64,{data}"{size} alt="{html.escape(path.name)}">'


def _bar(value: float | None) -> str:
    if value is None:
        return "<td>absent</td><td></td>"
    return f'<td>{100 * value:.1f}</td><td><div style="background:#4a7;height:12px;width:{int(300 * value)}px"></div></td>'


def _figures(paths: Sequence[Path]) -> str:
    return "".join(
        f"<figure>{_image_tag(p, 720)}<figcaption>{html.escape(p.name)}</figcaption></figure>" for p in paths
    )


def write_report(
    path: str | Path,
    title: str,
    scores: dict,
    class_names: Sequence[str],
    images: Sequence[Path] = (),
    notes: str = "",
    sections: Sequence[tuple[str, Sequence[Path]]] = (),
) -> Path:
    """Write ``path`` (HTML) from JSON-ready ``scores`` (see ``metrics.scores_to_json``) and PNG files."""
    path = Path(path)
    rows = "".join(
        f"<tr><th>{k}</th><td>{100 * scores[k]:.2f}</td></tr>"
        for k in MAIN_METRICS
        if scores.get(k) is not None
    )
    rows += "".join(
        f"<tr><th>{html.escape(k)}</th><td>{100 * v:.2f}</td></tr>"
        for k, v in scores.items()
        if k.startswith("trimap_") and v is not None
    )
    bars = "".join(
        f"<tr><th>{html.escape(name)}</th>{_bar(iou)}</tr>"
        for name, iou in zip(class_names, scores["per_class_iou"])
    )
    pictures = _figures(images)
    extra = "".join(f"<h2>{html.escape(heading)}</h2>{_figures(paths)}" for heading, paths in sections)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1000px}} td,th{{padding:2px 8px;text-align:left}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(notes)}</p>
<h2>Metrics (%)</h2><table>{rows}</table>
<h2>Per-class IoU (%)</h2><table>{bars}</table>
<h2>Images</h2>{pictures}
{extra}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path
