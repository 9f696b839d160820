"""Tables of benchmarks/correspondence.py (P1-P3) and benchmarks/correspondence_keypoints.py (P4-P6)."""

from __future__ import annotations

from tables_common import _commands, _load


def _interval(value: dict, scale: float = 100.0, digits: int = 1) -> str:
    low, high = value["ci95"]
    centre = value["mean_iou"] if "mean_iou" in value else value["mean"]
    return f"{scale * centre:.{digits}f} [{scale * low:.{digits}f}, {scale * high:.{digits}f}]"


def _arm_order(run: str) -> tuple[int, str]:
    order = {"copy": 0, "zero": 0, "farneback": 1, "sift": 1, "grey-patch": 2, "random": 3}
    return order.get(run, 4), run


def _runs(prefix: str) -> list[dict]:
    return sorted(
        (r for r in _load("correspondence") if r["tag"].startswith(prefix)),
        key=lambda r: _arm_order(r["run"]),
    )


def locality_table() -> list[str]:
    """P1: NN reconstruction vs the uniform-rf control, PSNR per stage."""
    runs = _runs("p1_")
    if not runs:
        return []
    stages = list(runs[0]["stages"])
    rows = [
        "### Locality: nearest-neighbour reconstruction vs the uniform-rf control (`benchmarks/correspondence.py "
        "--part p1`, spec P1)",
        "",
        f"Each of {runs[0]['queries']} CamVid val frames (180x240) rebuilt from the stride-sized patches of its "
        f"cells' nearest cells (cosine) among every cell of the {runs[0]['database_frames']} train frames; the "
        f"control takes the same neighbours' patches at a uniform random offset inside a "
        f"{runs[0]['uniform_rf_px']} px (conv3-sized) rf. PSNR dB [95% bootstrap over queries]; gap = NN - "
        "control, paired.",
        "",
        "| backbone | stage | cells in database | NN k=1 | uniform-rf k=1 | gap k=1 | NN k=5 | uniform-rf k=5 | gap k=5 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        for stage in stages:
            e = r["stages"][stage]
            cells = [
                _interval(e[key], 1.0, 2)
                for key in ("nn_k1", "uniform_k1", "gap_k1", "nn_k5", "uniform_k5", "gap_k5")
            ]
            rows.append(f"| {r['run']} | {stage} | {e['database_cells']} | " + " | ".join(cells) + " |")
    return (
        rows
        + _commands(runs)
        + ["Minutes per backbone: " + ", ".join(f"{r['run']} {r['minutes']}" for r in runs) + "."]
    )


def warps_table() -> list[str]:
    """P2: flow on synthetic warps with exact GT."""
    runs = _runs("p2_")
    if not runs:
        return []
    first = runs[0]
    rows = [
        "### Alignment under synthetic warps with exact flow (`benchmarks/correspondence.py --part p2`, spec P2)",
        "",
        f"{first['pairs']} CamVid val frames A (180x240), each warped to B(x) = A(x + u(x)): affine (scale 0.9-1.1, "
        "+-10 deg, +-10% shift) + elastic (<= 8 px) + photometric jitter (gain, gamma, blur, noise). Flow B -> A "
        f"on the stage's grid of rf centres: NN (beta 0) or MRF with beta chosen by EPE on {first['train_pairs']} "
        "warped **train** frames. EPE px and flow PCK (% of pixels with a true match) [95% bootstrap over pairs]; "
        "alpha is of max(H, W) = 240 px; label transfer = mean IoU of A's labels read through the flow vs B's.",
        "",
        "| arm | stage | solver | beta (train) | EPE px | PCK 4 px | PCK 8 px | PCK 16 px | PCK a=0.05 | PCK a=0.025 | label mIoU | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        for stage, entry in r["stages"].items():
            for solver in ("zero", "nn", "mrf"):
                if solver not in entry:
                    continue
                e = entry[solver]
                beta = entry.get("beta", "-") if solver == "mrf" else ("0" if solver == "nn" else "-")
                pck = [_interval(e["pck"][k]) for k in ("4px", "8px", "16px", "alpha0.05", "alpha0.025")]
                rows.append(
                    f"| {r['run']} | {stage} | {solver} | {beta} | {_interval(e['epe'], 1.0, 2)} | "
                    + " | ".join(pck)
                    + f" | {_interval(e['label_transfer'])} | {r['minutes']} |"
                )
    return rows + _commands(runs)


def motion_table() -> list[str]:
    """P3: labels carried t -> t+k on CamVid's val clip, mean IoU with a 95% bootstrap interval per arm and gap."""
    runs = _runs("p3_")
    if not runs:
        return []
    gaps = sorted({int(k) for r in runs for k in r["gaps"]})
    rows = [
        "### Real-motion label transfer on CamVid's val clip (`benchmarks/correspondence.py`, spec P3)",
        "",
        "Labels of frame t carried to t+k by a flow from t+k to t, scored against t+k's labels (mean IoU %, "
        "confusion summed over all pairs; [95% bootstrap interval over pairs]); frames at 180x240. Conv flow: "
        "layer2 cells at their rf centres, MRF by min-sum BP, beta chosen on consecutive train frames (not on the "
        "clip). Arms: copy (zero flow), Farneback (OpenCV pixel flow), grey patches on the same grid and MRF, and "
        "the frozen backbones of a random init, the colorization run and the FCN-8s run.",
        "",
        "| arm | beta (train) | " + " | ".join(f"k = {k}" for k in gaps) + " | minutes |",
        "|---|---|" + "---|" * len(gaps) + "---|",
    ]
    order = {"copy": 0, "farneback": 1, "grey-patch": 2, "random": 3}
    for r in sorted(runs, key=lambda r: (order.get(r["run"], 4), r["run"])):
        cells = []
        for k in gaps:
            v = r["gaps"].get(str(k))
            cells.append(
                "-"
                if v is None
                else f"{100 * v['mean_iou']:.1f} [{100 * v['ci95'][0]:.1f}, {100 * v['ci95'][1]:.1f}]"
            )
        beta = r.get("beta", "-")
        rows.append(f"| {r['run']} | {beta} | " + " | ".join(cells) + f" | {r['minutes']} |")
    return rows + _commands(runs)


def correspondence_tables() -> list[list[str]]:
    return [locality_table(), warps_table(), motion_table()]
