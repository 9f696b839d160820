"""Render the result JSONs under benchmarks/results/ into the generated section of docs/results.md.

Numbers in docs/results.md come only from here (never typed by hand). Usage: python benchmarks/summarize.py
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "results.md"
START, END = "<!-- generated:start -->", "<!-- generated:end -->"


def fmt(value: float | None, scale: float = 100.0) -> str:
    return "-" if value is None else f"{scale * value:.1f}"


def camvid_fcn_table() -> list[str]:
    rows = [
        "### CamVid FCN runs (`benchmarks/camvid_fcn.py`)",
        "",
        "| run | epochs | class weights | minutes | pixel acc | mean acc | mean IoU | fw IoU | mIoU flip-TTA"
        " | trimap acc 2/5/10 px | date | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted((RESULTS / "camvid_fcn").glob("*.json")):
        r = json.loads(path.read_text())
        v, c = r["val"], r["config"]
        flip = r.get("val_flip_tta", {}).get("mean_iou")
        trimap = "/".join(fmt(v.get(f"trimap_acc@{w}px")) for w in (2, 5, 10))
        rows.append(
            f"| {r['tag']} | {c['epochs']} | {c['class_weights']} | {r['wall_minutes_including_eval']} | "
            f"{fmt(v['pixel_acc'])} | {fmt(v['mean_acc'])} | **{fmt(v['mean_iou'])}** | {fmt(v['fw_iou'])} | "
            f"{fmt(flip)} | {trimap} | {r['date'][:10]} | `{r['command']}` |"
        )
    rows += ["", "Per-class IoU (%):", ""]
    names = None
    for path in sorted((RESULTS / "camvid_fcn").glob("*.json")):
        r = json.loads(path.read_text())
        per_class = r["val"]["per_class_iou_named"]
        if names is None:
            names = list(per_class)
            rows += ["| run | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        rows.append(f"| {r['tag']} | " + " | ".join(fmt(per_class[n]) for n in names) + " |")
    return rows


def seed_summary() -> list[str]:
    """Mean +- std over seeds for runs whose tags differ only in the seed."""
    groups: dict[str, list[dict]] = {}
    for path in sorted((RESULTS / "camvid_fcn").glob("*.json")):
        r = json.loads(path.read_text())
        groups.setdefault(r["tag"].rsplit("_seed", 1)[0], []).append(r)
    rows = [
        "Over seeds (mean +- sample std, %):",
        "",
        "| runs | seeds | mean IoU | trimap acc 2 px |",
        "|---|---|---|---|",
    ]
    for name, runs in groups.items():
        rows.append(
            f"| {name} | {len(runs)} | {_mean_std([r['val']['mean_iou'] for r in runs])} | "
            f"{_mean_std([r['val']['trimap_acc@2px'] for r in runs])} |"
        )
    return rows


def _mean_std(values: list[float]) -> str:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return f"{100 * mean:.1f}"
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{100 * mean:.1f} +- {100 * std:.1f}"


def upper_bound_table() -> list[str]:
    path = RESULTS / "iu_upper_bound.json"
    if not path.exists():
        return []
    r = json.loads(path.read_text())
    bounds = r["mean_iu_upper_bound"]
    return [
        f"### IU upper bound on CamVid {r['split']} (`benchmarks/iu_upper_bound.py`, Long §3.5)",
        "",
        "| factor | " + " | ".join(bounds) + " |",
        "|---" * (len(bounds) + 1) + "|",
        "| mean IU upper bound | " + " | ".join(fmt(v) for v in bounds.values()) + " |",
    ]


def colorization_pretrain_table() -> list[str]:
    paths = sorted((RESULTS / "colorization_pretrain").glob("*.json"))
    if not paths:
        return []
    rows = [
        "### Colorization pretraining on CamVid train+val frames (`benchmarks/colorization_pretrain.py`)",
        "",
        "| run | loss | epochs | minutes | val PSNR dB | grey baseline PSNR dB | RMSE ab | date | command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for path in paths:
        r = json.loads(path.read_text())
        v, c = r["val"], r["config"]
        rows.append(
            f"| {r['tag']} | {c['loss']} | {c['epochs']} | {r['wall_minutes_including_eval']} | "
            f"**{v['psnr']:.2f}** | {v['grey_psnr']:.2f} | {v['ab_rmse']:.4f} | {r['date'][:10]} | `{r['command']}` |"
        )
    return rows


def colorization_transfer_table() -> list[str]:
    """Mean +- std over seeds per (init, freeze, labels fraction), and the paired gap to random init."""
    runs = [json.loads(p.read_text()) for p in sorted((RESULTS / "colorization_transfer").glob("*.json"))]
    if not runs:
        return []
    groups: dict[tuple, dict[int, float]] = {}
    steps: dict[tuple, int] = {}
    for r in runs:
        key = (r["freeze"], r["labels_fraction"], r["init"])
        groups.setdefault(key, {})[r["seed"]] = r["val"]["mean_iou"]
        steps[key] = r["iterations"]
    rows = [
        "### Colorization -> segmentation transfer on CamVid val (`benchmarks/colorization_transfer.py`)",
        "",
        "Grey-input FCN-8s / ResNet-18, same number of fine-tuning steps for every arm; mean IoU (%) as mean +- "
        'sample std over seeds; "gap" is the mean over seeds of (arm - random init) for the same seed.',
        "",
        "| backbone | labels | init | steps | seeds | mean IoU | gap vs random |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2] != "random", k[2])):
        freeze, fraction, init = key
        by_seed = groups[key]
        baseline = groups.get((freeze, fraction, "random"), {})
        paired = [by_seed[s] - baseline[s] for s in by_seed if s in baseline]
        gap = "-" if init == "random" or not paired else _mean_std(paired)
        trained = (
            "frozen"
            if freeze == "backbone"
            else ("fine-tuned" if freeze == "none" else f"frozen to {freeze}")
        )
        rows.append(
            f"| {trained} | {100 * fraction:g}% | {init} | {steps[key]} | {len(by_seed)} | "
            f"{_mean_std(list(by_seed.values()))} | {gap} |"
        )
    commands = sorted({r["command"] for r in runs})
    return rows + ["", "Commands: " + "; ".join(f"`{c}`" for c in commands)]


def main() -> None:
    sections = [
        camvid_fcn_table(),
        seed_summary(),
        upper_bound_table(),
        colorization_pretrain_table(),
        colorization_transfer_table(),
    ]
    generated = "\n".join([START, "", *("\n".join(rows) + "\n" for rows in sections if rows), END])
    text = DOC.read_text() if DOC.exists() else f"# Results\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(head + generated + tail)
    print(f"updated {DOC}")


if __name__ == "__main__":
    main()
