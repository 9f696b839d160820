"""The supervised multi-task test bench (Larsson thesis §4.6.2, Tables 4.5-4.6) on CamVid 32x32 patches.

Do the shared-weight optimisers of §4.5 balance several tasks on one base network? Each arm trains a Table 4.1
net (``shallow`` by default; ``deep`` is ~30x the compute) on one task split of Table 4.5 with one optimiser,
then scores the frozen base with a new 11-way linear layer trained on held-out probe patches (§4.6.2), tested
on the val frames' patches (pixelwise.methods.multiproxy.testbench; the spec: specs/multi-proxy.md part A).

Splits (tasks drawn from the seed, the same draw for every optimiser): N25, C50, C25, Mixed (C25 with CE / L2 /
BCE / hinge), Scaled (C25 with CE, losses x 10^U(-3,3)), Full (one task, all data: the upper bound).

Optimisers (one learning rate per family, fixed below):

  sgd              --combine sum, momentum SGD on Σ_m g_m (Eq. 4.9)               lr    SGD_LR
  adam             --combine sum, Adam (AdamW, weight decay 0) on Σ_m g_m          lr    ADAM_LR
  multi-adam       --combine separate, (1/M) Σ_m Adam_m(g_m) (Eq. 4.10)             lr    ADAM_LR
  normsgd          --combine normsgd, (1/M) Σ_m g_m / s_m into momentum SGD (4.11)  eta   NORMSGD_ETA
  normsgd-rrQ      NormSGD, round-robin with quantum Q = 1, 100, 1000 (§4.5.4)      eta   NORMSGD_ETA / M
  singleM          task M of the split alone, momentum SGD (Table 4.5's single-task rows; not Scaled / Full)
  split-weights    disjoint weights (§4.4): each task updates only the weights into its share of every layer's
                   output channels (the columns read each other), momentum SGD                 lr    SGD_LR
  split-activations  M separate columns (grouped convs, cross-column weights zero and kept zero, each head on
                   its own column), momentum SGD                                              lr    SGD_LR
  distill-ab       split Full only: Top-Compress (Table 4.2): the student (--nets) learns the pre-ReLU top
  distill-l2       layer of a teacher (--teacher-net, default deep; its arm <teacher>_Full_sgd_seed<S> is
                   trained first if missing) with D_AB(1/4, 0) or squared L2 on s_c-normalised features, then
                   the same probe. NormSGD with M = 1 (so eta needs no re-tuning for the loss's scale).

Recipe shared by all arms: batch 128 patches (each task sees the rows of its share / classes), equal steps
(``--steps``, rounded up to whole epochs of the pretraining patches), 100 warm-up steps (fewer in short runs),
lr / 10 at 50 % and 75 % of the epochs (the thesis's 100k / 150k of 200k), momentum 0.9, weight decay 0 for
every optimiser (so Adam is plain Adam and no family gets a regulariser the others lack; Table 4.1's dropout is
the regulariser), random horizontal flips, fp32. NormSGD freezes s_m at warm-up + 10 % of the steps to the
first drop (engine/combine.py). Round-robin with Q = 1000 needs ``--steps`` >= 2 x M x Q for every task to get
two quanta (the default 8000 gives each of 4 tasks two).

Learning rates: SGD_LR, ADAM_LR and NORMSGD_ETA are the argmax of ``--sweep`` (a 3-4 point grid per family,
Shallow, N25, seed 0, 1000 steps; results/multiproxy_bench/sweep/) on the *held-out probe* accuracy: a probe
fitted on half of the probe frames and scored on the other half. The sweep does not score the test patches
(its first runs did print a test accuracy; the choice never used it). Tuned on a same-loss split, so Mixed and
Scaled test robustness to what the tuning did not see.

Round-robin uses eta / M, a convention, not a tuned value: the engine normalises the one active task without
Eq. 4.11's 1/M, so a round-robin step is 1 to M times a joint step (M when the tasks' normalised gradients
cancel, 1 when they agree; on N25 they agree with cos ~0.55, so at eta a step is ~1.8x a joint one). At eta =
1e-4 normsgd-rr1 killed the net (held-out probe 0.114 on N25, 1000 steps) while 3e-5 gave 0.443. With eta / M,
M consecutive Q = 1 steps apply exactly the M terms of one joint step, so over equal steps each task gets ~1/M
of a joint run's progress: "round-robin ~ joint" is tested at that smaller effective rate (say so when
reporting it).
NormSGD's eta is the mean absolute step per parameter before momentum (each normalised task gradient has
mean |.| = 1), so it is not comparable to SGD's lr. The same values are used for Deep (not re-tuned there:
say so when reporting Deep numbers).

Cost (one thread of a busy 2-core EPYC): Shallow ~55 ms per joint step, so ~8 min per joint arm at the default
8000 steps (Multi-Adam ~10 % more), ~3 min per round-robin or single-task arm (one task's rows per step);
the whole default study (105 arms) ~10 h. Deep is ~1.4 s per step (~3 h per arm): a GPU job.

Each arm writes benchmarks/results/multiproxy_bench/<tag><net>_<split>_<optimiser>_seed<S>.json (test accuracy,
held-out probe accuracy, per-task training accuracy, a summary of the gradient diagnostic: per-task ||g_m||_1
ratio and cos(ĝ, g_m), minutes, command, machine, date) and keeps its run folder runs/bench/testbench/<same>/
(log.jsonl holds the diagnostic per logged step); finished arms are skipped, interrupted ones resumed. A run
whose loss becomes non-finite is recorded as diverged (no accuracy) and not retried. The patch bank is built
once (about a minute) and cached under runs/bench/testbench/. Usage:

    python benchmarks/multiproxy_bench.py                                   # Shallow, all splits/optimisers, 3 seeds
    python benchmarks/multiproxy_bench.py --splits Mixed Scaled --optimisers sgd normsgd --seeds 0
    python benchmarks/multiproxy_bench.py --optimisers single0 single1 single2 single3 --splits N25 C50 C25 Mixed
    python benchmarks/multiproxy_bench.py --splits Full --optimisers sgd distill-ab distill-l2   # Top-Compress
    python benchmarks/multiproxy_bench.py --table                           # mean ± std over seeds
    python benchmarks/multiproxy_bench.py --sweep --steps 1000              # the lr sweep (probe frames only)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from pixelwise.engine.errors import TrainingError
from pixelwise.engine.trainer import Trainer
from pixelwise.methods.multiproxy.testbench import (
    TestBenchConfig,
    TestBenchDistillTask,
    TestBenchTask,
)
from pixelwise.methods.multiproxy.testbench_data import SPLITS, load_bank, make_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAMVID, ROOT, parse_overrides, result_record, write_result  # noqa: E402

BENCH = "multiproxy_bench"
RESULTS = ROOT / "benchmarks" / "results" / BENCH
RUNS = ROOT / "runs" / "bench" / "testbench"
DATA = f"camvid:{CAMVID}"
BATCH = 128
NUM_CLASSES = 11  # CamVid's

# One learning rate per optimiser family (see the docstring: picked by --sweep on held-out probe frames).
SGD_LR = 0.01  # sweep (held-out probe accuracy): 0.003 -> 0.481, 0.01 -> 0.484, 0.03 -> 0.114 (dead net)
ADAM_LR = 3e-3  # 3e-4 -> 0.434, 1e-3 -> 0.482, 3e-3 -> 0.516, 1e-2 -> 0.409
NORMSGD_ETA = 1e-4  # 3e-5 -> 0.472, 1e-4 -> 0.476, 3e-4 -> non-finite loss at step 154
SWEEP = {"sgd": (0.003, 0.01, 0.03), "adam": (3e-4, 1e-3, 3e-3, 1e-2), "normsgd": (3e-5, 1e-4, 3e-4)}

# optimiser -> (combine, optimizer, round-robin quantum, lr family)
OPTIMISERS: dict[str, tuple[str, str, int, str]] = {
    "sgd": ("sum", "sgd", 0, "sgd"),
    "adam": ("sum", "adamw", 0, "adam"),
    "multi-adam": ("separate", "adamw", 0, "adam"),
    "normsgd": ("normsgd", "sgd", 0, "normsgd"),
    "normsgd-rr1": ("normsgd", "sgd", 1, "normsgd"),
    "normsgd-rr100": ("normsgd", "sgd", 100, "normsgd"),
    "normsgd-rr1000": ("normsgd", "sgd", 1000, "normsgd"),
    "split-weights": ("sum", "sgd", 0, "sgd"),
    "split-activations": ("sum", "sgd", 0, "sgd"),
    "distill-ab": ("normsgd", "sgd", 0, "normsgd"),
    "distill-l2": ("normsgd", "sgd", 0, "normsgd"),
}
DISTILL = ("distill-ab", "distill-l2")
DEFAULT_OPTIMISERS = [o for o in OPTIMISERS if o not in DISTILL]
SINGLE = "single"  # single<M>: task M alone, with SGD


def optimiser_recipe(optimiser: str) -> tuple[str, str, int, str, int | None]:
    """(combine, optimizer, quantum, lr family, single task) of an optimiser name."""
    if optimiser.startswith(SINGLE) and optimiser[len(SINGLE) :].isdigit():
        return "sum", "sgd", 0, "sgd", int(optimiser[len(SINGLE) :])
    if optimiser not in OPTIMISERS:
        raise SystemExit(f"unknown optimiser {optimiser!r}; choose from {', '.join(OPTIMISERS)} or single<M>")
    return (*OPTIMISERS[optimiser], None)


def learning_rate(family: str) -> float:
    """The fixed lr (NormSGD: eta) of an optimiser family."""
    return {"sgd": SGD_LR, "adam": ADAM_LR, "normsgd": NORMSGD_ETA}[family]


def recipe(
    net: str,
    split: str,
    optimiser: str,
    seed: int,
    steps: int,
    pretrain_patches: int,
    output: Path,
    lr: float | None = None,
    extra: dict[str, Any] | None = None,
) -> TestBenchConfig:
    """The arm's config: the shared recipe of the module docstring."""
    combine, optimizer, quantum, family, single = optimiser_recipe(optimiser)
    if lr is None:
        lr = learning_rate(family)
        if quantum:  # each round-robin step applies one term of the joint (1/M) Σ_m g_m / s_m (docstring)
            lr /= len(make_split(split, NUM_CLASSES, seed))
    iters_per_epoch = pretrain_patches // BATCH
    epochs = max(1, math.ceil(steps / iters_per_epoch))
    values: dict[str, Any] = dict(
        data=DATA,
        output=str(output),
        net=net,
        split=split,
        single=single,
        disjoint=optimiser.removeprefix("split-") if optimiser.startswith("split-") else "none",
        bank_cache=str(RUNS),
        combine=combine,
        optimizer=optimizer,
        round_robin=quantum,
        lr=lr,
        momentum=0.9,
        weight_decay=0.0,
        epochs=epochs,
        batch_size=BATCH,
        schedule="step",
        step_epochs=sorted({max(1, round(0.5 * epochs)), max(1, round(0.75 * epochs))}),
        warmup_iters=min(100, steps // 10),
        hflip=True,
        amp=False,
        eval_every=0,  # one validation (the probe) at the end, on the last model
        log_every=10,
        num_examples=0,
        seed=seed,
        resume=(output / "last.safetensors").exists(),
    )
    values.update(extra or {})
    return TestBenchConfig(**values)


def summarise_diagnostics(log: Path, tasks: list[str]) -> dict[str, Any]:
    """Means over the logged steps of the gradient diagnostic (and the last NormSGD scales)."""
    if not log.is_file():
        return {}
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    rows = [r for r in rows if r.get("kind") == "train"]
    out: dict[str, Any] = {"logged_steps": len(rows)}
    ratios = [r["g1_ratio"] for r in rows if r.get("g1_ratio")]
    if ratios:  # a ratio of norms: its geometric mean
        out["g1_ratio_geomean"] = math.exp(sum(math.log(v) for v in ratios) / len(ratios))
    for name in tasks:
        for key in ("cos", "g1", "loss"):
            values = [r[f"{key}_{name}"] for r in rows if r.get(f"{key}_{name}") is not None]
            if values:
                out[f"{key}_{name}_mean"] = sum(values) / len(values)
        scales = [r[f"scale_{name}"] for r in rows if f"scale_{name}" in r]
        if scales:
            out[f"scale_{name}_last"] = scales[-1]
    return out


def arm_name(tag: str, net: str, split: str, optimiser: str, seed: int) -> str:
    return f"{tag}{net}_{split}_{optimiser}_seed{seed}"


def run_arm(
    net: str, split: str, optimiser: str, seed: int, args: argparse.Namespace, pretrain_patches: int,
    lr: float | None = None, results: Path = RESULTS, name: str | None = None, hide_test: bool = False,
) -> dict[str, Any] | None:  # fmt: skip
    """Train, probe and record one arm (skipped when its JSON exists). ``hide_test`` (the sweep): the test
    patches are not scored at all, so nothing can be chosen on them."""
    name = name or arm_name(args.tag, net, split, optimiser, seed)
    result_path = results / f"{name}.json"
    if result_path.exists():
        print(f"{name}: done already ({result_path})")
        return json.loads(result_path.read_text())
    if optimiser.startswith(SINGLE) and split in ("Scaled", "Full"):
        print(f"{name}: skipped (a single task of {split} is a single task of C25 / Full itself)")
        return None
    single = optimiser_recipe(optimiser)[4]
    if single is not None and single >= len(make_split(split, NUM_CLASSES, seed)):
        print(f"{name}: skipped (split {split} has no task {single})")
        return None
    if optimiser in DISTILL and split != "Full":
        print(f"{name}: skipped (distillation arms distil a Full-split teacher: use --splits Full)")
        return None
    extra = parse_overrides(args.set)
    task_class: type[TestBenchTask] = TestBenchTask
    if optimiser in DISTILL:
        teacher = arm_name(args.tag, args.teacher_net, "Full", "sgd", seed)
        trained = run_arm(args.teacher_net, "Full", "sgd", seed, args, pretrain_patches)
        if trained is None or trained.get("diverged"):
            print(f"{name}: skipped (its teacher {teacher} diverged)")
            return None
        extra.update(teacher=str(RUNS / teacher), distill_loss=optimiser.split("-", 1)[1])
        task_class = TestBenchDistillTask
    if args.threads:
        extra["threads"] = args.threads
    config = recipe(net, split, optimiser, seed, args.steps, pretrain_patches, RUNS / name, lr, extra)
    task = task_class(config, progress=False, hide_test=hide_test)
    started = time.time()
    trainer = Trainer(config, task)
    diverged: str | None = None
    try:
        scores = trainer.fit()
    except TrainingError as err:
        if "non-finite" not in str(err):
            raise
        diverged, scores = str(err), {}
    minutes = (time.time() - started) / 60
    names = task.loss_names()
    record = result_record(
        BENCH, name, config, minutes, net=net, split=split, optimiser=optimiser, seed=seed,
        lr_family=optimiser_recipe(optimiser)[3], tasks=[t.describe() for t in task.tasks],
        iterations=trainer.state.iteration, training_examples=len(trainer.train_set),
        parameters=sum(p.numel() for p in trainer.model.parameters()),
        diverged=diverged is not None, error=diverged,
        val={k: v for k, v in scores.items() if isinstance(v, (int, float))},
        diagnostics=summarise_diagnostics(RUNS / name / "log.jsonl", names),
    )  # fmt: skip
    write_result(result_path, record)
    if diverged:
        print(f"{name}: diverged at step {trainer.state.iteration + 1}; {minutes:.1f} min")
    elif hide_test:
        print(f"{name}: held-out probe {scores['probe_heldout_accuracy']:.3f}; {minutes:.1f} min")
    else:
        print(f"{name}: {task.summary(scores)}; {trainer.state.iteration} steps, {minutes:.1f} min")
    return record


# ----------------------------------------------------------------------------------------------- tables
def load_results(tag: str) -> list[dict[str, Any]]:
    records = []
    for path in sorted(RESULTS.glob(f"{tag}*.json")):
        record = json.loads(path.read_text())
        if record.get("benchmark") == BENCH and record.get("tag", "").startswith(tag) and "split" in record:
            records.append(record)
    return records


def cell(values: list[float], diverged: int) -> str:
    if not values:
        return f"div x{diverged}" if diverged else "-"
    mean = statistics.fmean(values)
    text = f"{mean:.1f}" if len(values) == 1 else f"{mean:.1f} ± {statistics.stdev(values):.1f}"
    if diverged:
        text += f" (+{diverged} div)"
    return text + ("" if len(values) >= 3 else f" [n={len(values)}]")


def print_table(tag: str, metric: str) -> None:
    """Rows optimisers, columns splits: mean ± std over seeds of ``metric`` (x 100), per net; single<M> arms are
    folded into Table 4.5's "single (mean)" and "single (max)" rows (mean / max over the tasks of each seed)."""
    records = [
        r
        for r in load_results(tag)
        if r["tag"] == arm_name(tag, r["net"], r["split"], r["optimiser"], r["seed"])
    ]
    if not records:
        print(f"no results under {RESULTS} with tag {tag!r}")
        return
    for net in sorted({r["net"] for r in records}):
        mine = [r for r in records if r["net"] == net]
        splits = [s for s in SPLITS if any(r["split"] == s for r in mine)]
        groups: dict[tuple[str, str], tuple[list[float], int]] = {}
        singles: dict[tuple[str, int], list[float]] = {}
        for r in mine:
            value = (r.get("val") or {}).get(metric)
            if r["optimiser"].startswith(SINGLE):
                if value is not None:
                    singles.setdefault((r["split"], r["seed"]), []).append(100 * value)
                continue
            values, div = groups.get((r["optimiser"], r["split"]), ([], 0))
            groups[(r["optimiser"], r["split"])] = (values + [100 * value], div) if value is not None else (
                values, div + 1)  # fmt: skip
        for (split, _), values in singles.items():
            for row, value in (("single (mean)", statistics.fmean(values)), ("single (max)", max(values))):
                old, div = groups.get((row, split), ([], 0))
                groups[(row, split)] = (old + [value], div)
        rows = [o for o in ("single (mean)", "single (max)", *OPTIMISERS) if any(k[0] == o for k in groups)]
        width = max(len(o) for o in rows) + 2
        print(f"\n{net}: {metric} (%), mean ± std over seeds")
        print("".ljust(width) + "".join(s.rjust(18) for s in splits))
        for o in rows:
            print(o.ljust(width) + "".join(cell(*groups.get((o, s), ([], 0))).rjust(18) for s in splits))


# ----------------------------------------------------------------------------------------------- sweep
def sweep(args: argparse.Namespace, pretrain_patches: int) -> None:
    """The lr grid of each family on Shallow / N25 / seed 0; prints the held-out *probe* accuracy only."""
    results = RESULTS / "sweep"
    for family, grid in SWEEP.items():
        optimiser = {"sgd": "sgd", "adam": "adam", "normsgd": "normsgd"}[family]
        for lr in grid:
            name = f"{args.tag}sweep_{args.nets[0]}_N25_{optimiser}_lr{lr:g}_steps{args.steps}"
            record = run_arm(
                args.nets[0], "N25", optimiser, 0, args, pretrain_patches, lr, results, name, True
            )
            heldout = ((record or {}).get("val") or {}).get("probe_heldout_accuracy")
            shown = "diverged" if heldout is None else f"{heldout:.3f}"
            print(f"sweep {family} lr {lr:g}: held-out probe accuracy {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nets", nargs="+", default=["shallow"], choices=["shallow", "deep"])
    parser.add_argument("--splits", nargs="+", default=[s for s in SPLITS if s != "Full"], choices=SPLITS)
    parser.add_argument("--optimisers", nargs="+", default=DEFAULT_OPTIMISERS, metavar="OPTIMISER",
                        help=f"{', '.join(OPTIMISERS)} or single<M> (task M alone)")  # fmt: skip
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--teacher-net", default="deep", choices=["shallow", "deep"], help="distill-*: teacher"
    )
    parser.add_argument(
        "--steps", type=int, default=8000, help="optimiser steps per arm (rounded up to epochs)"
    )
    parser.add_argument("--tag", default="", help="prefix of the result / run names (variants, smoke runs)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override recipe fields")
    parser.add_argument("--table", action="store_true", help="only print the table of the finished arms")
    parser.add_argument("--metric", default="test_accuracy", help="--table: the val score shown")
    parser.add_argument("--sweep", action="store_true", help="the lr sweep (held-out probe frames only)")
    args = parser.parse_args()
    if args.table:
        print_table(args.tag, args.metric)
        return
    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}; this benchmark needs ../shared/data/camvid")
    if args.threads:
        torch.set_num_threads(args.threads)
    bank = load_bank(DATA, RUNS)
    pretrain_patches = int(bank.select("pretrain")[1].numel())
    if args.sweep:
        sweep(args, pretrain_patches)
        return
    for seed in args.seeds:  # seed-major: a partial study has every arm of the first seeds
        for net in args.nets:
            for split in args.splits:
                for optimiser in args.optimisers:
                    run_arm(net, split, optimiser, seed, args, pretrain_patches)
    print_table(args.tag, args.metric)


if __name__ == "__main__":
    main()
