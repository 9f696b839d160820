"""Render the result JSONs under benchmarks/results/ into the generated section of docs/results.md.

Numbers in docs/results.md come only from here (never typed by hand). Usage: python benchmarks/summarize.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables_common import RESULTS, ROOT, _commands, _load, fmt  # noqa: E402
from tables_correspondence import correspondence_tables  # noqa: E402
from tables_depth_joint import depth_joint_tables  # noqa: E402
from tables_mixtures import mixture_tables  # noqa: E402
from tables_regions import region_tables  # noqa: E402
from tables_time_budget import time_budget_tables  # noqa: E402

DOC = ROOT / "docs" / "results.md"
START, END = "<!-- generated:start -->", "<!-- generated:end -->"


def camvid_fcn_table() -> list[str]:
    rows = [
        "### CamVid FCN runs (`benchmarks/camvid_fcn.py`)",
        "",
        "| run | epochs | class weights | minutes | pixel acc | mean acc | mean IoU | fw IoU | mIoU flip-TTA"
        " | mIoU scales 0.5+0.75 & flips | trimap acc 2/5/10 px | date | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted((RESULTS / "camvid_fcn").glob("*.json")):
        r = json.loads(path.read_text())
        v, c = r["val"], r["config"]
        flip = r.get("val_flip_tta", {}).get("mean_iou")
        multi_scale = r.get("val_ms_flip_tta", {}).get("mean_iou")
        trimap = "/".join(fmt(v.get(f"trimap_acc@{w}px")) for w in (2, 5, 10))
        rows.append(
            f"| {r['tag']} | {c['epochs']} | {c['class_weights']} | {r['wall_minutes_including_eval']} | "
            f"{fmt(v['pixel_acc'])} | {fmt(v['mean_acc'])} | **{fmt(v['mean_iou'])}** | {fmt(v['fw_iou'])} | "
            f"{fmt(flip)} | {fmt(multi_scale)} | {trimap} | {r['date'][:10]} | `{r['command']}` |"
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


# Geometry fix (issue 15): runs of the misaligned code and their reruns at the same recipe ("geo_" tags).
GEOMETRY_PAIRS = (
    ("bf16e110_fcn8s_seed0", "geo_e110_fcn8s_seed0"),
    ("cmp16_bf16_fcn32s_seed0", "geo_cmp16_fcn32s_seed0"),
    ("cmp16_bf16_fcn16s_seed0", "geo_cmp16_fcn16s_seed0"),
    ("cmp16_bf16_fcn8s_seed0", "geo_cmp16_fcn8s_seed0"),
    ("cmp16_bf16_fcn32s_seed1", "geo_cmp16_fcn32s_seed1"),
    ("cmp16_bf16_fcn16s_seed1", "geo_cmp16_fcn16s_seed1"),
    ("cmp16_bf16_fcn8s_seed1", "geo_cmp16_fcn8s_seed1"),
)
THIN_CLASSES = ("pole", "sign_symbol", "pedestrian", "bicyclist")


def geometry_table() -> list[str]:
    """Before (cells read at s*i + (s-1)/2) vs after (at s*i) the geometry fix, same recipe and seed."""
    runs = {p.stem: json.loads(p.read_text()) for p in (RESULTS / "camvid_fcn").glob("*.json")}
    rows = [
        "### Geometry fix: the same recipes before and after (`benchmarks/camvid_fcn.py`, issue 15)",
        "",
        "| before -> after | mean IoU | trimap acc 2 px | "
        + " | ".join(f"{c} IoU" for c in THIN_CLASSES)
        + " |",
        "|---|---|---|" + "---|" * len(THIN_CLASSES),
    ]
    for before, after in GEOMETRY_PAIRS:
        if before not in runs or after not in runs:
            continue
        old, new = runs[before]["val"], runs[after]["val"]
        cells = [f"{fmt(old[k])} -> **{fmt(new[k])}**" for k in ("mean_iou", "trimap_acc@2px")] + [
            f"{fmt(old['per_class_iou_named'][c])} -> {fmt(new['per_class_iou_named'][c])}"
            for c in THIN_CLASSES
        ]
        rows.append(f"| {before} -> {after} | " + " | ".join(cells) + " |")
    staged = [runs.get(f"geo_staged6-5-5_{a}_seed0") for a in ("fcn32s", "fcn16s", "fcn8s")]
    if all(staged):
        minutes = sum(r["wall_minutes_including_eval"] for r in staged)
        final = staged[-1]["val"]
        rows += [
            "",
            f"Staged 32s (6 epochs) -> 16s (5) -> 8s (5), lr / 100 at each upgrade (Long §3.3.4), seed 0: mean IoU "
            f"{' -> '.join(fmt(r['val']['mean_iou']) for r in staged)}, final trimap acc 2 px "
            f"{fmt(final['trimap_acc@2px'])}, {minutes:.1f} minutes in all (the 8s trained directly for 16 epochs: "
            "`geo_cmp16_fcn8s_seed0` above).",
        ]
    return rows if len(rows) > 4 else []


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
        key = (_code(r), r["freeze"], r["labels_fraction"], r["init"])
        groups.setdefault(key, {})[r["seed"]] = r["val"]["mean_iou"]
        steps[key] = r["iterations"]
    rows = [
        "### Colorization -> segmentation transfer on CamVid val (`benchmarks/colorization_transfer.py`)",
        "",
        "FCN-8s / ResNet-18 (grey input; RGB for random-rgb and the multi-proxy arms proxy-*), same number of "
        'fine-tuning steps for every arm; mean IoU (%) as mean +- sample std over seeds; "gap" is the mean over '
        'seeds of (arm - random init of the same input and code) for the same seed. Code: "misaligned" = before '
        'the geometry fix of 2026-12-01, "geometry fix" = after it (pretraining rerun too).',
        "",
        "| code | backbone | labels | init | steps | seeds | mean IoU | gap vs random |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = sorted(groups, key=lambda k: (k[0], k[1], k[2], not k[3].startswith("random"), k[3]))
    for key in order:
        code, freeze, fraction, init = key
        by_seed = groups[key]
        random_init = "random-rgb" if init == "random-rgb" or init.startswith("proxy-") else "random"
        baseline = groups.get((code, freeze, fraction, random_init), {})
        paired = [by_seed[s] - baseline[s] for s in by_seed if s in baseline]
        gap = "-" if init.startswith("random") or not paired else _mean_std(paired)
        stage, _, recalibrated = freeze.partition("+")
        trained = (
            "fine-tuned" if stage == "none" else ("frozen" if stage == "backbone" else f"frozen to {stage}")
        )
        trained += " + BatchNorm re-estimated" if recalibrated else ""
        rows.append(
            f"| {code} | {trained} | {100 * fraction:g}% | {init} | {steps[key]} | {len(by_seed)} | "
            f"{_mean_std(list(by_seed.values()))} | {gap} |"
        )
    commands = sorted({r["command"] for r in runs})
    return rows + ["", "Commands: " + "; ".join(f"`{c}`" for c in commands)]


def _code(record: dict) -> str:
    """Which code measured a record: before the geometry fix (2026-12-01) or after it (tags geo_...)."""
    after = re.match(r"geo\d*_", record["tag"]) or re.search(r"_geo\d*(_|$)", record["tag"])
    return "geometry fix" if after else "misaligned"


def label_efficiency_plot() -> list[str]:
    """The label-efficiency curve (issue: pipeline) as a PNG: fine-tuned val mean IoU vs labelled fraction per init."""
    runs = [r for r in _load("colorization_transfer") if r["freeze"] == "none" and _code(r) == "misaligned"]
    curves: dict[str, dict[float, list[float]]] = {}
    for r in runs:
        curves.setdefault(f"{r['init']} init -> FT", {}).setdefault(r["labels_fraction"], []).append(
            100 * r["val"]["mean_iou"]
        )
    for r in _load("mixmatch"):  # the pipeline's full stage sequence, where it was run per fraction
        if r["arm"] == "colorization_mm-graph_ft" and _variant(r) == "":
            by_fraction = curves.setdefault("colorization -> M&M -> FT", {})
            by_fraction.setdefault(r.get("labels_fraction", 1.0), []).append(100 * r["val"]["mean_iou"])
    if not curves:
        return []
    image = _curves_png(
        {name: {100 * f: v for f, v in by_fraction.items()} for name, by_fraction in curves.items()},
        "label_efficiency.png", xlabel="train labels used (%)", title="CamVid label efficiency at equal fine-tuning steps",
        log_ticks=[10, 25, 50, 100],
    )  # fmt: skip
    return [
        "### Label efficiency on CamVid val (from the transfer and Mix-and-Match runs above)",
        "",
        f"![label efficiency](images/{image.name}) (points: mean over seeds; bars: half the min-max range)",
    ]


def _curves_png(
    curves: dict[str, dict[float, list[float]]],
    name: str,
    xlabel: str,
    title: str,
    log_ticks: list[float] | None = None,
) -> Path:
    """docs/images/<name>: one line per curve, mean over seeds at each x, bars half the min-max range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    for label, by_x in sorted(curves.items()):
        xs = sorted(by_x)
        means = [sum(by_x[x]) / len(by_x[x]) for x in xs]
        spreads = [max(by_x[x]) - min(by_x[x]) for x in xs]
        axes.errorbar(xs, means, yerr=[s / 2 for s in spreads], marker="o", capsize=3, label=label)
    axes.set(xlabel=xlabel, ylabel="val mean IoU (%)", title=title)
    if log_ticks:
        axes.set_xscale("log")
        axes.set_xticks(log_ticks, labels=[f"{t:g}" for t in log_ticks])
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    image = DOC.parent / "images" / name
    image.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(image)
    plt.close(figure)
    return image


