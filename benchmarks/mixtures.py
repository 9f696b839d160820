"""Stacked mixture models vs a shape-matched CNN on digits, offline (Larsson thesis §1.2.9, Tables 1.1-1.2), and
the shortcut autoencoder transferred to CamVid segmentation (§1.3.3, Table 1.3). Protocol: specs/mixture-models.md.

``--part digits`` (default). scikit-learn's 1,797 bundled digits (28x28, pixelwise.data.digits), in the variations
basic / rot / bg-rand / bg-img / bg-img-rot (bg-img needs CamVid frames; skipped when absent). Each of 5 random
splits holds 100 digits per class for training (1,000) and the other 797 for testing. The parts layers see all
1,000 training digits without labels; the top layer (and the CNN) sees L labelled digits per class, L in 10 / 30 /
all (= 100: with 1,797 digits, the thesis' "100 per class" is "all"). Models, CPU-sized (M R <= 256):

- plain: Edges -> Mixture(S = 6, M = 256) -> per-class Mixture(M = 1) (thesis M = 1,280);
- plain-svm: the same two layers, linear SVM on top (C by 3-fold CV on the labelled digits);
- oriented: Edges -> RotMix(S = 6, M = 16, R = 16; 20 patches per image) -> per-class RotMix(M = 1, R = 16)
  (thesis M = 40, R = 32);
- cnn / cnn-rot: 6x6 conv (256) -> ReLU -> 4x4 max-pool -> linear, Adam 1e-3, 500 steps of 32, without / with
  random-rotation augmentation (the thesis' shape-matched CNN).

On rotated variants the oriented model also reports how well its class RotMix recovers each test digit's rotation:
the circular correlation between the pose index of the true class's best template and the applied angle (per class,
then averaged; the canonical rotation of each class is arbitrary, which the coefficient ignores).

Each (model, variant, labels, split) writes benchmarks/results/mixtures/<data>_<variant>_<model>_l<L>_split<S>.json
(command, date, machine, minutes); reruns skip those that exist. The unsupervised layers are fitted once per
(variant, split, model family) and shared by the label counts; their minutes are recorded with each.

``--part autoencoder``: pretrain an autoencoder and a shortcut autoencoder (shortcuts layer1 layer2 layer3, lambda
1) on the CamVid train + val frames (labels unused; the colorization pretraining recipe: ResNet-18, 30 epochs,
180x240 crops), then fine-tune FCN-8s on RGB at 10 / 25 / 100% of the labels, 3 seeds, with
benchmarks/colorization_transfer.py's recipe; random-rgb is the baseline and the grey colorization arms of that
benchmark are the self-supervised reference. Results: benchmarks/results/mixtures/ae_*.json.

    python benchmarks/mixtures.py                                    # digits: basic + rot, all models, 5 splits
    python benchmarks/mixtures.py --variants bg-rand bg-img-rot --backgrounds ../shared/data/camvid
    python benchmarks/mixtures.py --part autoencoder                 # CamVid (hours on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.data.digits import camvid_backgrounds, make_variation, rotate, sklearn_digits
from pixelwise.methods.mixtures import PartsNet, PartsNetConfig, circular_correlation, error_rate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAMVID, ROOT, machine, provenance, write_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "mixtures"
MODELS = ("plain", "plain-svm", "oriented", "cnn", "cnn-rot")
TRAIN_PER_CLASS = 100


# ------------------------------------------------------------------------------------------------- the data
def split_indices(labels: torch.Tensor, split: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test): per class a random TRAIN_PER_CLASS for training, in a random order (so the first L of
    each class are the L-label subset: nested subsets), the rest for testing; seeded by ``split``."""
    generator = torch.Generator().manual_seed(1000 + split)
    train, test = [], []
    for value in range(int(labels.max()) + 1):
        members = torch.nonzero(labels == value).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        train.append(members[:TRAIN_PER_CLASS])
        test.append(members[TRAIN_PER_CLASS:])
    ranked = torch.stack(train, dim=1).flatten()  # interleaved: rank 0 of every class, then rank 1, ...
    return ranked, torch.cat(test)


def labelled(train: torch.Tensor, per_class: int) -> torch.Tensor:
    """The first ``per_class`` digits of every class (``train`` is interleaved by rank): nested subsets."""
    return train[: per_class * 10] if per_class else train


