"""pixelwise vs the models a user would pick instead, on CamVid at the same wall-clock budget (issue 7).

Every model trains from scratch (no pretrained weights anywhere) in the same plain loop, on the same data stream
(the CamVid recipe of docs/results.md: 180x240 frames, scale jitter 0.75-1.5, flips, 180x240 crops, batch 8),
with the same optimiser (AdamW 2e-3, weight decay 1e-4), bf16 autocast where the CPU has it, and a poly schedule
over *time* (lr x (1 - elapsed/budget)^0.9), so every model anneals fully within its budget whatever its speed.
Then each is scored by pixelwise's evaluation (val mean IoU at half the full resolution, as every benchmark here).

    pixelwise_fcn8s_resnet18     pixelwise's recipe model (FCN-8s, ResNet-18; its best CamVid recipe)
    smp_unet_resnet18            segmentation_models_pytorch Unet, resnet18 encoder, encoder_weights=None
    smp_fpn_resnet18             segmentation_models_pytorch FPN, resnet18 encoder
    tv_fcn_resnet50              torchvision fcn_resnet50 (weights=None, weights_backbone=None)
    tv_deeplabv3_mobilenet       torchvision deeplabv3_mobilenet_v3_large
    tv_lraspp_mobilenet          torchvision lraspp_mobilenet_v3_large

Peers get the same input handling as pixelwise models (ImageNet standardisation, zero padding to a multiple of 32,
output cropped back). Reported per model: val mean IoU, training images/s (after 3 warm-up steps), inference
images/s (batch 1, 180x240, no grad), parameters and peak memory (CUDA: max allocated; CPU: the process's peak
RSS, each model running in its own process). segmentation_models_pytorch is a benchmark-only extra
(``pip install segmentation-models-pytorch``), never a pixelwise dependency; its rows are skipped without it.

Each model writes benchmarks/results/peers/<model>_b<minutes>.json; a rerun skips finished ones. Usage:

    python benchmarks/peers.py --budget-minutes 4
    python benchmarks/peers.py --models pixelwise_fcn8s_resnet18 smp_unet_resnet18 --budget-minutes 2
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from pixelwise.engine.distributed import resolve_device
from pixelwise.engine.evaluate import EvalOptions, evaluate
from pixelwise.methods.segmentation import SegmentationTask, TrainConfig
from pixelwise.models.inputs import InputNormalizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAMVID, ROOT, camvid_recipe, result_record, write_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "peers"
NUM_CLASSES = 11


class PeerModel(nn.Module):
    """A peer network behind pixelwise's input handling: [0, 1] images of any size in, {"seg": logits} out."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.normalizer = InputNormalizer(3, 32)
        self.network = network

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        height, width = images.shape[-2:]
        out = self.network(self.normalizer(images))
        if isinstance(out, dict):  # torchvision segmentation models
            out = out["out"]
        return {"seg": out[..., :height, :width]}  # pixelwise's output convention


