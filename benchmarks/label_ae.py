"""Label-structure regulariser on CamVid (Mostajabi et al. 2018 at CPU scale): does a learned label model help?

Phase 1 (once per autoencoder): a label autoencoder (§3.1; default the 128-bottleneck one, code stride 16) trained on
the CamVid *train label maps only* (`pixelwise pretrain --method label-ae`), scored by val reconstruction mean IoU;
then a nearest-neighbour grid in code space (§4.3). Phase 2: every arm trains the same from-scratch FCN-8s /
ResNet-18 for the same number of optimiser steps (default 800, batch 8, AdamW + poly) and is scored on val mean IoU
with the plain inference model (the branch is dropped):

    baseline   no regulariser (this is also the lambda = 0 point of the sweep: same init, same data stream)
    frozen     decoder branch from layer3 (stride 16 = the code's), frozen decoder, CE, lambda (§3.3)
    random     same branch with a randomly initialised, trainable decoder (Table 2's control: expected ~ baseline)
    encoder    regress the frozen encoder's conv1 + conv3 activations of the labels with MSE (Fig. 4)
    unfrozen / mse   further ablations, not in the default grid

each without augmentation (full 180x240 frames, no flips) and with it (zoom 1-3.5x, i.e. crops of 8-100% of the
area as in the paper's RandomResizedCrop(0.08-1), plus flips; `--augment mild` is a zoom of 1-1.5x plus flips,
not run by default); the lambda sweep {0.25, 0.5, 1, 2} runs for the frozen decoder without augmentation (Fig. 5's
setting); seeds 0 1 2. A regularised arm differs from the baseline of the same seed by the branch only (the
branch is built under a forked RNG).

Each arm writes benchmarks/results/label_ae/<tag>.json; a rerun skips finished arms and resumes interrupted ones
(runs/bench/label_ae/<tag>/last.safetensors). Usage:

    python benchmarks/label_ae.py                                 # AE, neighbours, the default grid
    python benchmarks/label_ae.py --arms baseline frozen --augment none --lambdas --seeds 0
    python benchmarks/label_ae.py --ae-only                       # phase 1 only
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from pixelwise.data import build_dataset
from pixelwise.engine.trainer import Trainer
from pixelwise.methods.label_ae import LabelAETask
from pixelwise.methods.label_ae.neighbours import NeighboursConfig, retrieve_neighbours
from pixelwise.methods.pretrain import PretrainConfig
from pixelwise.methods.segmentation import SegmentationTask, TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAMVID, ROOT, parse_overrides, result_record, write_result  # noqa: E402

BASE_SIZE = [180, 240]
# arm -> (label-ae mode, decoder, aux loss); None: no regulariser
ARMS: dict[str, tuple[str, str, str] | None] = {
    "baseline": None,
    "frozen": ("decoder", "frozen", "ce"),
    "random": ("decoder", "random", "ce"),
    "encoder": ("encoder", "frozen", "ce"),  # the encoder branch always regresses with MSE
    "unfrozen": ("decoder", "unfrozen", "ce"),
    "mse": ("decoder", "frozen", "mse"),
}
AUGMENT = {  # (scale range, hflip)
    "none": ([1.0, 1.0], False),
    "aug": ([1.0, 3.5], True),  # zoom 1/sqrt(area 0.08..1) = 1..3.5, then a 180x240 crop
    # Not in the paper: a milder zoom (crops of 44-100% of the area) that 400 steps do not underfit, so the
    # "gain shrinks with augmentation" question can be asked of a regime that still trains to baseline level.
    "mild": ([1.0, 1.5], True),
}


def data_spec() -> str:
    return f"camvid:{CAMVID}"


def ae_recipe(args: argparse.Namespace, output: Path) -> PretrainConfig:
    return PretrainConfig(
        method="label-ae",
        data=data_spec(),
        output=str(output),
        label_ae_width=args.ae_width,
        label_ae_stride=16,  # matches ResNet-18 layer3, the branch's default layer
        epochs=args.ae_epochs,
        batch_size=16,
        base_size=BASE_SIZE,
        crop=BASE_SIZE,
        scale=[1.0, 1.5],
        hflip=True,
        optimizer="adamw",
        lr=1e-3,
        weight_decay=0.0,
        schedule="poly",
        eval_every=max(1, args.ae_epochs // 4),
        num_examples=4,
        seed=0,
        resume=(output / "last.safetensors").exists(),
    )


def pretrain_autoencoder(args: argparse.Namespace) -> Path:
    """Phase 1 (resumable); returns the checkpoint the arms read. Also writes the §4.3 neighbour grid."""
    tag = f"ae_w{args.ae_width}_e{args.ae_epochs}"
    output = args.runs / tag
    result_path = args.results / f"{tag}.json"
    checkpoint = output / "best.safetensors"
    # runs/ is not kept with the results: a recorded AE whose finished run is gone (metrics.json is written last) is
    # trained again (same seed and recipe, resumable), so the arms still to run have a decoder to read; the new
    # record replaces the old one.
    trained = not result_path.exists() or not (output / "metrics.json").exists()
    if trained:
        config = ae_recipe(args, output)
        for key, value in args.ae_overrides.items():
            setattr(config, key, value)
        started = time.time()
        trainer = Trainer(config, LabelAETask(config))
        scores = trainer.fit()
        minutes = (time.time() - started) / 60
        parameters = sum(p.numel() for p in trainer.model.parameters())
        record = result_record(
            "label_ae", tag, config, minutes, parameters=parameters, iterations=trainer.state.iteration,
            val_reconstruction={k: v for k, v in scores.items() if k != "per_class_acc"},
        )  # fmt: skip
        write_result(result_path, record)
        print(f"{tag}: val reconstruction mIoU {scores['mean_iou']:.4f} in {minutes:.1f} min")
    else:
        print(f"{tag}: done already")
    neighbours = args.results / f"neighbours_{tag}"
    if not args.skip_neighbours and (trained or not (neighbours / "neighbours.json").exists()):
        retrieve_neighbours(
            NeighboursConfig(
                checkpoint=str(output),
                data=data_spec(),
                size=BASE_SIZE,
                queries=6,
                k=3,
                output=str(neighbours),
            )
        )
        print(f"{tag}: nearest neighbours in code space -> {neighbours / 'neighbours.png'}")
    return checkpoint


def epochs_for(steps: int, batch: int) -> int:
    """Epochs that give at least ``steps`` optimiser steps (drop_last batches)."""
    images = len(build_dataset(data_spec(), "train"))
    return math.ceil(steps / max(1, images // batch))


def recipe(
    arm: str, weight: float, augment: str, seed: int, epochs: int, ae: Path, output: Path
) -> TrainConfig:
    scale, hflip = AUGMENT[augment]
    branch = ARMS[arm]
    extra = {}
    if branch is not None:
        mode, decoder, loss = branch
        extra = dict(
            regularizer="label-ae", label_ae=str(ae), aux_weight=weight, label_ae_mode=mode,
            label_ae_decoder=decoder, aux_loss=loss,
        )  # fmt: skip
    return TrainConfig(
        data=data_spec(),
        output=str(output),
        arch="fcn8s",
        backbone="resnet18",  # from scratch: the paper's Table 1 setting, where the regulariser helped most
        epochs=epochs,
        batch_size=8,
        base_size=BASE_SIZE,
        crop=BASE_SIZE,
        scale=scale,
        hflip=hflip,
        color_jitter=0.0,
        optimizer="adamw",
        lr=2e-3,
        weight_decay=1e-4,
        schedule="poly",
        eval_every=0,
        eval_scale=0.5,
        num_examples=2,
        seed=seed,
        resume=(output / "last.safetensors").exists(),
        **extra,
    )


def arm_tag(arm: str, weight: float, augment: str, seed: int) -> str:
    return f"{arm}_{augment}_seed{seed}" if arm == "baseline" else f"{arm}_l{weight:g}_{augment}_seed{seed}"


def run_arm(arm: str, weight: float, augment: str, seed: int, ae: Path, args: argparse.Namespace) -> None:
    tag = arm_tag(arm, weight, augment, seed)
    result_path = args.results / f"{tag}.json"
    if result_path.exists():
        print(f"{tag}: done already")
        return
    if ARMS[arm] is not None and not ae.exists():
        print(f"{tag}: skipped, {ae} does not exist yet (phase 1 has not finished)")
        return
    output = args.runs / tag
    config = recipe(arm, weight, augment, seed, epochs_for(args.steps, 8), ae, output)
    for key, value in args.overrides.items():
        setattr(config, key, value)
    started = time.time()
    trainer = Trainer(config, SegmentationTask(config))
    scores = trainer.fit()
    minutes = (time.time() - started) / 60
    inference = getattr(trainer.model, "inference_model", lambda: trainer.model)()
    record = result_record(
        "label_ae",
        tag,
        config,
        minutes,
        arm=arm,
        aux_weight=weight if ARMS[arm] is not None else 0.0,
        augment=augment,
        seed=seed,
        label_ae=str(ae) if ARMS[arm] is not None else None,
        iterations=trainer.state.iteration,
        training_parameters=sum(p.numel() for p in trainer.model.parameters()),
        inference_parameters=sum(p.numel() for p in inference.parameters()),  # = the baseline's: no test cost
        val={k: v for k, v in scores.items() if k != "per_class_acc"},
    )
    write_result(result_path, record)
    print(
        f"{tag}: val mIoU {scores['mean_iou']:.4f} after {trainer.state.iteration} steps, {minutes:.1f} min"
    )


def grid(args: argparse.Namespace) -> list[tuple[str, float, str]]:
    """(arm, lambda, augment) for one seed: every arm at the default lambda, plus the frozen-decoder sweep."""
    cells = [(arm, args.weight, augment) for augment in args.augment for arm in args.arms]
    if "frozen" in args.arms:
        cells += [
            ("frozen", w, a) for a in args.sweep_augment for w in args.lambdas if w not in (0, args.weight)
        ]
    return [c for i, c in enumerate(cells) if c not in cells[:i]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--arms",
        nargs="+",
        default=["baseline", "frozen", "random", "encoder"],
        choices=list(ARMS),
        help="arms (see above)",
    )
    parser.add_argument(
        "--augment", nargs="+", default=["none", "aug"], choices=list(AUGMENT), help="regimes"
    )
    parser.add_argument(
        "--weight", type=float, default=0.5, help="lambda of every regularised arm (§4.2: 0.5)"
    )
    parser.add_argument(
        "--lambdas", nargs="*", type=float, default=[0, 0.25, 0.5, 1, 2],
        help="frozen-decoder lambda sweep (0 is the baseline arm; empty: no sweep)",
    )  # fmt: skip
    parser.add_argument(
        "--sweep-augment", nargs="*", default=["none"], choices=list(AUGMENT), help="sweep regimes"
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (init, data order, crops)"
    )
    parser.add_argument("--steps", type=int, default=800, help="optimiser steps per arm (the same for all)")
    parser.add_argument(
        "--ae-width", type=int, default=128, choices=(32, 128, 256), help="AE bottleneck (§3.1)"
    )
    parser.add_argument(
        "--ae-epochs", type=int, default=40, help="label-autoencoder epochs on the train labels"
    )
    parser.add_argument("--ae-only", action="store_true", help="phase 1 only (autoencoder and neighbours)")
    parser.add_argument(
        "--skip-neighbours", action="store_true", help="do not draw the code-space neighbours"
    )
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="override arm recipe fields"
    )
    parser.add_argument(
        "--ae-set", nargs="*", default=[], metavar="KEY=VALUE", help="override AE recipe fields"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "label_ae",
        help="result JSON folder",
    )
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench" / "label_ae", help="run folders")
    args = parser.parse_args()
    args.overrides = parse_overrides(args.set)
    args.ae_overrides = parse_overrides(args.ae_set)
    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}; this benchmark needs ../shared/data/camvid")
    ae = pretrain_autoencoder(args)
    if args.ae_only:
        return
    cells = grid(args)
    for seed in args.seeds:  # seed-major, so an interrupted study has balanced arms
        for arm, weight, augment in cells:
            run_arm(arm, weight, augment, seed, ae, args)


if __name__ == "__main__":
    main()
