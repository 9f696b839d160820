"""Tables of benchmarks/time_budget.py: the time-to-accuracy curve and pretraining at equal total CPU time."""

from __future__ import annotations

import statistics
from collections import defaultdict

from tables_common import _commands, _load


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def curve_table(runs: list[dict]) -> list[str]:
    by_budget: dict[float, list[dict]] = defaultdict(list)
    for r in (r for r in runs if r["part"] == "curve"):
        by_budget[r["budget"]].append(r)
    if not by_budget:
        return []
    rows = [
        "### Time to accuracy of the default CamVid recipe (`benchmarks/time_budget.py --part curve`)",
        "",
        "One run per budget, each annealed over its own budget (poly-time); checkpoint choices on the selection "
        "split (10% of the train frames), val scored once by the last model. mIoU % mean ± s.d. over seeds.",
        "",
        "| budget (min) | seeds | val mIoU % | steps | wall min incl. final eval |",
        "|---|---|---|---|---|",
    ]
    for budget, group in sorted(by_budget.items()):
        miou = _mean_sd([100 * r["val"]["mean_iou"] for r in group])
        steps = statistics.mean(r["iterations"] for r in group)
        wall = statistics.mean(r["wall_minutes_including_eval"] for r in group)
        rows.append(f"| {budget:g} | {len(group)} | {miou} | {steps:.0f} | {wall:.1f} |")
    return rows + _commands([r for g in by_budget.values() for r in g])


def equal_time_table(runs: list[dict]) -> list[str]:
    cells: dict[tuple[float, float], dict[str, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in (r for r in runs if r["part"] == "equal" and r["arm"] != "pretrain"):
        cells[r["budget"], r["labels_fraction"]][r["arm"]][r["seed"]] = r
    if not cells:
        return []
    rows = [
        "### Is pretraining worth its CPU time? (`benchmarks/time_budget.py --part equal`)",
        "",
        "Equal total wall-clock minutes T: scratch trains the default RGB recipe for T; colorization pretrains "
        "(train frames, labels unused) for half of T and fine-tunes grey input for the rest (T minus the "
        "pretraining's actual minutes). Selection split for checkpoint choices, val scored once by the last "
        "model; gap paired by seed.",
        "",
        "| T (min) | labels | scratch mIoU % | colorization mIoU % | gap (paired) | pretraining min | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for (budget, fraction), arms in sorted(cells.items(), key=lambda item: (item[0][0], -item[0][1])):
        scratch, colour = arms.get("scratch", {}), arms.get("colorization", {})
        paired = sorted(set(scratch) & set(colour))
        gap = (
            _mean_sd([100 * (colour[s]["val"]["mean_iou"] - scratch[s]["val"]["mean_iou"]) for s in paired])
            if paired
            else "-"
        )
        pre = statistics.mean(r["pretrain_minutes"] for r in colour.values()) if colour else None
        rows.append(
            f"| {budget:g} | {fraction:.0%} | {_mean_sd([100 * r['val']['mean_iou'] for r in scratch.values()]) if scratch else '-'} "
            f"| {_mean_sd([100 * r['val']['mean_iou'] for r in colour.values()]) if colour else '-'} | {gap} "
            f"| {'-' if pre is None else f'{pre:.1f}'} | {len(paired)} |"
        )
    return rows + _commands([r for a in cells.values() for g in a.values() for r in g.values()])


def time_budget_tables() -> list[list[str]]:
    runs = _load("time_budget")
    return [curve_table(runs), equal_time_table(runs)]