# ------------------------------------------------------------------------------------------------- the CNN
class ShapeMatchedCNN(nn.Module):
    """6x6 conv -> ReLU -> 4x4 max-pool -> linear: the mixture network's shape with learnt, real-valued units."""

    def __init__(self, channels: int = 256, classes: int = 10, size: int = 28) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 6)
        cells = math.ceil((size - 5) / 4)
        self.fc = nn.Linear(channels * cells * cells, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = F.max_pool2d(F.relu(self.conv(images - 0.5)), 4, ceil_mode=True)
        return self.fc(hidden.flatten(1))


def train_cnn(
    images: torch.Tensor, labels: torch.Tensor, augment: bool, seed: int, steps: int = 500
) -> nn.Module:
    torch.manual_seed(seed)
    net = ShapeMatchedCNN()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        batch = torch.randint(0, len(images), (32,))
        x = images[batch]
        if augment:  # a uniform random rotation per digit and step
            x = rotate(x, torch.rand(len(x)) * 2 * math.pi).clamp(0, 1)
        loss = F.cross_entropy(net(x), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


# ------------------------------------------------------------------------------------------------- one unit
def result_path(data: str, variant: str, model: str, per_class: int, split: int) -> Path:
    return RESULTS / f"{data}_{variant}_{model}_l{per_class or 'all'}_split{split}.json"


def record(path: Path, minutes: float, **values: Any) -> None:
    write_result(
        path,
        {"benchmark": "mixtures", "tag": path.stem, **provenance(), "machine": machine(),
         "minutes": round(minutes, 3), **values},
    )  # fmt: skip
    print(f"{path.stem}: error {100 * values['error']:.1f}% ({minutes:.2f} min)", flush=True)


def rotation_recovery(
    net: PartsNet, features: torch.Tensor, labels: torch.Tensor, angles: torch.Tensor
) -> dict:
    """Circular correlation of the inferred pose (true class's best template) with the applied angle."""
    poses = net.poses(features, labels).double() * (2 * math.pi / net.config.class_rotations)
    per_class = {}
    for value in range(10):
        chosen = labels == value
        per_class[str(value)] = round(circular_correlation(poses[chosen], angles[chosen].double()), 4)
    return {"circular_correlation_mean": round(sum(per_class.values()) / 10, 4), "per_class": per_class}


def run_parts_family(
    family: str,
    variant: str,
    split: int,
    todo: list[tuple[str, int]],
    data: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    """Fit the unsupervised layers of ``family`` (plain or oriented) once, then every pending top layer."""
    images, labels, angles = data["images"], data["labels"], data["angles"]
    train, test = split_indices(labels, split)
    started = time.time()
    config = PartsNetConfig.for_model("oriented" if family == "oriented" else "plain", seed=split)
    if family != "oriented":
        config = PartsNetConfig.for_model("plain", parts=args.plain_parts, seed=split)
    net = PartsNet(config).fit_parts(images[train])
    test_features = net.features(images[test])
    complete = net.complete_features(images[train]) if family == "oriented" else net.features(images[train])
    layer_minutes = (time.time() - started) / 60
    for model, per_class in todo:
        begun = time.time()
        chosen = labelled(train, per_class)  # a prefix of ``train``: its rows of ``complete`` come first
        top = PartsNet(PartsNetConfig(**{**config.__dict__, "model": model}))
        top.layer = net.layer
        top.fit_top(complete[: len(chosen)], labels[chosen])
        error = error_rate(top.scores(test_features).argmax(dim=1), labels[test])
        extra: dict[str, Any] = {"svm_c": top.svm_c} if model == "plain-svm" else {}
        if family == "oriented" and angles[test].abs().sum() > 0:
            extra["rotation_recovery"] = rotation_recovery(top, test_features, labels[test], angles[test])
        top_minutes = (time.time() - begun) / 60
        record(
            result_path(args.data, variant, model, per_class, split), layer_minutes + top_minutes,
            data=args.data, variant=variant, model=model, labels_per_class=per_class or TRAIN_PER_CLASS,
            split=split, error=error, train_images=len(train), test_images=len(test),
            layer_minutes=round(layer_minutes, 3), top_minutes=round(top_minutes, 3),
            layer_log_likelihoods=net.layer.log_likelihoods, config=top.config.to_dict(), **extra,
        )  # fmt: skip


def run_cnn(
    model: str, variant: str, split: int, per_class: int, data: dict[str, Any], args: argparse.Namespace
) -> None:
    images, labels = data["images"], data["labels"]
    train, test = split_indices(labels, split)
    chosen = labelled(train, per_class)
    started = time.time()
    net = train_cnn(images[chosen], labels[chosen], model == "cnn-rot", seed=100 * split + per_class)
    with torch.no_grad():
        error = error_rate(net(images[test]).argmax(dim=1), labels[test])
    record(
        result_path(args.data, variant, model, per_class, split), (time.time() - started) / 60,
        data=args.data, variant=variant, model=model, labels_per_class=per_class or TRAIN_PER_CLASS, split=split,
        error=error, train_images=len(chosen), test_images=len(test), steps=500, batch=32, channels=256,
    )  # fmt: skip


def digits_part(args: argparse.Namespace) -> None:
    images, labels = sklearn_digits()
    backgrounds = camvid_backgrounds(args.backgrounds) if args.backgrounds else None
    for variant in args.variants:
        if variant in ("bg-img", "bg-img-rot") and backgrounds is None:
            print(f"{variant}: skipped, no CamVid frames at --backgrounds {args.backgrounds}")
            continue
        varied, angles = make_variation(images, variant, seed=0, backgrounds=backgrounds)
        data = {"images": varied, "labels": labels, "angles": angles}
        for split in args.splits:
            pending = [(m, n) for m in args.models for n in args.labels
                       if not result_path(args.data, variant, m, n, split).exists()]  # fmt: skip
            if variant in ("basic", "bg-rand", "bg-img"):  # Oriented is for rotated data (Tables 1.1-1.2)
                pending = [(m, n) for m, n in pending if m not in ("oriented", "cnn-rot")]
            for family, members in (("plain", ("plain", "plain-svm")), ("oriented", ("oriented",))):
                todo = [(m, n) for m, n in pending if m in members]
                if todo:
                    run_parts_family(family, variant, split, todo, data, args)
            for model, per_class in pending:
                if model.startswith("cnn"):
                    run_cnn(model, variant, split, per_class, data, args)


# ------------------------------------------------------------------------------------------------- autoencoder
def autoencoder_part(args: argparse.Namespace) -> None:
    from colorization_pretrain import recipe as pretrain_recipe
    from colorization_transfer import epochs_for, recipe
    from common import fit_and_record, result_record
    from pixelwise.engine.trainer import Trainer
    from pixelwise.methods.autoencoder import AutoencoderTask

    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}; --part autoencoder needs ../shared/data/camvid")
    arms = {"ae": [], "shortcut-ae": ["layer1", "layer2", "layer3"]}
    checkpoints: dict[str, Path | None] = {"random-rgb": None}
    for arm, shortcuts in arms.items():
        tag = f"{args.tag}ae_pretrain_{arm}_e{args.ae_epochs}"
        output = ROOT / "runs" / "bench" / "mixtures" / tag
        checkpoints[arm] = output / "last.safetensors"
        path = RESULTS / f"{tag}.json"
        if path.exists():
            print(f"{tag}: done already")
            continue
        config = pretrain_recipe(
            "l2", args.ae_epochs, output, {"method": "autoencoder", "shortcuts": shortcuts}
        )
        started = time.time()
        trainer = Trainer(config, AutoencoderTask(config))
        scores = trainer.fit()
        minutes = (time.time() - started) / 60
        write_result(
            path, result_record("mixtures", tag, config, minutes, part="ae_pretrain", arm=arm, val=scores)
        )
        print(
            f"{tag}: val PSNR {scores['psnr']:.2f} dB, full-path MSE {scores['loss_full']:.4f}, {minutes:.1f} min"
        )
    for seed in args.seeds:
        for fraction in args.fractions:
            for arm, checkpoint in checkpoints.items():
                tag = f"{args.tag}ae_transfer_{arm}_f{fraction:g}_seed{seed}"
                path = RESULTS / f"{tag}.json"
                if path.exists():
                    print(f"{tag}: done already")
                    continue
                output = ROOT / "runs" / "bench" / "mixtures" / tag
                epochs = epochs_for(args.steps, fraction, 8)
                config = recipe(checkpoint, "none", fraction, seed, epochs, output, in_channels=3)
                fit_and_record("mixtures", tag, config, path, part="ae_transfer", init=arm, labels_fraction=fraction,
                               seed=seed)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", default="digits", choices=("digits", "autoencoder"), help="which study")
    parser.add_argument("--data", default="digits", choices=("digits",), help="digit source (sklearn's)")
    parser.add_argument("--variants", nargs="+", default=["basic", "rot"], help="digit variations")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="models to run")
    parser.add_argument(
        "--labels", nargs="+", type=int, default=[10, 30, 0], help="labels per class (0: all)"
    )
    parser.add_argument("--splits", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="random splits")
    parser.add_argument("--plain-parts", type=int, default=256, help="M of Plain's layer 2 (thesis 1,280)")
    parser.add_argument(
        "--backgrounds", default=str(CAMVID), help="CamVid folder for bg-img (skipped if absent)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--ae-epochs", type=int, default=30, help="autoencoder pretraining epochs")
    parser.add_argument(
        "--fractions", nargs="+", type=float, default=[0.1, 0.25, 1.0], help="label fractions"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="fine-tuning seeds")
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps per arm")
    parser.add_argument(
        "--tag", default="", help="autoencoder: prefix of the result and run names (e.g. smoke_)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.part == "digits":
        digits_part(args)
    else:
        autoencoder_part(args)


if __name__ == "__main__":
    main()