def smp_model(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import segmentation_models_pytorch as smp

        return PeerModel(getattr(smp, name)("resnet18", encoder_weights=None, classes=NUM_CLASSES))

    return build


def torchvision_model(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from torchvision.models import segmentation

        builder = getattr(segmentation, name)
        return PeerModel(builder(weights=None, weights_backbone=None, num_classes=NUM_CLASSES))

    return build


MODELS: dict[str, Callable[[], nn.Module] | None] = {
    "pixelwise_fcn8s_resnet18": None,  # built by SegmentationTask from the recipe
    "smp_unet_resnet18": smp_model("Unet"),
    "smp_fpn_resnet18": smp_model("FPN"),
    "tv_fcn_resnet50": torchvision_model("fcn_resnet50"),
    "tv_deeplabv3_mobilenet": torchvision_model("deeplabv3_mobilenet_v3_large"),
    "tv_lraspp_mobilenet": torchvision_model("lraspp_mobilenet_v3_large"),
}


def recipe(name: str, seed: int) -> TrainConfig:
    return TrainConfig(**camvid_recipe(RESULTS / "runs" / name, seed, amp=True, hflip=True))


def train_for(model: nn.Module, loader: DataLoader, budget_s: float, device: torch.device, amp: bool) -> dict:
    """The plain loop: cross-entropy (void ignored), AdamW, poly-over-time lr; stops when the budget is spent."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    model.train()
    steps, images_timed, timed_from, started = 0, 0, None, time.perf_counter()
    bar = tqdm(total=round(budget_s), desc="train (s)", unit="s")
    while True:
        for images, targets in loader:
            elapsed = time.perf_counter() - started
            if elapsed >= budget_s:
                bar.close()
                rate = images_timed / (time.perf_counter() - timed_from) if timed_from else float("nan")
                return {"steps": steps, "train_images_per_s": rate}
            for group in optimizer.param_groups:
                group["lr"] = 2e-3 * (1 - elapsed / budget_s) ** 0.9
            images, labels = images.to(device), targets["seg"].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(model(images)["seg"].float(), labels, ignore_index=255)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            if steps == 3:  # warm-up done: time from here
                timed_from = time.perf_counter()
            elif steps > 3:
                images_timed += len(images)
            bar.update(round(time.perf_counter() - started) - bar.n)
            bar.set_postfix(loss=f"{loss.item():.3f}", step=steps)


@torch.no_grad()
def inference_rate(model: nn.Module, device: torch.device, amp: bool, repeats: int = 20) -> float:
    model.eval()
    image = torch.rand(1, 3, 180, 240, device=device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        for _ in range(3):
            model(image)
        started = time.perf_counter()
        for _ in range(repeats):
            model(image)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return repeats / (time.perf_counter() - started)


def result_path(name: str, args: argparse.Namespace) -> Path:
    subset = f"_v{args.val_images}" if args.val_images else ""
    return RESULTS / f"{name}_b{args.budget_minutes:g}{subset}.json"


def run_one(name: str, args: argparse.Namespace) -> None:
    """Child process: train, score and measure one model, write its JSON."""
    config = recipe(name, args.seed)
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    task = SegmentationTask(config)
    train_set, val_set = task.datasets()
    builder = MODELS[name]
    model = (task.build_model()[0] if builder is None else builder()).to(device)
    generator = torch.Generator().manual_seed(args.seed)
    loader = DataLoader(train_set, batch_size=8, shuffle=True, drop_last=True, generator=generator)
    if args.val_images:  # quick checks only: results name the subset
        val_set = Subset(val_set, range(min(args.val_images, len(val_set))))
    val_loader = DataLoader(val_set, batch_size=1)
    amp = config.amp  # bf16 autocast, as the recipe trains
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.time()
    training = train_for(model, loader, args.budget_minutes * 60, device, amp)
    options = EvalOptions(scales=(config.eval_scale,), progress=True)
    scores, _, _ = evaluate(model, val_loader, NUM_CLASSES, device, options=options)
    peak_mb = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    record = result_record(
        "peers",
        result_path(name, args).stem,
        config,
        (time.time() - started) / 60,
        model=name,
        budget_minutes=args.budget_minutes,
        val_images=len(val_set),
        parameters=sum(p.numel() for p in model.parameters()),
        **training,
        inference_images_per_s=inference_rate(model, device, amp),
        peak_memory_mb=round(peak_mb, 1),
        peak_memory_kind="cuda max allocated" if device.type == "cuda" else "process peak RSS",
        val={k: v for k, v in scores.items() if k != "per_class_acc"},
    )
    write_result(result_path(name, args), record)
    print(f"{name}: val mIoU {scores['mean_iou']:.4f}, {training['steps']} steps, "
          f"{training['train_images_per_s']:.1f} train img/s, peak {peak_mb:.0f} MB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS), help="models")
    parser.add_argument("--budget-minutes", type=float, default=4.0, help="training wall-clock per model")
    parser.add_argument("--seed", type=int, default=0, help="init and data order")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--val-images", type=int, default=0, help="score on the first N val images (0: all)")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # child mode: one model in this process
    args = parser.parse_args()
    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}; this benchmark needs ../shared/data/camvid")
    if args.only:
        run_one(args.only, args)
        return
    for name in args.models:
        if (result_path(name, args)).exists():
            print(f"{name}: done already")
            continue
        if name.startswith("smp_") and importlib.util.find_spec("segmentation_models_pytorch") is None:
            print(f"{name}: skipped, segmentation_models_pytorch is not installed (benchmark-only extra)")
            continue
        child = [sys.executable, *sys.argv, "--only", name]  # own process: its own peak memory
        subprocess.run(child, check=True)


if __name__ == "__main__":
    main()
