"""What the training loop costs: images/s of `pixelwise train` vs the bare model's forward + backward (issue 7).

Both sides use the CamVid recipe of docs/results.md (FCN-8s / ResNet-18, batch 8 of 180x240 crops, AdamW, bf16
autocast) and the same loss (SegmentationTask.loss):

    loop   Trainer.fit() for --epochs epochs: data loading and augmentation (workers 0, the CPU default), the
           schedule, logging, progress bar and the per-epoch checkpoint, all included. Rate from log.jsonl between
           the first and the last training record (the final evaluation is not counted).
    bare   one batch drawn once from the same loader, then --bare-steps of zero_grad + loss + backward + step on
           those same tensors (after 3 warm-up steps): what the model itself costs.

overhead = 1 - loop / bare (target: under 10%). Writes benchmarks/results/loop_overhead.json (with --tag T:
loop_overhead_T.json). --set overrides recipe fields, e.g. the speed options (both sides then use them: the bare
steps run through the same, possibly compiled, network on channels-last batches). Run it on a quiet machine:
anything else using the cores changes both rates. Usage:

    python benchmarks/loop_overhead.py --epochs 3 --bare-steps 40
    python benchmarks/loop_overhead.py --set channels_last=true --tag channels-last
    python benchmarks/loop_overhead.py --set compile=true --tag compile
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from pixelwise.engine.optim import build_optimizer
from pixelwise.engine.trainer import Trainer
from pixelwise.methods.segmentation import TrainConfig, segmentation_trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAMVID, ROOT, camvid_recipe, parse_overrides, result_record, write_result  # noqa: E402


def loop_rate(trainer: Trainer) -> tuple[float, int]:
    """Training images/s of the finished run, from its log (first to last training record)."""
    records = [json.loads(line) for line in (trainer.output / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r.get("kind") == "train"]
    first, last = train[0], train[-1]
    images = (last["iteration"] - first["iteration"]) * trainer.config.batch_size
    return images / (last["time"] - first["time"]), last["iteration"]


def bare_rate(trainer: Trainer, steps: int) -> float:
    """Images/s of loss + backward + optimiser step on one fixed batch, nothing else."""
    net, task, device = trainer.net, trainer.task, trainer.device
    optimizer = build_optimizer(trainer.model, trainer.config, trainer.base_lr)  # type: ignore[arg-type]
    images, targets = trainer.to_device(*next(iter(trainer.train_loader)))  # channels-last if the run is
    net.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=trainer.config.amp):
            loss = task.loss(net, images, targets)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * len(images) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs of `pixelwise train` (45 steps each)")
    parser.add_argument("--bare-steps", type=int, default=40, help="timed steps of the bare model")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override recipe fields")
    parser.add_argument("--tag", default="", help="result name suffix (loop_overhead_TAG.json) for a variant")
    args = parser.parse_args()
    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}; this benchmark needs ../shared/data/camvid")
    name = f"loop_overhead_{args.tag}" if args.tag else "loop_overhead"
    output = ROOT / "runs" / "bench" / name
    shutil.rmtree(output, ignore_errors=True)  # a fresh run: resuming would skew the timing
    recipe = camvid_recipe(output, 0, amp=True, epochs=args.epochs, eval_every=0, log_every=5)
    config = TrainConfig(**(recipe | parse_overrides(args.set)))
    started = time.time()
    trainer = segmentation_trainer(config)
    trainer.fit()
    loop, iterations = loop_rate(trainer)
    bare = bare_rate(trainer, args.bare_steps)
    overhead = 1 - loop / bare
    record = result_record(
        "loop_overhead",
        name,
        config,
        (time.time() - started) / 60,
        loop_images_per_s=round(loop, 3),
        bare_images_per_s=round(bare, 3),
        overhead=round(overhead, 4),
        loop_iterations=iterations,
        bare_steps=args.bare_steps,
    )
    write_result(ROOT / "benchmarks" / "results" / f"{name}.json", record)
    print(
        f"pixelwise train {loop:.2f} img/s, bare forward+backward {bare:.2f} img/s: overhead {overhead:.1%}"
    )


if __name__ == "__main__":
    main()
