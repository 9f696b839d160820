"""``pixelwise`` console script: one subcommand per job (train, pretrain, tune, eval, predict, colorize, pipeline,
export, datasets, models, label-ae, zoomout, weak, depth, distill, correspond); ``pixelwise --help`` lists
them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pixelwise.cli import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixelwise",
        description="Pixel-wise prediction with scarce labels: FCN and zoom-out training, colorization pretraining, "
        "multi-proxy pretraining and distillation, Mix-and-Match tuning, label-structure regularisation, weak "
        "supervision from tags, depth, evaluation, "
        "prediction, export.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    from pixelwise import __version__

    parser.add_argument("--version", action="version", version=f"pixelwise {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in commands.REGISTER:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError as err:
        # A training run stopped by Ctrl-C / SIGTERM (its checkpoint kept) exits as the signal would.
        if getattr(err, "signum", None) is not None:
            print(f"pixelwise {args.command}: {err}", file=sys.stderr)
            return 128 + int(err.signum)  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
        print(f"pixelwise {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as err:
        # Known failure modes (bad data, bad checkpoint, refused resume) end with one clear line, not a traceback.
        print(f"pixelwise {args.command}: error: {err}", file=sys.stderr)
        return 2
    finally:
        if "torch.distributed" in sys.modules:  # imported lazily, so `--help` stays fast without torch
            from pixelwise.engine.distributed import close_distributed

            close_distributed()  # a no-op unless torchrun started a process group


if __name__ == "__main__":
    sys.exit(main())
