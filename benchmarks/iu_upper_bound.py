"""IU upper bound on CamVid val (Long thesis §3.5): how much mean IU a perfect predictor at stride f could reach.

Downsamples each ground-truth map by f, upsamples it back (nearest) and scores it against itself. Shows why
FCN-32s is capped near boundaries and how much the 16s/8s skips can recover. Usage:

    python benchmarks/iu_upper_bound.py [--factors 4 8 16 32 64 128]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pixelwise.data import build_dataset
from pixelwise.metrics.upper_bound import iu_upper_bound

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "data" / "camvid"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--factors", nargs="+", type=int, default=[4, 8, 16, 32, 64, 128], help="downsampling factors"
    )
    parser.add_argument("--split", default="val", help="CamVid split")
    args = parser.parse_args()
    if not CAMVID.is_dir():
        sys.exit(f"CamVid not found at {CAMVID}")
    dataset = build_dataset(f"camvid:{CAMVID}", args.split)
    labels = [dataset.load_label(i).long() for i in range(len(dataset))]
    bounds = {f: iu_upper_bound(labels, f, dataset.info.num_classes) for f in args.factors}
    for factor, value in bounds.items():
        print(f"factor {factor:4d}: mean IU upper bound {100 * value:.1f}")
    out = ROOT / "benchmarks" / "results" / "iu_upper_bound.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"split": args.split, "mean_iu_upper_bound": bounds}, indent=2))


if __name__ == "__main__":
    main()
