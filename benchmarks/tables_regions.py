"""Tables of benchmarks/regions.py: the Fig. 4.4 ablation, density, cost and the SLIC baseline."""

from __future__ import annotations

import statistics
from collections import defaultdict

from tables_common import _commands, _load

ARM_ORDER = ("both", "matrix", "transpose", "neither")
ARM_NAMES = {
    "both": "transpose + matrix",
    "matrix": "matrix only",
    "transpose": "transpose only",
    "neither": "neither",
}


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def ablation_table() -> list[str]:
    runs = [r for r in _load("regions") if r.get("part") == "ablation"]
    if not runs:
        return []
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        prefix = r["tag"].split(f"{r['data']}_")[0]
        groups[(prefix, r["data"], r["pyramid"], r["arm"])].append(r)
    rows = [
        "### Pairwise region proposals: the transpose / shared-matrix ablation (`benchmarks/regions.py`, Long "
        "Fig. 4.4, spec protocol 1)",
        "",
        "RegionNet on ResNet-18 from scratch, images 180x240 at natural resolution, one image per AdamW step (lr "
        "1e-3) drawn with replacement; equal steps per arm. Validation (the first N val images; synthetic val "
        "scenes are a separate stream) runs once, on the last checkpoint: nothing is chosen on it, and the recipe "
        "was fixed before any run. Mean ± s.d. over seeds (%); AR is the exact continuous form.",
        "",
        "| tag | data | pathways | arm | seeds | steps | val N | AR | R@50 | R@70 | ABO | AR@10 | AR@100 | min/arm |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {a: i for i, a in enumerate(ARM_ORDER)}
    for (prefix, data, pyramid, arm), group in sorted(
        groups.items(), key=lambda kv: (kv[0][:3], order[kv[0][3]])
    ):
        cell = {
            k: _mean_sd([g["val"][k] for g in group]) for k in ("ar", "r50", "r70", "abo", "ar@10", "ar@100")
        }
        minutes = statistics.mean(g["wall_minutes_including_eval"] for g in group)
        rows.append(
            f"| {prefix.rstrip('_') or '-'} | {data} | {pyramid} | {ARM_NAMES[arm]} | {len(group)} | "
            f"{group[0]['iterations']} | {group[0]['config']['val_images']} | **{cell['ar']}** | {cell['r50']} | {cell['r70']} | {cell['abo']} | "
            f"{cell['ar@10']} | {cell['ar@100']} | {minutes:.1f} |"
        )
    return rows + _commands(runs) + [f"Machine: {runs[0]['machine']}; date {runs[0]['date'][:10]}."]


def other_tables() -> list[str]:
    runs = _load("regions")
    density = sorted(
        (r for r in runs if r.get("part") == "density"), key=lambda r: (r["data"], r["lowest_stride"])
    )
    slic = [r for r in runs if r.get("part") == "slic"]
    cost = [r for r in runs if r.get("part") == "cost"]
    touching = [r for r in runs if r.get("part") == "touching"]
    rows: list[str] = []
    if touching:
        rows += ["### Touching same-class objects (§4.1, spec protocol 4)", "",
                 "Recall@0.5 of val segments that touch another segment of their class vs isolated ones: a trained "
                 "run's proposals against the connected components of a *perfect* semantic labelling (the best any "
                 "pixel labeller could propose).", "",
                 "| data | run | val images | proposals: touching | proposals: isolated | semantic CC: touching | "
                 "semantic CC: isolated |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in touching:
            cells = [f"{100 * r[k]['recall50']:.1f} (n={r[k]['gts']})" for k in
                     ("proposals_touching", "proposals_isolated", "semantic_cc_touching", "semantic_cc_isolated")]  # fmt: skip
            rows.append(f"| {r['data']} | {r['run']} | {r['images']} | " + " | ".join(cells) + " |")
        rows += _commands(touching) + [""]
    if density:
        rows += ["### Proposal density (Table 4.2, spec protocol 3)", "",
                 "| data | run | lowest stride | AR | R@50 | R@70 | ABO | proposals / image | ms / image |",
                 "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in density:
            v = r["val"]
            rows.append(f"| {r['data']} | {r['run']} | {r['lowest_stride']} | {100 * v['ar']:.1f} | "
                        f"{100 * v['r50']:.1f} | {100 * v['r70']:.1f} | {100 * v['abo']:.1f} | "
                        f"{v['proposals_per_image']:.0f} | {v['ms_per_image']:.0f} |")  # fmt: skip
        rows += _commands(density) + [""]
    if slic:
        rows += ["### SLIC superpixels, pairs and triples as proposals (spec protocol 6, the MCG stand-in)", "",
                 "| data | AR | R@50 | R@70 | ABO | AR@10 | AR@100 | AR@1000 | proposals / image |",
                 "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in slic:
            v = r["val"]
            rows.append(f"| {r['data']} | {100 * v['ar']:.1f} | {100 * v['r50']:.1f} | {100 * v['r70']:.1f} | "
                        f"{100 * v['abo']:.1f} | {100 * v['ar@10']:.1f} | {100 * v['ar@100']:.1f} | "
                        f"{100 * v['ar@1000']:.1f} | {v['proposals_per_image']:.0f} |")  # fmt: skip
        rows += _commands(slic) + [""]
    for r in cost:
        rows += ["### Feature pyramid vs image pyramid (§4.3.4, spec protocol 2)", "",
                 f"Forward pass at 180x240, {r['threads']} threads, {r['machine']}: coarsest pathway alone "
                 f"{r['coarsest_1x_ms']:.0f} ms at 1x, {r['coarsest_2x_ms']:.0f} ms at 2x, "
                 f"{r['coarsest_3x_ms']:.0f} ms at 3x; the whole 4-pathway pyramid at 1x {r['pyramid_1x_ms']:.0f} "
                 f"ms (`{r['command']}`, {r['date'][:10]}; measured on a machine running other jobs)."]  # fmt: skip
    return rows


def region_tables() -> list[list[str]]:
    return [ablation_table(), other_tables()]
