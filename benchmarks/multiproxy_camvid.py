"""Multi-proxy self-supervision on CamVid (Larsson §4.7 at CPU scale): does combining proxies beat colorization?

Pretraining arms (``pixelwise pretrain --method multi``, one 3-channel ResNet-18, labels never read):

  C             colorization alone (grey replicated to 3 channels), NormSGD (M = 1)
  J             2x2 jigsaw alone (grey tiles), NormSGD
  V             relative motion alone (Farneback flow between consecutive frames of the 15 Hz val clip), NormSGD
  CJ-sgd        C + J, plain momentum SGD on the summed gradients (Eq. 4.9)
  CJ-normsgd    C + J, NormSGD (Eq. 4.11)
  CJV-normsgd   C + J + V, NormSGD

Equal total steps for every arm; 8 images per step alone, 4 per task jointly (§4.7.2). Images: the CamVid train +
val frames at 180x240 (as benchmarks/colorization_pretrain.py). SGD momentum 0.9, poly decay, 100 warm-up steps,
no weight decay (torch's SGD scales decay with the lr, which differs ~500x between the two families);
eta 1e-4 for NormSGD (eta is the mean absolute step per weight before momentum; the thesis gives no value) and
lr 0.05 for plain SGD, both set a priori, not tuned: ResNet-18's proxy gradients start at a mean |g| of ~1e-3
(the scale_<task> values of log.jsonl), so the two give first steps of similar size. Nothing is chosen on
segmentation labels.

Each arm writes benchmarks/results/multiproxy_camvid/<arm>.json (its CPU minutes, the held-out proxy losses) and
keeps runs/bench/multiproxy/<arm>; reruns skip finished arms and resume interrupted ones. ``--cka`` writes linear
CKA of layer1 / layer2 features between the arms (cka.json). Transfer to segmentation: benchmarks/
colorization_transfer.py --inits proxy-C proxy-CJV-normsgd ... (RGB input, 10% / 25% labels, 3 seeds). Usage:

    python benchmarks/multiproxy_camvid.py --arms C J CJ-normsgd
    python benchmarks/multiproxy_camvid.py --cka
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from pixelwise.data import build_dataset, eval_transforms
from pixelwise.engine.trainer import Trainer
from pixelwise.methods.multiproxy import MultiProxyTask
from pixelwise.methods.pretrain import PretrainConfig
from pixelwise.metrics import linear_cka

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAMVID, ROOT, machine, parse_overrides, provenance, result_record, write_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "multiproxy_camvid"
RUNS = ROOT / "runs" / "bench" / "multiproxy"
IMAGES = 468  # CamVid train + val frames
ARMS: dict[str, tuple[list[str], str]] = {
    "C": (["colorization"], "normsgd"),
    "J": (["jigsaw"], "normsgd"),
    "V": (["motion"], "normsgd"),
    "CJ-sgd": (["colorization", "jigsaw"], "sum"),
    "CJ-normsgd": (["colorization", "jigsaw"], "normsgd"),
    "CJV-normsgd": (["colorization", "jigsaw", "motion"], "normsgd"),
}


def recipe(arm: str, steps: int, output: Path, extra: dict[str, Any]) -> PretrainConfig:
    tasks, combine = ARMS[arm]
    image_tasks = [t for t in tasks if t != "motion"]
    batch = 8 if len(tasks) == 1 else 4  # per task: halved when joint (§4.7.2)
    length = IMAGES if image_tasks else 80  # V alone steps through the clip's 80 training frame pairs
    values: dict[str, Any] = dict(
        data=f"camvid:{CAMVID}",
        splits=["train", "val"],
        output=str(output),
        method="multi",
        tasks=tasks,
        flow_data=f"flow-camvid:{CAMVID}",
        combine=combine,
        backbone="resnet18",
        epochs=math.ceil(steps / (length // batch)),
        batch_size=batch,
        base_size=[180, 240],
        crop=[180, 240],
        scale=[1.0, 1.5],
        optimizer="sgd",
        momentum=0.9,
        lr=1e-4 if combine == "normsgd" else 0.05,
        weight_decay=0.0,  # torch's SGD couples decay to the lr: NormSGD's ~500x smaller lr would get less
        schedule="poly",
        warmup_iters=100,
        amp=True,
        eval_every=0,
        eval_scale=0.5,  # the 360x480 val frames at 180x240, the training scale (and >= jigsaw's 168 crop)
        seed=0,
        resume=(output / "last.safetensors").exists(),
    )
    values.update(extra)
    return PretrainConfig(**values)


def run_arm(arm: str, args: argparse.Namespace) -> None:
    result_path = RESULTS / f"{args.tag}{arm}.json"
    if result_path.exists():
        print(f"{arm}: done already ({result_path})")
        return
    config = recipe(arm, args.steps, RUNS / f"{args.tag}{arm}", parse_overrides(args.set))
    started = time.time()
    trainer = Trainer(config, MultiProxyTask(config))
    scores = trainer.fit()
    minutes = (time.time() - started) / 60
    record = result_record("multiproxy_camvid", f"{args.tag}{arm}", config, minutes, arm=arm,
                           iterations=trainer.state.iteration, val=scores)  # fmt: skip
    write_result(result_path, record)
    print(f"{arm}: {MultiProxyTask(config).summary(scores)}; {minutes:.1f} CPU minutes")


@torch.no_grad()
def layer_features(run: Path, images: torch.Tensor, stages: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Features [n, C] of ``stages`` at every cell of the grey val frames (the input C and J were fed)."""
    from pixelwise.engine.checkpoint import load_checkpoint
    from pixelwise.methods.multiproxy import MultiProxyConfig, MultiProxyModel
    from pixelwise.models.inputs import InputNormalizer

    checkpoint = load_checkpoint(run / "last.safetensors")
    model = MultiProxyModel(MultiProxyConfig.from_dict(checkpoint.meta["model"]))
    model.load_state_dict(checkpoint.model_state)
    model.eval()
    grey = InputNormalizer(1, 32)(images).expand(-1, 3, -1, -1)
    outputs = model.backbone.forward_stages(grey, until=stages[-1])
    return {s: outputs[s].movedim(1, -1).flatten(0, 2) for s in stages}


