"""Accuracy per CPU-minute on CamVid (issue 25): the time-to-accuracy curve, and whether pretraining pays for its
CPU time when its minutes are counted.

Every run uses ``--schedule poly-time``: the learning rate anneals over a wall-clock budget (minutes of training
and validation, resumes included; ``--epochs`` is only an upper bound), so a budget means the same on any machine.
Every segmentation run holds out the selection split (``--select-fraction 0.1`` of the training frames, fixed
seed): checkpoint choices use it, and val is scored once, by the last model. Nothing is chosen on val; the budgets,
the pretraining share and the recipes are fixed here before the first run.

Parts (each arm writes benchmarks/results/time_budget/<tag>.json and is skipped when that exists; an interrupted
stage resumes from runs/bench/time_budget/<tag>/):

    curve   the default CamVid recipe (RGB FCN-8s / ResNet-18 from scratch, all labels) at each --budgets minute
            count: one run per budget, each annealed over its own budget (not checkpoints of one long run).
    equal   at each --totals budget T: "scratch" trains the default recipe for T minutes; "colorization" spends
            --pretrain-share of T on colorization pretraining (the transfer study's recipe, on the train frames
            only, labels unused) and the rest, T minus the minutes the pretraining actually took, on grey-input
            fine-tuning from it (Larsson's protocol); at --fractions of the labels. One pretraining per (T, seed)
            serves every label fraction; its minutes are counted in each.

CPU cost: curve 125 min per seed; equal 3 x T per (T, seed) at two label fractions (scratch twice, one
pretraining, two fine-tunings), i.e. 4.5 h per seed for T = 30 and 60. Usage:

    python benchmarks/time_budget.py --part curve --seeds 0
    python benchmarks/time_budget.py --part equal --totals 30 --seeds 0 1 2
    python benchmarks/time_budget.py --part equal --totals 30 60 --fractions 1 0.1 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from pixelwise.engine.checkpoint import load_checkpoint
from pixelwise.methods.segmentation import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from colorization_pretrain import recipe as pretrain_recipe  # noqa: E402
from colorization_transfer import recipe as transfer_recipe  # noqa: E402
from common import CAMVID, ROOT, camvid_recipe, fit_and_record, result_record, write_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "time_budget"
RUNS = ROOT / "runs" / "bench" / "time_budget"
SELECT_FRACTION = 0.1  # the selection split of the honest-numbers protocol
MAX_EPOCHS = 10_000  # poly-time ends a run at its budget; epochs only bound it


def timed(config: Any, minutes: float) -> Any:
    """``config`` annealed over ``minutes`` of wall clock (poly-time), however many epochs that is."""
    return dataclasses.replace(config, schedule="poly-time", time_limit=minutes, epochs=MAX_EPOCHS)


def scratch_config(output: Path, seed: int, fraction: float, minutes: float) -> TrainConfig:
    """The default CamVid recipe (RGB, from scratch) for ``minutes``, on the selection-split protocol."""
    values = camvid_recipe(output, seed, labels_fraction=fraction, amp=True, eval_every=0)
    return timed(TrainConfig(**values, select_fraction=SELECT_FRACTION), minutes)


def minutes_of(run: Path) -> float:
    """Wall-clock minutes a finished run trained (its last checkpoint's clock: training + validation)."""
    return float(load_checkpoint(run / "last.safetensors").meta["state"]["minutes_trained"])


def segmentation_arm(tag: str, config: TrainConfig, **values: Any) -> None:
    result = RESULTS / f"{tag}.json"
    if result.exists():
        print(f"{tag}: done already")
        return
    print(f"{tag}: {config.time_limit:.1f} min budget")
    fit_and_record("time_budget", tag, config, result, **values)


def curve(seed: int, budgets: list[float]) -> None:
    for minutes in budgets:
        tag = f"curve_scratch_T{minutes:g}_seed{seed}"
        config = scratch_config(RUNS / tag, seed, 1.0, minutes)
        segmentation_arm(
            tag, config, part="curve", arm="scratch", budget=minutes, seed=seed, labels_fraction=1.0
        )


def pretraining(total: float, share: float, seed: int) -> tuple[Path, float]:
    """The colorization run of budget ``share * total`` for this (T, seed): its checkpoint and its minutes."""
    tag = f"equal_pretrain_T{total:g}_seed{seed}"
    output, result = RUNS / tag, RESULTS / f"{tag}.json"
    if not result.exists():
        from pixelwise.engine.trainer import Trainer
        from pixelwise.methods.colorization import ColorizationTask

        resume = {"resume": (output / "last.safetensors").exists(), "seed": seed, "eval_every": 0}
        config = timed(
            pretrain_recipe("hue-chroma", MAX_EPOCHS, output, {"splits": ["train"], **resume}), share * total
        )
        print(
            f"{tag}: colorization pretraining for {config.time_limit:.1f} min (train frames, labels unused)"
        )
        started = time.time()
        scores = Trainer(config, ColorizationTask(config)).fit()
        record = result_record("time_budget", tag, config, (time.time() - started) / 60, part="equal",
                               arm="pretrain", budget=total, seed=seed, minutes_trained=minutes_of(output),
                               val={k: v for k, v in scores.items() if isinstance(v, int | float)})  # fmt: skip
        write_result(result, record)
    return output / "last.safetensors", minutes_of(output)


def equal(seed: int, totals: list[float], fractions: list[float], share: float) -> None:
    for total in totals:
        for fraction in fractions:
            tag = f"equal_scratch_T{total:g}_f{fraction:g}_seed{seed}"
            config = scratch_config(RUNS / tag, seed, fraction, total)
            segmentation_arm(tag, config, part="equal", arm="scratch", budget=total, seed=seed,
                             labels_fraction=fraction, pretrain_minutes=0.0)  # fmt: skip
        checkpoint, spent = pretraining(total, share, seed)
        for fraction in fractions:
            tag = f"equal_colorization_T{total:g}_f{fraction:g}_seed{seed}"
            base = transfer_recipe(checkpoint, "none", fraction, seed, MAX_EPOCHS, RUNS / tag, in_channels=1)
            config = timed(
                dataclasses.replace(base, select_fraction=SELECT_FRACTION), max(total - spent, 0.5)
            )
            segmentation_arm(tag, config, part="equal", arm="colorization", budget=total, seed=seed,
                             labels_fraction=fraction, pretrain_minutes=round(spent, 2))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("curve", "equal"), required=True, help="which study (see above)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (init, data order)")
    parser.add_argument(
        "--budgets", nargs="+", type=float, default=[5, 10, 20, 30, 60], help="curve: minutes per run"
    )
    parser.add_argument("--totals", nargs="+", type=float, default=[30, 60], help="equal: total minutes T")
    parser.add_argument(
        "--fractions",
        nargs="+",
        type=float,
        default=[1.0, 0.1],
        help="equal: labelled share of the train frames",
    )
    parser.add_argument(
        "--pretrain-share",
        type=float,
        default=0.5,
        help="equal: share of T given to pretraining (fixed a priori)",
    )
    args = parser.parse_args()
    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}; this benchmark needs ../shared/data/camvid")
    for seed in args.seeds:  # seed-major: an interrupted study has balanced arms
        if args.part == "curve":
            curve(seed, args.budgets)
        else:
            equal(seed, args.totals, args.fractions, args.pretrain_share)


if __name__ == "__main__":
    main()
