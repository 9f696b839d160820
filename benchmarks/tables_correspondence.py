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


def _keypoint_runs(prefix: str) -> list[dict]:
    runs = [r for r in _load("correspondence") if r["tag"].startswith(prefix)]
    return sorted(runs, key=lambda r: _arm_order(r["run"]))


def transfer_keypoints_table() -> list[str]:
    """P4: intraclass keypoint transfer, PCK at 0.1 / 0.05 / 0.025 of the box."""
    runs = _keypoint_runs("p4_")
    if not runs:
        return []
    rows = [
        "### Intraclass keypoint transfer (`benchmarks/correspondence_keypoints.py --part p4`, spec P4, Table 2.2)",
        "",
        "Boxes + 10% margin warped to 96x96; 25 neighbours by deepest-stage cosine; MRF (beta by PCK on train "
        "instances); neighbours ordered by deformation energy; median of the top 5. PCK % at alpha of max(h, w) of "
        "the box [95% bootstrap over instances]; mean over keypoint types, then categories (synthetic: vehicle, "
        "person; CamVid: car, pedestrian components, 4 extreme points + centroid).",
        "",
        "| backbone | data | method | beta (train) | PCK 0.1 | PCK 0.05 | PCK 0.025 | minutes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        for data, entry in r["datasets"].items():
            for method, values in entry["methods"].items():
                beta = entry.get("beta", {}).get(method, "-")
                cells = [_interval(values["pck"][a]) for a in ("0.1", "0.05", "0.025")]
                rows.append(
                    f"| {r['run']} | {data} | {method} | {beta} | "
                    + " | ".join(cells)
                    + f" | {r['minutes']} |"
                )
    return rows + _commands(runs)


def classify_keypoints_table() -> list[str]:
    """P5: keypoint classification accuracy per stage / SIFT radius, and the sub-stride test."""
    runs = _keypoint_runs("p5_")
    if not runs:
        return []
    rows = [
        "### Keypoint classification (`benchmarks/correspondence_keypoints.py --part p5`, spec P5, Table 2.3)",
        "",
        "Which keypoint type sits at a given (image, point): the cell whose rf centre is nearest, one-vs-rest linear "
        "SVMs, C by 5-fold CV over training instances; accuracy % on held-out instances [95% bootstrap]. "
        "Sub-stride: fraction of 1-px argmaxes (shift-and-stitch, 21x21 window) within s/4 of the truth vs the "
        "uniform rate.",
        "",
        "| backbone | data | feature | accuracy | sub-stride hits (uniform rate) | minutes |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        for data, entry in r["datasets"].items():
            for feature, values in entry["features"].items():
                sub = (entry.get("substride") or {}).get(feature)
                hit = "-" if not sub else f"{100 * sub['fraction']:.1f} ({100 * sub['uniform_rate']:.1f})"
                rows.append(f"| {r['run']} | {data} | {feature} | {_interval(values['accuracy'])} | {hit} | "
                            f"{r['minutes']} |")  # fmt: skip
    return rows + _commands(runs)


def predict_keypoints_table() -> list[str]:
    """P6: keypoint prediction with and without the nearest-neighbour prior."""
    runs = _keypoint_runs("p6_")
    if not runs:
        return []
    rows = [
        "### Keypoint prediction (`benchmarks/correspondence_keypoints.py --part p6`, spec P6, Table 2.4)",
        "",
        "Synthetic boxes (jittered) rescaled to 128; layer3 cells in 3x3 blocks (conv) or dense SIFT at stride 8; "
        "linear SVMs with hard negatives; the prior is a Gaussian (sigma 0.044 S) at the nearest training "
        "instance's keypoint; C and eta by CV on train. PCK@0.1 % [95% bootstrap].",
        "",
        "| backbone | "
        + " | ".join(
            ("conv", "conv + prior", "prior only (conv NN)", "SIFT", "SIFT + prior", "prior only (SIFT NN)")
        )
        + " | minutes |",  # fmt: skip
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = ("conv", "conv+prior", "conv_prior_only", "sift", "sift+prior", "sift_prior_only")
    for r in runs:
        cells = [_interval(r["methods"][k]["pck"]["0.1"]) if k in r["methods"] else "-" for k in keys]
        rows.append(f"| {r['run']} | " + " | ".join(cells) + f" | {r['minutes']} |")
    return rows + _commands(runs)


def correspondence_tables() -> list[list[str]]:
    return [locality_table(), warps_table(), motion_table(), transfer_keypoints_table(), classify_keypoints_table(),
            predict_keypoints_table()]  # fmt: skip