def cka_table(args: argparse.Namespace) -> None:
    done = [arm for arm in ARMS if (RUNS / f"{args.tag}{arm}" / "metrics.json").exists()]
    frames = build_dataset(f"camvid:{CAMVID}", "val", size=(180, 240), transform=eval_transforms())
    images = torch.stack([frames[i][0] for i in range(0, len(frames), 10)])  # 11 val frames
    stages = ("layer1", "layer2")
    features = {arm: layer_features(RUNS / f"{args.tag}{arm}", images, stages) for arm in done}
    table = {
        stage: {a: {b: linear_cka(features[a][stage], features[b][stage]) for b in done} for a in done}
        for stage in stages
    }
    record = {"benchmark": "multiproxy_camvid", "tag": f"{args.tag}cka", **provenance(), "machine": machine(),
              "frames": len(images), "arms": done, "cka": table}  # fmt: skip
    write_result(RESULTS / f"{args.tag}cka.json", record)
    for stage in stages:
        print(
            f"{stage}: " + "; ".join(f"{a} vs C {table[stage][a].get('C', float('nan')):.3f}" for a in done)
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS), help="arms to pretrain")
    parser.add_argument("--steps", type=int, default=1740, help="optimiser steps per arm (C: 30 epochs)")
    parser.add_argument("--tag", default="", help="prefix of the result / run names (variants)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override recipe fields")
    parser.add_argument("--cka", action="store_true", help="only the CKA table of the finished arms")
    args = parser.parse_args()
    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}; this benchmark needs ../shared/data/camvid")
    if args.cka:
        cka_table(args)
        return
    for arm in args.arms:
        run_arm(arm, args)
    print(json.dumps({arm: str(RESULTS / f"{args.tag}{arm}.json") for arm in args.arms}, indent=1))


if __name__ == "__main__":
    main()