def _paired_gap(by_seed: dict[int, float], baseline: dict[int, float]) -> str:
    paired = [by_seed[s] - baseline[s] for s in by_seed if s in baseline]
    return _mean_std(paired) if paired else "-"


def _stage_features(record: dict) -> tuple[dict, dict] | None:
    """(before, after) patch-feature diagnostics of an M&M / softmax middle stage."""
    stage = record.get("middle_stage")
    if not stage:
        return None
    diagnostics = stage["diagnostic"]
    output = str(Path(stage["config"]["output"]) / "last.safetensors")
    after = diagnostics.get(output)
    before = next((v for k, v in diagnostics.items() if k != output), None)
    return (before, after) if before and after else None


def mixmatch_table() -> list[str]:
    """FT mean IoU per arm (mean +- std over seeds), paired gap to colorization -> FT, and the patch features."""
    runs = _load("mixmatch")
    if not runs:
        return []
    arms: dict[tuple[float, str], dict[int, float]] = {}  # (labels fraction, arm) -> seed -> mean IoU
    features: dict[tuple[float, str], list[tuple[dict, dict]]] = {}
    for r in runs:
        key = (r.get("labels_fraction", 1.0), r["arm"] + _variant(r))
        arms.setdefault(key, {})[r["seed"]] = r["val"]["mean_iou"]
        stage = _stage_features(r)
        if stage:
            features.setdefault(key, []).append(stage)
    rows = [
        "### Mix-and-Match tuning on CamVid val (`benchmarks/mixmatch.py`)",
        "",
        "Grey FCN-8s / ResNet-18 fine-tuned for the same steps after each middle stage; mean IoU (%) mean +- std "
        "over seeds, gap paired by seed. Patch features: nearest-class-centroid accuracy (%) and intra/inter "
        "class distance ratio of val patches, embedded by the backbone before -> after the middle stage.",
        "",
        "| labels | arm | seeds | FT mean IoU | gap vs colorization_ft (same pretraining) | centroid acc before -> after | intra/inter before -> after |",
        "|---|---|---|---|---|---|---|",
    ]
    order = sorted(arms, key=lambda key: (-key[0], key[1] != "colorization_ft", key[1]))
    for fraction, arm in order:
        by_seed, stages = arms[fraction, arm], features.get((fraction, arm), [])
        acc = ratio = "-"
        if stages:
            acc = f"{_mean_std([b['centroid_acc'] for b, _ in stages])} -> {_mean_std([a['centroid_acc'] for _, a in stages])}"
            ratio = " -> ".join(
                f"{sum(x[i]['intra_inter_ratio'] for x in stages) / len(stages):.2f}" for i in (0, 1)
            )
        # The baseline is colorization -> FT from the same pretraining (e.g. the geo_ checkpoint for _geo_* arms).
        variant = arm.split("_ft", 1)[-1]  # e.g. _geo2_margin0.5 -> the family _geo2
        family = "_" + variant.split("_")[1] if variant.startswith("_geo") else ""
        baseline = arms.get((fraction, "colorization_ft" + family), {})
        gap = "-" if arm.startswith("colorization_ft") else _paired_gap(by_seed, baseline)
        rows.append(
            f"| {fraction:.0%} | {arm} | {len(by_seed)} | {_mean_std(list(by_seed.values()))} | {gap} | {acc} "
            f"| {ratio} |"
        )
    return rows + _commands(runs)


