"""Object segment proposals from pairwise networks (Long thesis Ch. 4; spec region-proposals.md), on this CPU.

Parts (each (part, arm, seed) writes benchmarks/results/regions/<tag>.json; reruns skip finished ones, an
interrupted training resumes from its last checkpoint):

- ``ablation`` (Fig. 4.4, the central claim): {with, without} transpose x {with, without} shared matrix, on one
  layer2 pathway and on the full pyramid (conv1 / layer1 / layer2 / layer3), equal steps, 3 seeds, on synthetic
  instances and CamVid components. Nothing is chosen on val: the reported checkpoint is the last one (validation
  runs once, at the end) and every recipe value is fixed before any run.
- ``density`` (Table 4.2): one trained pyramid read out with the lowest pathway's centres at stride 2 / 4 / 8 / 16.
- ``cost`` (§4.3.4): CPU time of the coarsest pathway on 1x / 2x / 3x images vs the whole feature pyramid at 1x.
- ``slic`` (Table 4.3's non-learned stand-in for MCG): SLIC superpixels and their adjacent pairs and triples.
- ``touching`` (§4.1, spec protocol 4): recall@0.5 of segments touching a same-class segment vs isolated ones, for
  a trained run's proposals and for the connected components of a perfect semantic labelling (what a pixel
  labeller can at best propose).

Usage:

    python benchmarks/regions.py --part ablation --data synthetic --seeds 0 1 2
    python benchmarks/regions.py --part ablation --pyramids layer2 --seeds 0 --train-scenes 200 --epochs 1 \
        --val-images 30 --threads 1 --tag short_      # the reduced run that fits one session
    python benchmarks/regions.py --part density --data synthetic --run runs/bench/regions/s500_synthetic_layer2_both_seed0
    python benchmarks/regions.py --part cost
    python benchmarks/regions.py --part slic --data synthetic
    python benchmarks/regions.py --part touching --data synthetic --run runs/bench/regions/s500_synthetic_layer2_both_seed0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from pixelwise.methods.proposals.config import (
    DEFAULT_KERNELS,
    DEFAULT_PATHWAYS,
    DEFAULT_WINDOWS,
    ProposalTrainConfig,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAMVID, ROOT, fit_and_record, machine, provenance, write_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "regions"
RUNS = ROOT / "runs" / "bench" / "regions"
ARMS = {"both": (True, True), "matrix": (False, True), "transpose": (True, False), "neither": (False, False)}
PYRAMIDS = {
    "layer2": (("layer2",), (19,), (9,)),
    "pyramid": (DEFAULT_PATHWAYS, DEFAULT_WINDOWS, DEFAULT_KERNELS),
}
TRAIN_SCENES, VAL_SCENES = 1000, 200
VAL_IMAGES = 50  # validation images scored per arm (the first ones; proposing is the slow part)


def data_spec(name: str, scenes: int = TRAIN_SCENES) -> str:
    if name == "synthetic":
        return f"synthetic-instances:{scenes}"
    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}; --data camvid needs ../shared/data/camvid")
    return f"camvid-instances:{CAMVID}"


def arm_config(args: argparse.Namespace, pyramid: str, arm: str, seed: int, tag: str) -> ProposalTrainConfig:
    pathways, windows, kernels = PYRAMIDS[pyramid]
    use_transpose, shared = ARMS[arm]
    return ProposalTrainConfig(
        data=data_spec(args.data, args.train_scenes), output=str(RUNS / tag), epochs=args.epochs, seed=seed,
        pathways=list(pathways), windows=list(windows), kernels=list(kernels), transpose=use_transpose,
        shared_matrix=shared, eval_every=0, val_images=args.val_images,
        resume=(RUNS / tag / "last.safetensors").exists(), threads=args.threads, num_examples=2,
    )  # fmt: skip


def ablation(args: argparse.Namespace) -> None:
    from pixelwise.methods.proposals.task import ProposalTask

    for seed in args.seeds:
        for pyramid in args.pyramids:
            for arm in args.arms:
                tag = f"{args.tag}{args.data}_{pyramid}_{arm}_seed{seed}"
                path = RESULTS / f"{tag}.json"
                if path.exists():
                    print(f"{tag}: done already")
                    continue
                config = arm_config(args, pyramid, arm, seed, tag)
                fit_and_record("regions", tag, config, path, ProposalTask(config), reseed=seed,
                               part="ablation", data=args.data, pyramid=pyramid, arm=arm, seed=seed)  # fmt: skip


def _model(run: Path):
    from pixelwise.methods.kinds import build_model_from_checkpoint

    return build_model_from_checkpoint(str(run), expect="region-proposals")[0]


def _val_loader(data: str, images: int):
    from torch.utils.data import DataLoader, Subset

    from pixelwise.data.instances import instance_dataset

    dataset = instance_dataset(data_spec(data), "val", size=(180, 240))
    return DataLoader(Subset(dataset, range(min(images, len(dataset)))), batch_size=1)


def density(args: argparse.Namespace) -> None:
    from pixelwise.methods.proposals.evaluation import collect, summary_scores
    from pixelwise.methods.proposals.predict import ProposalOptions, pathway_windows

    run = ROOT / args.run if args.run else RUNS / f"{args.tag}{args.data}_pyramid_both_seed0"
    model = _model(run)
    finest = min(w.grid.stride for w in pathway_windows(model))
    for stride in (
        finest,
        2 * finest,
        4 * finest,
        8 * finest,
    ):  # Table 4.2: 2 / 4 / 8 / 16 for a stride-2 base
        tag = f"{args.tag}density_{args.data}_{run.name}_lowest{stride}"
        path = RESULTS / f"{tag}.json"
        if path.exists():
            continue
        collected = collect(model, _val_loader(args.data, args.val_images), ProposalOptions(lowest_stride=stride),
                            torch.device("cpu"))  # fmt: skip
        scores = summary_scores(collected)
        write_result(path, {"benchmark": "regions", "tag": tag, "part": "density", **provenance(),
                            "machine": machine(), "run": str(run.relative_to(ROOT)), "data": args.data,
                            "lowest_stride": stride, "val": scores})  # fmt: skip
        print(
            f"{tag}: AR {scores['ar']:.3f}, R@50 {scores['r50']:.3f}, {scores['ms_per_image']:.0f} ms/image"
        )


def _forward_ms(model: torch.nn.Module, size: tuple[int, int], repeats: int = 5) -> float:
    images = torch.rand(1, 3, *size)
    with torch.no_grad():
        model(images)  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            model(images)
    return 1000 * (time.perf_counter() - started) / repeats


def cost(args: argparse.Namespace) -> None:
    from pixelwise.methods.proposals.model import RegionNet, RegionNetConfig

    tag = f"{args.tag}cost"
    path = RESULTS / f"{tag}.json"
    if path.exists():
        print(f"{tag}: done already")
        return
    torch.manual_seed(0)
    base = (180, 240)
    coarsest = RegionNet(RegionNetConfig(pathways=(DEFAULT_PATHWAYS[-1],), windows=(DEFAULT_WINDOWS[-1],),
                                         kernels=(DEFAULT_KERNELS[-1],))).eval()  # fmt: skip
    pyramid = RegionNet(RegionNetConfig()).eval()
    record: dict[str, Any] = {"image": list(base), "threads": torch.get_num_threads()}
    for scale in (1, 2, 3):
        record[f"coarsest_{scale}x_ms"] = _forward_ms(coarsest, (base[0] * scale, base[1] * scale))
    record["pyramid_1x_ms"] = _forward_ms(pyramid, base)
    write_result(path, {"benchmark": "regions", "tag": tag, "part": "cost", **provenance(), "machine": machine(),
                        **record})  # fmt: skip
    print(record)


def slic(args: argparse.Namespace) -> None:
    from pixelwise.methods.proposals.baselines import slic_proposals
    from pixelwise.methods.proposals.evaluation import Collected, summary_scores
    from pixelwise.metrics.proposals import best_matches, instance_areas

    tag = f"{args.tag}slic_{args.data}"
    path = RESULTS / f"{tag}.json"
    if path.exists():
        print(f"{tag}: done already")
        return
    collected = Collected()
    for images, targets in _val_loader(args.data, args.val_images):
        started = time.perf_counter()
        masks = slic_proposals(images[0])
        collected.seconds += time.perf_counter() - started
        truth = targets["instances"][0].as_subclass(torch.Tensor)
        collected.best.append(best_matches(masks, truth)[None][0])
        collected.areas.append(instance_areas(truth))
        collected.masks.append(masks)
        collected.instances.append(truth)
    scores = summary_scores(collected)
    write_result(path, {"benchmark": "regions", "tag": tag, "part": "slic", **provenance(), "machine": machine(),
                        "data": args.data, "val": scores})  # fmt: skip
    print(
        f"{tag}: AR {scores['ar']:.3f}, R@50 {scores['r50']:.3f}, {scores['proposals_per_image']:.0f} per image"
    )


def touching_split(instances: torch.Tensor, classes_of: dict[int, int]) -> dict[int, bool]:
    """Whether each GT segment touches (8-neighbourhood) another segment of its own class."""
    import torch.nn.functional as F

    out = {}
    for segment, cls in classes_of.items():
        mine = (instances == segment).float()[None, None]
        if not bool(mine.any()):
            continue
        ring = (F.max_pool2d(mine, 3, 1, 1)[0, 0] > 0) & (instances != segment)
        others = {int(v) for v in instances[ring].unique().tolist()} - {0, 255}
        out[segment] = any(classes_of.get(o) == cls for o in others)
    return out


def semantic_components(instances: torch.Tensor, classes_of: dict[int, int]) -> list:
    """What the best pixel labeller can propose: connected components of the (perfect) semantic map of the thing
    classes; touching same-class objects merge into one (§4.1)."""
    import numpy as np
    from skimage import measure

    from pixelwise.metrics.proposals import WindowMask

    semantic = torch.zeros_like(instances)
    for segment, cls in classes_of.items():
        semantic[instances == segment] = cls + 1
    out = []
    for value in semantic.unique().tolist():
        if value == 0:
            continue
        labelled = measure.label((semantic == value).numpy(), connectivity=2)
        for region in measure.regionprops(labelled):
            top, left, bottom, right = region.bbox
            crop = torch.from_numpy(np.ascontiguousarray(labelled[top:bottom, left:right] == region.label))
            out.append(WindowMask(crop, top, left))
    return out


def touching(args: argparse.Namespace) -> None:
    """Recall@0.5 of GT segments that touch a same-class segment vs isolated ones: proposals vs the connected
    components of a perfect semantic labelling (spec protocol 4)."""
    from pixelwise.data.instances import instance_dataset
    from pixelwise.methods.proposals.predict import propose
    from pixelwise.metrics.proposals import best_matches

    run = ROOT / args.run
    tag = f"{args.tag}touching_{args.data}_{run.name}"
    path = RESULTS / f"{tag}.json"
    if path.exists():
        print(f"{tag}: done already")
        return
    model = _model(run)
    data = instance_dataset(data_spec(args.data), "val", size=(180, 240))
    hits = {(arm, kind): [] for arm in ("proposals", "semantic_cc") for kind in ("touching", "isolated")}
    for index in range(min(args.val_images, len(data))):
        image, target = data[index]
        truth = target["instances"].as_subclass(torch.Tensor)
        split = touching_split(truth, data.classes_of(index))
        ids = sorted(int(v) for v in truth.unique().tolist() if v not in (0, 255))  # best_matches' GT order
        for arm, masks in (("proposals", propose(model, image[None].as_subclass(torch.Tensor))[0].masks),
                           ("semantic_cc", semantic_components(truth, data.classes_of(index)))):  # fmt: skip
            best = best_matches(masks, truth)[None][0]
            for segment, iou in zip(ids, best.tolist()):
                if segment in split:
                    hits[(arm, "touching" if split[segment] else "isolated")].append(iou >= 0.5)
    record = {
        f"{arm}_{kind}": {"recall50": sum(v) / max(len(v), 1), "gts": len(v)}
        for (arm, kind), v in hits.items()
    }
    write_result(path, {"benchmark": "regions", "tag": tag, "part": "touching", **provenance(), "machine": machine(),
                        "data": args.data, "run": str(run.relative_to(ROOT)), "images": args.val_images,
                        **record})  # fmt: skip
    print(tag, {k: round(v["recall50"], 3) for k, v in record.items()})


PARTS = {"ablation": ablation, "density": density, "cost": cost, "slic": slic, "touching": touching}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", default="ablation", choices=tuple(PARTS), help="which protocol")
    parser.add_argument("--data", default="synthetic", choices=("synthetic", "camvid"), help="instance data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the ablation")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=tuple(ARMS), help="ablation arms")
    parser.add_argument("--pyramids", nargs="+", default=list(PYRAMIDS), choices=tuple(PYRAMIDS),
                        help="one layer2 pathway, or the full pyramid")  # fmt: skip
    parser.add_argument(
        "--epochs", type=int, default=2, help="epochs of the ablation (equal steps for every arm)"
    )
    parser.add_argument("--train-scenes", type=int, default=TRAIN_SCENES,
                        help="synthetic training scenes (an epoch draws as many images, with replacement)")  # fmt: skip
    parser.add_argument("--val-images", type=int, default=VAL_IMAGES, help="validation images scored per arm")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument(
        "--run", help="density: the trained run to read out (default: the tag's pyramid, both, seed 0)"
    )
    parser.add_argument("--tag", default="", help="prefix of run folders and result files")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    PARTS[args.part](args)


if __name__ == "__main__":
    main()
