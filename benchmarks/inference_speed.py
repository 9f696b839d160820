"""Inference speed of `pixelwise predict` / `eval` per runtime (issue 25): images/s, FLOPs and MFU.

For one model (default FCN-8s / ResNet-18, 11 classes, random weights: speed does not depend on them) at
360x480, batch 1, no grad, every --engines entry runs --images timed forward passes after --warmup untimed
ones:

    torch           eager PyTorch, contiguous (NCHW) tensors
    channels-last   eager PyTorch, channels-last tensors and weights
    compile         torch.compile (inductor); the first call's compile time is reported separately
    onnx            the graph exported once, run by onnxruntime (CPU, as many threads as torch uses)
    bf16            eager PyTorch under bf16 autocast (only meaningful where the CPU has native bf16)

FLOPs per image come from torch.utils.flop_counter (multiply-add = 2 FLOPs); MFU is the achieved FLOP rate
over the machine's measured fp32 peak, a 2048x2048 matmul on the same threads. Each engine is timed in its own
process (so one engine's threads and caches do not warm the next), one JSON per engine under
benchmarks/results/inference_speed/ (reruns skip finished engines; --force reruns). Run it on a quiet machine:

    python benchmarks/inference_speed.py --engines torch channels-last compile onnx bf16
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, provenance, write_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "inference_speed"
ENGINES = ("torch", "channels-last", "compile", "onnx", "bf16")


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    """The fp32 GFLOP/s of a size x size matmul on torch's threads: the machine's practical peak."""
    a, b = torch.rand(size, size), torch.rand(size, size)
    for _ in range(2):
        a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def flops_per_image(model: torch.nn.Module, images: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(images)
    return float(counter.get_total_flops())


def runtime_for(engine: str, model: torch.nn.Module) -> torch.nn.Module:
    from pixelwise.engine.runtimes import inference_runtime

    if engine == "channels-last":
        return inference_runtime(model, "torch", channels_last=True)
    if engine == "bf16":
        return model
    return inference_runtime(model, engine, {"model": model.config.to_dict()})


def time_engine(engine: str, args: argparse.Namespace) -> dict:
    from pixelwise.models import create_model

    torch.manual_seed(0)
    model = create_model(args.arch, args.backbone, num_classes=11, head_width=args.head_width).eval()
    images = torch.rand(1, 3, *args.size)
    runtime = runtime_for(engine, model)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=engine == "bf16")
    with torch.no_grad(), autocast:
        started = time.perf_counter()
        runtime(images)  # compile / first-call cost, reported apart from the steady state
        first_s = time.perf_counter() - started
        for _ in range(args.warmup):
            runtime(images)
        started = time.perf_counter()
        for _ in range(args.images):
            runtime(images)
        seconds = time.perf_counter() - started
    flops = flops_per_image(model, images)
    peak = matmul_peak_gflops()
    rate = args.images / seconds
    fell_back = bool(getattr(runtime, "failed", False))
    return {
        "engine": engine,
        "arch": args.arch,
        "backbone": args.backbone,
        "size": list(args.size),
        "images": args.images,
        "first_call_s": round(first_s, 2),
        "images_per_s": round(rate, 3),
        "ms_per_image": round(1000 / rate, 1),
        "gflops_per_image": round(flops / 1e9, 2),
        "achieved_gflops": round(rate * flops / 1e9, 1),
        "matmul_peak_gflops": round(peak, 1),
        "mfu": round(rate * flops / 1e9 / peak, 3),
        "compile_fell_back_to_eager": fell_back,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--engines", nargs="+", default=list(ENGINES), choices=ENGINES, help="runtimes to time"
    )
    parser.add_argument("--arch", default="fcn8s", help="architecture (pixelwise models)")
    parser.add_argument("--backbone", default="resnet18", help="backbone")
    parser.add_argument(
        "--head-width", type=int, default=256, help="head width (zoom-out / hypercolumn heads)"
    )
    parser.add_argument(
        "--size", type=int, nargs=2, default=[360, 480], metavar=("H", "W"), help="input size"
    )
    parser.add_argument("--images", type=int, default=20, help="timed forward passes")
    parser.add_argument("--warmup", type=int, default=3, help="untimed passes after the first call")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--tag", default="", help="prefix of the result names")
    parser.add_argument("--force", action="store_true", help="rerun engines that have a result")
    parser.add_argument("--only", choices=ENGINES, help=argparse.SUPPRESS)  # the child process of one engine
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.only:
        name = f"{args.tag}{args.arch}_{args.only}"
        record = {"benchmark": "inference_speed", "tag": name, **provenance(), "machine": machine()}
        write_result(RESULTS / f"{name}.json", {**record, **time_engine(args.only, args)})
        return
    for engine in args.engines:
        path = RESULTS / f"{args.tag}{args.arch}_{engine}.json"
        if path.exists() and not args.force:
            print(f"{engine}: done already ({path.name})")
            continue
        subprocess.run([sys.executable, *sys.argv, "--only", engine], check=True)
        result = json.loads(path.read_text())
        print(f"{engine}: {result['images_per_s']:.2f} img/s, {result['ms_per_image']} ms, MFU {result['mfu']:.2f} "
              f"(first call {result['first_call_s']} s)")  # fmt: skip


if __name__ == "__main__":
    main()
