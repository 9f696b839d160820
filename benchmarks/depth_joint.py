"""Depth from segmentation, the two-part joint model, late fusion and the multi-task FCN on the synthetic scenes
(spec ../shared/specs/depth-joint.md P1 / P2; Mostajabi thesis §5.5 Tables 5.5 / 5.6; Long thesis §3.4).

CAVEAT (read beside every number): CamVid has no depth, so every protocol runs on the synthetic scenes, a
substitute for NYUv2. Even in the harder variant used here (``synthetic:N:HxW:hard``: per-scene camera height
and horizon, texture in metres) depth is close to a function of the label layout *by construction* (objects
have one depth set by the row their base stands on, sky at 80 m), so "Seg beats RGB" reproduces easily and says
little about real scenes. The procedures (inputs, losses, balancing, schedules, ablations, metrics) are the
thesis's; the data and the scale are not.

Parts (each (part, arm, seed) writes benchmarks/results/depth_joint/<part>_<arm>_s<seed>.json and is skipped
when that exists; an interrupted run resumes from runs/bench/depth_joint/<tag>/):

    p1         Table 5.5 analogue: depth from rgb / seg / seg+rgb / pred-seg / pred-seg+rgb (pred-seg from a
               few-label segmentation run, arm "segnet", trained first per seed)
    p2         Table 5.6 analogue: arms a two-part, b baseline, c no-seg, d no-depth, e 2x-seg, f two-part
               without the depth-only scenes, g single-part; equal steps per arm; phase 2 on the labelled scenes
    fusion     Long Table 3.5 ordering: RGB alone vs early (4-channel) vs late fusion (two streams, summed)
    multitask  one backbone with seg + depth heads vs two single-task networks at equal compute (each single
               network gets half the multi-task run's epochs)

CPU scale (the default; ``--full`` is the spec's protocol: 120x160, P1 795 / 654 scenes, P2 40 + 2,000 / 200,
head width 256, Adam 1e-4 60 / 40+20 epochs; about 20-30 min per arm on a GPU-less CPU is far beyond this
session). The default shrinks images to 48x64, the sets to P1 200 train / 100 val and P2 16 labelled + 304
depth-only / 100 val, the zoom-out classifier to 64 hidden units, and trains with AdamW 2e-3 + poly for a few
epochs (below); both are recorded in each JSON ("scale"). Usage:

    python benchmarks/depth_joint.py --parts p1 p2 --seeds 0 1 2
    python benchmarks/depth_joint.py --parts p2 --arms a b f --seeds 0 1 2
    python benchmarks/depth_joint.py --full --parts p1 p2 fusion multitask --seeds 0 1 2   # the spec's size
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, result_record, write_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "depth_joint"
RUNS = ROOT / "runs" / "bench" / "depth_joint"
CAVEAT = (
    "synthetic scenes (a NYUv2 substitute): even in the hard variant depth is close to a function of the label "
    "layout by construction, so Seg-beats-RGB reproduces easily and says little about real scenes"
)

SCALES: dict[str, dict[str, Any]] = {
    "cpu": dict(
        size="48x64", p1_train=200, p1_val_spec=400, p2_images=320, p2_labelled=16, p2_val_spec=400,
        head_width=64, batch=8, p1_epochs=8, seg_epochs=8, seg_labels=0.25, p2_batch=4, p2_steps=204,
        p2_balance_steps=102, p2_phase2_steps=20, fusion_epochs=8, multitask_epochs=8, lr=2e-3,
        optimizer="adamw", note="CPU scale: 48x64, small sets, head 64, AdamW 2e-3 + poly, few epochs",
    ),
    "full": dict(
        size="120x160", p1_train=795, p1_val_spec=2616, p2_images=2040, p2_labelled=40, p2_val_spec=800,
        head_width=256, batch=8, p1_epochs=60, seg_epochs=60, seg_labels=0.1, p2_batch=8, p2_steps=11440,
        p2_balance_steps=572, p2_phase2_steps=100, fusion_epochs=60, multitask_epochs=60, lr=1e-4,
        optimizer="adamw", note="the spec's protocol (P1 795/654, P2 40 + 2,000 / 200, head 256, Adam 1e-4)",
    ),
}  # fmt: skip
P1_ARMS = ("rgb", "seg", "seg+rgb", "pred-seg", "pred-seg+rgb")
P2_ARMS = {  # spec letter: (JointConfig arm, train on the depth-only scenes)
    "a": ("two-part", True),
    "b": ("baseline", True),
    "c": ("no-seg", True),
    "d": ("no-depth", False),
    "e": ("2x-seg", True),
    "f": ("two-part", False),
    "g": ("single-part", True),
}
FUSION_ARMS = ("rgb", "early", "late")
MULTITASK_ARMS = ("multitask", "seg-only", "depth-only")


def common_options(scale: dict[str, Any], seed: int, output: Path) -> dict[str, Any]:
    height, width = (int(v) for v in scale["size"].split("x"))
    return dict(
        output=str(output), backbone="resnet18", crop=[height, width], hflip=True, optimizer=scale["optimizer"],
        lr=scale["lr"], schedule="poly", seed=seed, threads=1, num_examples=0, eval_every=0, log_every=50,
        resume=(output / "last.safetensors").is_file(),
    )  # fmt: skip


def both_divisors(trainer: Any, task: Any) -> dict[str, float]:
    """AbsRel / SqRel divided by the prediction (the thesis's convention) for a depth run's last model."""
    from pixelwise.engine.inference import rescale
    from pixelwise.metrics import DepthErrors

    model = trainer.model.eval()
    errors = DepthErrors("prediction")
    with torch.no_grad():
        for images, targets in trainer.val_loader:
            inputs = task.model_inputs(images, targets) if hasattr(task, "model_inputs") else images
            depth = model(rescale(inputs, task.config.eval_scale))["depth"].float()
            errors.update(
                torch.nn.functional.interpolate(depth, size=targets["depth"].shape[-2:]), targets["depth"]
            )
    scores = errors.scores()
    return {"abs_rel_by_prediction": scores["abs_rel"], "sq_rel_by_prediction": scores["sq_rel"]}


def fit(
    part: str, arm: str, seed: int, config: Any, task: Any, scale_name: str, extra=None
) -> dict[str, Any]:
    """Train one (part, arm, seed), write its JSON; returns the record."""
    from pixelwise.engine.trainer import Trainer

    started = time.time()
    trainer = Trainer(config, task)
    scores = trainer.fit()
    values = dict(extra(trainer, task)) if extra else {}
    minutes = (time.time() - started) / 60
    record = result_record(
        "depth_joint", f"{part}_{arm}_s{seed}", config, minutes, part=part, arm=arm, seed=seed,
        scale=scale_name, scaling=SCALES[scale_name], caveat=CAVEAT, iterations=trainer.state.iteration,
        training_images=len(trainer.train_set), parameters=sum(p.numel() for p in trainer.model.parameters()),
        val={k: v for k, v in scores.items() if k not in ("per_class_acc", "per_class_iou", "selection")},
        **values,
    )  # fmt: skip
    write_result(RESULTS / f"{part}_{arm}_s{seed}.json", record)
    shown = {k: round(v, 4) for k, v in record["val"].items() if k in ("rmse", "mean_iou", "depth_rmse")}
    print(
        f"{part} {arm} seed {seed}: {shown} after {trainer.state.iteration} steps, {minutes:.1f} min",
        flush=True,
    )
    return record


def done(part: str, arm: str, seed: int) -> bool:
    return (RESULTS / f"{part}_{arm}_s{seed}.json").is_file()


def run_p1(scale_name: str, seeds: list[int], arms: list[str]) -> None:
    from pixelwise.methods.depth import DepthConfig, DepthTask
    from pixelwise.methods.segmentation import SegmentationTask, TrainConfig

    s = SCALES[scale_name]
    data = f"synthetic:{s['p1_train']}:{s['size']}:hard"
    val = f"synthetic:{s['p1_val_spec']}:{s['size']}:hard"
    for seed in seeds:
        segnet = RUNS / f"p1_segnet_s{seed}"
        if any(a.startswith("pred-seg") for a in arms) and not done("p1", "segnet", seed):
            config = TrainConfig(**common_options(s, seed, segnet), data=data, val_data=val, arch="zoomout",
                                 head_width=s["head_width"], batch_size=s["batch"], epochs=s["seg_epochs"],
                                 labels_fraction=s["seg_labels"])  # fmt: skip
            fit("p1", "segnet", seed, config, SegmentationTask(config), scale_name)
        for arm in arms:
            if done("p1", arm, seed):
                continue
            config = DepthConfig(**common_options(s, seed, RUNS / f"p1_{arm}_s{seed}"), data=data, val_data=val,
                                 arch="zoomout", head_width=s["head_width"], batch_size=s["batch"],
                                 epochs=s["p1_epochs"], input=arm,
                                 seg_from=str(segnet) if arm.startswith("pred-seg") else None)  # fmt: skip
            fit("p1", arm, seed, config, DepthTask(config), scale_name, extra=both_divisors)


def run_p2(scale_name: str, seeds: list[int], arms: list[str]) -> None:
    from pixelwise.methods.joint import JointConfig

    s = SCALES[scale_name]
    data = f"synthetic:{s['p2_images']}:{s['size']}:hard"
    val = f"synthetic:{s['p2_val_spec']}:{s['size']}:hard"
    fraction = s["p2_labelled"] / s["p2_images"]
    for seed in seeds:
        for letter in arms:
            if done("p2", letter, seed):
                continue
            arm, depth_only = P2_ARMS[letter]
            labelled_only = not depth_only or arm == "no-depth"
            steps_per_epoch = sampler_steps(s, labelled_only)
            epochs = max(1, round(s["p2_steps"] / steps_per_epoch))  # equal steps per arm
            balance = max(1, round(s["p2_balance_steps"] / steps_per_epoch))
            phase2 = max(1, round(s["p2_phase2_steps"] / sampler_steps(s, True)))
            output = RUNS / f"p2_{letter}_s{seed}"
            options = common_options(s, seed, output)
            options["resume"] = output.exists()
            config = JointConfig(**options, data=data, val_data=val, arch="zoomout", head_width=s["head_width"],
                                 batch_size=s["p2_batch"], epochs=epochs, labels_fraction=fraction, arm=arm,
                                 depth_only=depth_only, balance_epochs=balance, phase2_epochs=phase2)  # fmt: skip
            run_phases(letter, seed, config, scale_name)


def sampler_steps(scale: dict[str, Any], labelled_only: bool) -> int:
    """Batches per epoch of P2's labelled-batch sampler (slot 0 of each batch holds a labelled scene)."""
    from pixelwise.methods.joint import LabelledBatchSampler

    labelled = scale["p2_labelled"]
    others = 0 if labelled_only else scale["p2_images"] - labelled
    return len(LabelledBatchSampler([True] * labelled + [False] * others, scale["p2_batch"]))


def run_phases(letter: str, seed: int, config: Any, scale_name: str) -> None:
    """P2's two phases (JointTask's run_joint, with the record of the second)."""
    from pixelwise.engine.trainer import train
    from pixelwise.methods.joint import JointTask

    started = time.time()
    root = Path(config.output)
    first = dataclasses.replace(config, output=str(root / "phase1"), phase2_epochs=0,
                                resume=(root / "phase1" / "last.safetensors").is_file())  # fmt: skip
    if not (root / "phase1" / "metrics.json").is_file():
        train(first, JointTask(first))
    phase1 = json.loads((root / "phase1" / "metrics.json").read_text())
    second = dataclasses.replace(
        config, output=str(root / "phase2"), init_from=str(root / "phase1" / "last.safetensors"), depth_only=False,
        lr=config.lr * config.phase2_lr_scale, epochs=config.phase2_epochs, phase2_epochs=0,
        resume=(root / "phase2" / "last.safetensors").is_file(),
    )  # fmt: skip
    record = fit("p2", letter, seed, second, JointTask(second), scale_name)
    from pixelwise.engine.checkpoint import load_checkpoint

    record["phase1"] = phase1
    record["phase1_iterations"] = load_checkpoint(root / "phase1" / "last.safetensors").meta["state"][
        "iteration"
    ]
    record["phase1_config"] = first.to_dict()
    record["wall_minutes_including_eval"] = round((time.time() - started) / 60, 2)
    write_result(RESULTS / f"p2_{letter}_s{seed}.json", record)


def run_fusion(scale_name: str, seeds: list[int], arms: list[str]) -> None:
    from pixelwise.methods.segmentation import SegmentationTask, TrainConfig

    s = SCALES[scale_name]
    data = f"synthetic:{s['p1_train']}:{s['size']}:hard"
    val = f"synthetic:{s['p1_val_spec']}:{s['size']}:hard"
    for seed in seeds:
        for arm in arms:
            if done("fusion", arm, seed):
                continue
            fusion = {} if arm == "rgb" else dict(fusion=arm, extra_input="depth")
            config = TrainConfig(**common_options(s, seed, RUNS / f"fusion_{arm}_s{seed}"), data=data, val_data=val,
                                 arch="fcn8s", batch_size=s["batch"], epochs=s["fusion_epochs"], **fusion)  # fmt: skip
            fit("fusion", arm, seed, config, SegmentationTask(config), scale_name)


def run_multitask(scale_name: str, seeds: list[int], arms: list[str]) -> None:
    from pixelwise.methods.depth import DepthConfig, DepthTask
    from pixelwise.methods.segmentation import SegmentationTask, TrainConfig

    s = SCALES[scale_name]
    data = f"synthetic:{s['p1_train']}:{s['size']}:hard"
    val = f"synthetic:{s['p1_val_spec']}:{s['size']}:hard"
    full, half = (
        s["multitask_epochs"],
        max(1, s["multitask_epochs"] // 2),
    )  # equal compute: two nets, half each
    for seed in seeds:
        for arm in arms:
            if done("multitask", arm, seed):
                continue
            options = dict(**common_options(s, seed, RUNS / f"multitask_{arm}_s{seed}"), data=data, val_data=val,
                           arch="fcn8s", batch_size=s["batch"])  # fmt: skip
            if arm == "depth-only":
                config: Any = DepthConfig(**options, epochs=half)
                fit("multitask", arm, seed, config, DepthTask(config), scale_name)
                continue
            extra = dict(multitask="depth", epochs=full) if arm == "multitask" else dict(epochs=half)
            config = TrainConfig(**options, **extra)
            fit("multitask", arm, seed, config, SegmentationTask(config), scale_name)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--parts", nargs="+", default=["p1", "p2"], choices=("p1", "p2", "fusion", "multitask")
    )
    parser.add_argument("--arms", nargs="+", help="restrict to these arms (P2: letters a-g)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--full", action="store_true", help="the spec's full-size protocol (hours per arm on CPU)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    scale = "full" if args.full else "cpu"
    if args.full:  # full-size results must not overwrite or be mixed with the CPU-scale ones
        global RESULTS, RUNS
        RESULTS, RUNS = RESULTS / "full", RUNS / "full"
    defaults = {"p1": list(P1_ARMS), "p2": ["a", "b", "f", "c", "d", "e", "g"], "fusion": list(FUSION_ARMS),
                "multitask": list(MULTITASK_ARMS)}  # fmt: skip
    runners = {"p1": run_p1, "p2": run_p2, "fusion": run_fusion, "multitask": run_multitask}
    for part in args.parts:
        arms = [a for a in (args.arms or defaults[part]) if a in defaults[part]]
        runners[part](scale, args.seeds, arms)


if __name__ == "__main__":
    main()
