"""Tables of benchmarks/depth_joint.py: Table 5.5 / 5.6 analogues, fusion and multi-task (spec depth-joint.md).

Hook for summarize.py: ``from tables_depth_joint import depth_joint_tables`` and ``*depth_joint_tables(),`` in
its list of tables. Run alone (``python benchmarks/tables_depth_joint.py``) it prints the markdown.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from tables_common import _commands, _load

CAVEAT = (
    "**Caveat (spec depth-joint.md):** synthetic scenes stand in for NYUv2. Even in the hard variant "
    "(`synthetic:N:HxW:hard`: per-scene camera height and horizon, texture in metres) depth is close to a function "
    "of the label layout by construction (one depth per object, set by the row it stands on; sky at 80 m), so "
    "'Seg beats RGB' says little about real scenes; the procedures are the thesis's, the data and scale are not."
)
P1_ORDER = ("rgb", "seg", "seg+rgb", "pred-seg", "pred-seg+rgb")
P1_NAMES = {"rgb": "RGB", "seg": "Seg (GT)", "seg+rgb": "Seg (GT) + RGB", "pred-seg": "Pred-Seg",
            "pred-seg+rgb": "Pred-Seg + RGB"}  # fmt: skip
P2_NAMES = {"a": "(a) two-part", "b": "(b) baseline (end-only losses)", "c": "(c) baseline, no seg loss",
            "d": "(d) baseline, no depth loss (labelled only)", "e": "(e) baseline, 2x seg loss",
            "f": "(f) two-part without depth-only scenes", "g": "(g) single-part (one net, two heads)"}  # fmt: skip
THESIS_P1 = {"rgb": "0.628", "seg": "0.548", "seg+rgb": "0.524"}
THESIS_P2 = {
    "a": ("0.44", "41"),
    "b": ("0.45", "38"),
    "c": ("0.49", "–"),
    "d": ("–", "36"),
    "e": ("0.46", "38"),
}


def _mean_sd(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{scale * values[0]:.{digits}f}"
    return f"{scale * statistics.mean(values):.{digits}f} ± {scale * statistics.stdev(values):.{digits}f}"


def _groups(part: str) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for run in _load("depth_joint"):
        if run.get("part") == part:
            groups[run["arm"]].append(run)
    return groups


def _scale_line(runs: list[dict]) -> str:
    return f"Scale: {runs[0]['scaling']['note']} (scale '{runs[0]['scale']}')."


def p1_table() -> list[str]:
    groups = _groups("p1")
    runs = [r for arm in P1_ORDER for r in groups.get(arm, [])]
    if not runs:
        return []
    rows = [
        "### Depth from segmentation (Table 5.5 analogue, `benchmarks/depth_joint.py --parts p1`)", "", CAVEAT, "",
        "Zoom-out ResNet-18 from scratch on the hard synthetic world; the last model is scored on the val scenes "
        "(nothing chosen on them). AbsRel / SqRel divided by the ground truth, and by the prediction (the thesis's "
        "convention, 'by ŷ'). Mean ± s.d. over seeds; RMSE in metres (sky = 80 m is scored).", "",
        "| input | seeds | steps | RMSE | RMSE(log) | AbsRel | AbsRel by ŷ | SqRel by ŷ | δ1 | δ2 | δ3 | thesis RMSE | min/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for arm in P1_ORDER:
        group = groups.get(arm, [])
        if not group:
            continue
        v = lambda key, group=group: _mean_sd([g["val"].get(key) for g in group])  # noqa: E731
        by_pred = lambda key, group=group: _mean_sd([g.get(key) for g in group])  # noqa: E731
        minutes = statistics.mean(g["wall_minutes_including_eval"] for g in group)
        rows.append(
            f"| {P1_NAMES[arm]} | {len(group)} | {group[0]['iterations']} | **{v('rmse')}** | {v('rmse_log')} | "
            f"{v('abs_rel')} | {by_pred('abs_rel_by_prediction')} | {by_pred('sq_rel_by_prediction')} | "
            f"{v('delta1')} | {v('delta2')} | {v('delta3')} | {THESIS_P1.get(arm, '–')} | {minutes:.1f} |"
        )
    segnet = groups.get("segnet", [])
    if segnet:
        rows += ["", f"Pred-Seg comes from a zoom-out segmentation run on {segnet[0]['config']['labels_fraction']:.0%} "
                 f"of the training labels: val mIoU {_mean_sd([g['val']['mean_iou'] for g in segnet], 100, 1)} %."]  # fmt: skip
    return rows + ["", _scale_line(runs)] + _commands(runs + segnet)


def p2_table() -> list[str]:
    groups = _groups("p2")
    runs = [r for g in groups.values() for r in g]
    if not runs:
        return []
    rows = [
        "### Two-part joint model (Table 5.6 analogue, `benchmarks/depth_joint.py --parts p2`)", "", CAVEAT, "",
        "Two zoom-out ResNet-18s from scratch; a few labelled scenes plus many depth-only ones (scaled from NYU's "
        "795 : 60k); equal steps per arm in phase 1 (everything the arm trains on, loss weights set after the "
        "warm-up), then phase 2 on the labelled scenes at lr / 10. Last model of phase 2 on the val scenes; "
        "mean ± s.d. over seeds.", "",
        "| model | seeds | phase-1 steps | depth RMSE | δ1 | mIoU % | part-1 RMSE | part-1 mIoU % | thesis RMSE / mIoU | min/run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for letter in sorted(groups):
        group = groups[letter]
        v = lambda key, s=1.0, d=3, group=group: _mean_sd([g["val"].get(key) for g in group], s, d)  # noqa: E731
        thesis = THESIS_P2.get(letter, ("–", "–"))
        minutes = statistics.mean(g["wall_minutes_including_eval"] for g in group)
        phase1_steps = _phase1_steps(group[0])
        rows.append(
            f"| {P2_NAMES[letter]} | {len(group)} | {phase1_steps} | **{v('rmse')}** | {v('delta1')} | "
            f"**{v('mean_iou', 100, 1)}** | {v('part1_rmse')} | {v('part1_mean_iou', 100, 1)} | "
            f"{thesis[0]} / {thesis[1]} | {minutes:.1f} |"
        )
    return rows + ["", _scale_line(runs)] + _commands(runs)


def _phase1_steps(run: dict) -> str:
    """Phase 1's optimiser steps: its epochs times the sampler's batches per epoch (recorded by the trainer)."""
    return str(run.get("phase1_iterations", run["phase1_config"]["epochs"]))


def fusion_table() -> list[str]:
    groups = _groups("fusion")
    runs = [r for g in groups.values() for r in g]
    if not runs:
        return []
    names = {"rgb": "RGB only", "early": "early fusion (RGB + depth, 4 channels)",
             "late": "late fusion (two streams, scores summed)"}  # fmt: skip
    rows = ["### Late vs early fusion (Long §3.4, Table 3.5's ordering)", "", CAVEAT, "",
            "FCN-8s ResNet-18 from scratch; the extra channel is the scenes' ground-truth depth as log metres "
            "(an HHA stand-in). Mean ± s.d. over seeds.", "",
            "| input | seeds | steps | mIoU % | pixel acc % | min/run |", "|---|---|---|---|---|---|"]  # fmt: skip
    for arm in ("rgb", "early", "late"):
        group = groups.get(arm, [])
        if group:
            minutes = statistics.mean(g["wall_minutes_including_eval"] for g in group)
            rows.append(f"| {names[arm]} | {len(group)} | {group[0]['iterations']} | "
                        f"**{_mean_sd([g['val']['mean_iou'] for g in group], 100, 1)}** | "
                        f"{_mean_sd([g['val']['pixel_acc'] for g in group], 100, 1)} | {minutes:.1f} |")  # fmt: skip
    return rows + ["", _scale_line(runs)] + _commands(runs)


def multitask_table() -> list[str]:
    groups = _groups("multitask")
    runs = [r for g in groups.values() for r in g]
    if not runs:
        return []
    rows = ["### Multi-task FCN vs two single-task FCNs at equal compute (Long §3.4)", "", CAVEAT, "",
            "One FCN-8s with a seg and a depth head for E epochs vs a seg FCN-8s and a depth FCN-8s for E/2 epochs "
            "each (the same backbone passes in total).", "",
            "| model | seeds | steps | mIoU % | depth RMSE | δ1 | min/run |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for arm in ("multitask", "seg-only", "depth-only"):
        group = groups.get(arm, [])
        if not group:
            continue
        prefix = "" if arm == "depth-only" else "depth_"
        miou = "–" if arm == "depth-only" else _mean_sd([g["val"]["mean_iou"] for g in group], 100, 1)
        rmse = "–" if arm == "seg-only" else _mean_sd([g["val"][f"{prefix}rmse"] for g in group])
        delta = "–" if arm == "seg-only" else _mean_sd([g["val"][f"{prefix}delta1"] for g in group])
        minutes = statistics.mean(g["wall_minutes_including_eval"] for g in group)
        rows.append(
            f"| {arm} | {len(group)} | {group[0]['iterations']} | {miou} | {rmse} | {delta} | {minutes:.1f} |"
        )
    return rows + ["", _scale_line(runs)] + _commands(runs)


def depth_joint_tables() -> list[list[str]]:
    return [p1_table(), p2_table(), fusion_table(), multitask_table()]


if __name__ == "__main__":
    for table in depth_joint_tables():
        if table:
            print("\n".join(table) + "\n")