def _variant(record: dict) -> str:
    """A Mix-and-Match run's variant tag (e.g. _geo_margin0.5), '' for the default recipe."""
    return record["tag"][len(record["arm"]) :].rsplit("_seed", 1)[0].split("_f0")[0]


def label_ae_tables() -> list[str]:
    """The label autoencoder (reconstruction) and the regularised arms (paired gap to the baseline)."""
    runs = _load("label_ae")
    if not runs:
        return []
    rows = ["### Label-structure regulariser on CamVid val (`benchmarks/label_ae.py`)", ""]
    for r in (r for r in runs if "val_reconstruction" in r):
        rows.append(
            f"Label autoencoder `{r['tag']}`: {r['parameters']:,} parameters, {r['iterations']} steps, "
            f"{r['wall_minutes_including_eval']} min; val reconstruction mean IoU "
            f"**{fmt(r['val_reconstruction']['mean_iou'])}**."
        )
    arms: dict[tuple, dict[int, float]] = {}
    steps: dict[tuple, int] = {}
    for r in (r for r in runs if "arm" in r):
        key = (r["augment"], r["arm"], r["aux_weight"])
        arms.setdefault(key, {})[r["seed"]] = r["val"]["mean_iou"]
        steps[key] = r["iterations"]
    rows += [
        "",
        "From-scratch FCN-8s / ResNet-18, same steps and data stream per seed; mean IoU (%) of the plain "
        "inference model (branch dropped), mean +- std over seeds, gap paired by seed.",
        "",
        "| augmentation | arm | lambda | steps | seeds | mean IoU | gap vs baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    regimes = ["none", "mild", "aug"]  # weakest augmentation first
    for key in sorted(arms, key=lambda k: (regimes.index(k[0]), k[1] != "baseline", k[1], k[2])):
        augment, arm, weight = key
        baseline = arms.get((augment, "baseline", 0.0), {})
        gap = "-" if arm == "baseline" else _paired_gap(arms[key], baseline)
        rows.append(
            f"| {augment} | {arm} | {weight:g} | {steps[key]} | {len(arms[key])} | "
            f"{_mean_std(list(arms[key].values()))} | {gap} |"
        )
    return rows + _commands([r for r in runs if "arm" in r] or runs) + _lambda_sweep_png(arms)


def _lambda_sweep_png(arms: dict[tuple, dict[int, float]]) -> list[str]:
    """Mostajabi Fig. 5's setting: frozen-decoder mean IoU against lambda (lambda 0 = the baseline arm)."""
    sweep = {
        weight: by_seed
        for (augment, arm, weight), by_seed in arms.items()
        if augment == "none" and arm == "frozen"
    }
    if len(sweep) < 2:
        return []
    if ("none", "baseline", 0.0) in arms:
        sweep[0.0] = arms["none", "baseline", 0.0]
    curve = {weight: [100 * v for v in by_seed.values()] for weight, by_seed in sweep.items()}
    image = _curves_png({"frozen decoder, no augmentation": curve}, "label_ae_lambda.png", xlabel="lambda",
                        title="Label-AE regulariser: lambda sweep on CamVid val")  # fmt: skip
    return [
        "",
        f"![lambda sweep](images/{image.name}) (points: mean over seeds; bars: half the min-max range)",
    ]


def zoomout_table() -> list[str]:
    """Mean IoU per arm (mean +- std over seeds), paired gap to FCN-8s, minutes per run and parameters."""
    runs = _load("zoomout")
    if not runs:
        return []
    arms: dict[str, dict[int, dict]] = {}
    for r in runs:
        arms.setdefault(r["arm"], {})[r["seed"]] = r
    fcn = {s: r["val"]["mean_iou"] for s, r in arms.get("fcn8s", {}).items()}
    rows = [
        "### Zoom-out vs FCN-8s on CamVid val (`benchmarks/zoomout.py`)",
        "",
        "End-to-end arms: from-scratch ResNet-18, the CamVid recipe, the same steps and data stream per seed. "
        "Superpixel arms: an MLP on a frozen backbone's zoom-out features (steps over superpixels, val at 1/4 "
        "resolution), with the superpixel oracle. Mean IoU (%) mean +- std over seeds, gap paired by seed; "
        "minutes per run (training + final evaluation) on this 2-core CPU.",
        "",
        "| arm | parameters | steps | seeds | minutes per run | mean IoU | gap vs fcn8s | oracle mean IoU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in sorted(arms, key=lambda a: (a != "fcn8s", a)):
        by_seed = arms[arm]
        scores = {s: r["val"]["mean_iou"] for s, r in by_seed.items()}
        first = next(iter(by_seed.values()))
        minutes = sum(r["wall_minutes_including_eval"] for r in by_seed.values()) / len(by_seed)
        superpixel = arm.startswith("superpixel")
        gap = "-" if arm == "fcn8s" or superpixel else _paired_gap(scores, fcn)
        oracle = [r["val"]["oracle_mean_iou"] for r in by_seed.values() if "oracle_mean_iou" in r["val"]]
        rows.append(
            f"| {arm} | {first['parameters'] / 1e6:.1f} M | {first['iterations']} | {len(by_seed)} | "
            f"{minutes:.1f} | {_mean_std(list(scores.values()))} | {gap} | "
            f"{_mean_std(oracle) if oracle else '-'} |"
        )
    return rows + _commands(runs)


def weak_tags_table() -> list[str]:
    """Per protocol, strategy and seed: the localiser's val point precision, the train points and the model."""
    runs = _load("weak_tags")
    if not runs:
        return []
    reference = {
        code: [r["val"]["mean_iou"] for r in _load("colorization_transfer")
               if r["init"] == "colorization" and r["freeze"] == "none" and r["labels_fraction"] == 1.0
               and _code(r) == code]
        for code in ("misaligned", "geometry fix")
    }  # fmt: skip
    shown = "; ".join(f"{code}: {_mean_std(v)}" for code, v in reference.items() if v)
    rows = [
        "### Segmentation from image tags on CamVid val (`benchmarks/weak_tags.py`)",
        "",
        "Localiser on the frozen colorization backbone trained on image tags only (whole frames, or 90x120 crops "
        "with the crop's own tags); 20 points per tagged class (diverse, top-k, or every location: dense) on every "
        "train frame (or on 4 random crops of it, each its own weakly labelled image); grey FCN-8s fine-tuned from "
        "the colorization backbone on those points for the transfer study's full-label steps. Reference, "
        f"colorization -> FT with every label: {shown or '-'} mean IoU. Tags per image: the mean number of classes "
        "a training image's tags name (11 = no information).",
        "",
        "| code | protocol | points | seed | tags per image | val point precision | labelled pixels | "
        "pixel precision | steps | mean IoU | minutes, all stages |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    key = lambda r: (_code(r), r.get("protocol", "frames"), r.get("strategy", "diverse"), r["seed"])  # noqa: E731
    for r in sorted(runs, key=key):
        points = r["train_points"]
        tags = points.get("tags_per_image")
        rows.append(
            f"| {_code(r)} | {r.get('protocol', 'frames')} | {r.get('strategy', 'diverse')} | {r['seed']} | "
            f"{f'{tags:.2f}' if tags is not None else '-'} | {fmt(r['localiser_val']['point_precision'])} | "
            f"{points['labelled_pixels']:,} | {fmt(points['pixel_precision'])} | {r['iterations']} | "
            f"**{fmt(r['val']['mean_iou'])}** | {r['minutes_all_stages']} |"
        )
    return rows + _commands(runs)


def multiproxy_bench_tables() -> list[str]:
    """The optimisation test bench (Larsson §4.6 on CamVid patches): test accuracy per run, and the lr sweep."""
    runs = _load("multiproxy_bench")
    sweep = [
        json.loads(p.read_text()) for p in sorted((RESULTS / "multiproxy_bench" / "sweep").glob("*.json"))
    ]
    rows: list[str] = []
    if runs:
        rows += [
            "### Multi-task optimisation test bench on CamVid 32x32 patches (`benchmarks/multiproxy_bench.py`)",
            "",
            "Shared base + one head per task trained for equal steps; then a linear probe on the frozen base (probe "
            'frames) scored on val patches (test accuracy, %); "div" = the loss became non-finite. g1 ratio: '
            "geometric mean over logged steps of max/min per-task ||g_m||_1 on the shared weights; cos: mean over "
            "tasks and steps of cos(step direction, g_m).",
            "",
            "| tag | net | split | optimiser | seed | steps | test acc | held-out probe acc | g1 ratio | mean cos | "
            "minutes |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in sorted(
            runs, key=lambda r: (r["tag"].split(r["net"])[0], r["net"], r["split"], r["optimiser"], r["seed"])
        ):
            d = r.get("diagnostics") or {}
            cosines = [v for k, v in d.items() if k.startswith("cos_")]
            test = "div" if r.get("diverged") else fmt(r["val"]["test_accuracy"])
            held = "-" if r.get("diverged") else fmt(r["val"]["probe_heldout_accuracy"])
            ratio = f"{d['g1_ratio_geomean']:.2f}" if "g1_ratio_geomean" in d else "-"
            cos = f"{sum(cosines) / len(cosines):.2f}" if cosines else "-"
            rows.append(
                f"| {r['tag'].split(r['net'])[0] or '-'} | {r['net']} | {r['split']} | {r['optimiser']} | "
                f"{r['seed']} | {r.get('iterations', '-')} | **{test}** | {held} | {ratio} | {cos} | "
                f"{r['wall_minutes_including_eval']} |"
            )
        rows += _commands(runs) + [""]
    if sweep:
        rows += [
            "### Test-bench learning rates (`benchmarks/multiproxy_bench.py --sweep`): chosen on held-out probe "
            "frames",
            "",
            "| optimiser family | lr | steps | held-out probe acc |",
            "|---|---|---|---|",
        ]
        for r in sorted(sweep, key=lambda r: (r["lr_family"], r["config"]["lr"])):
            held = "div" if r.get("diverged") else fmt(r["val"]["probe_heldout_accuracy"])
            rows.append(f"| {r['lr_family']} | {r['config']['lr']:g} | {r.get('iterations', '-')} | {held} |")
        rows += _commands(sweep)
    return rows


def peers_table() -> list[str]:
    runs = _load("peers")
    if not runs:
        return []
    rows = [
        "### pixelwise vs peer libraries at equal wall-clock on CamVid (`benchmarks/peers.py`)",
        "",
        "Same data stream, plain loop, AdamW, bf16 autocast, poly-over-time schedule; no pretrained weights.",
        "",
        "| model | budget min | parameters | steps | train img/s | inference img/s | peak memory MB | val images | val mean IoU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(runs, key=lambda r: -r["val"]["mean_iou"]):
        rows.append(
            f"| {r['model']} | {r['budget_minutes']:g} | {r['parameters'] / 1e6:.1f} M | {r['steps']} | "
            f"{r['train_images_per_s']:.2f} | {r['inference_images_per_s']:.2f} | {r['peak_memory_mb']:.0f} "
            f"({r['peak_memory_kind']}) | {r['val_images']} | **{fmt(r['val']['mean_iou'])}** |"
        )
    return rows + _commands(runs) + [f"Machine: {runs[0]['machine']}; date {runs[0]['date'][:10]}."]


def loop_overhead_line() -> list[str]:
    paths = sorted(RESULTS.glob("loop_overhead*.json"))  # the default recipe, then its variants (--tag)
    if not paths:
        return []
    rows = ["### Training-loop overhead (`benchmarks/loop_overhead.py`)", ""]
    for path in paths:
        r = json.loads(path.read_text())
        variant = r["tag"][len("loop_overhead_") :] or "default recipe"
        rows.append(
            f"- {variant}: `pixelwise train` {r['loop_images_per_s']:.2f} img/s vs the bare model's loss + backward "
            f"+ step on fixed tensors {r['bare_images_per_s']:.2f} img/s: overhead **{100 * r['overhead']:.1f}%** "
            f"(target < 10%). `{r['command']}`, {r['machine']}, {r['date'][:10]}."
        )
    return rows


def main() -> None:
    sections = [
        geometry_table(),
        camvid_fcn_table(),
        seed_summary(),
        upper_bound_table(),
        colorization_pretrain_table(),
        colorization_transfer_table(),
        label_efficiency_plot(),
        mixmatch_table(),
        label_ae_tables(),
        zoomout_table(),
        weak_tags_table(),
        multiproxy_bench_tables(),
        *correspondence_tables(),
        *region_tables(),
        *mixture_tables(),
        *depth_joint_tables(),
        *time_budget_tables(),
        peers_table(),
        loop_overhead_line(),
    ]
    generated = "\n".join([START, "", *("\n".join(rows) + "\n" for rows in sections if rows), END])
    text = DOC.read_text() if DOC.exists() else f"# Results\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(head + generated + tail)
    print(f"updated {DOC}")


if __name__ == "__main__":
    main()
