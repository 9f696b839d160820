"""``pixelwise`` console script: one subcommand per job (``pixelwise --help`` lists them with a line each)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

# Every subcommand's one-line summary, in the order `pixelwise --help` lists them. Only the command being run is
# built in full (its module, its options and torch); the others are just these lines, so `pixelwise --help`
# answers without importing torch. tests/test_cli.py checks they match the full parsers' summaries.
SUMMARIES = {
    "train": "train a segmentation model",
    "pretrain": "self-supervised pretraining on images without labels",
    "tune": "Mix-and-Match tuning of a pretrained backbone on the labelled target set",
    "eval": "score a checkpoint on a labelled split",
    "predict": "predict label maps for images",
    "colorize": "colorize images with a colorization checkpoint",
    "pipeline": "pretrain -> tune -> train -> evaluate -> report, resumable",
    "export": "export a segmentation checkpoint to ONNX",
    "datasets": "describe and validate a dataset",
    "models": "list architectures and backbones; receptive fields",
    "label-ae": "inspect a label autoencoder (nearest neighbours in code space)",
    "zoomout": "train the superpixel zoom-out classifier",
    "weak": "learn segmentation from image-level tags",
    "depth": "train a monocular depth model",
    "distill": "distil teacher runs' top features into one student backbone",
    "correspond": "correspondence and keypoints from frozen convnet features",
    "proposals": "object segment proposals from a pairwise network",
    "joint": "train the two-part joint depth + segmentation model",
    "parts": "fit and evaluate stacked Bernoulli mixture models of parts",
}
EVERY = "*"  # build_parser(EVERY): every subcommand in full (tests, documentation tools)


def command_in(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (its first word that is not a flag), if it names one."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in SUMMARIES else None


def build_parser(command: str | None = EVERY) -> argparse.ArgumentParser:
    """The ``pixelwise`` parser with ``command`` built in full (all of them for ``EVERY``, none for None)."""
    parser = argparse.ArgumentParser(
        prog="pixelwise",
        description="Pixel-wise prediction with scarce labels: FCN and zoom-out training, colorization pretraining, "
        "multi-proxy pretraining and distillation, Mix-and-Match tuning, label-structure regularisation, weak "
        "supervision from tags, depth, correspondence, segment proposals, mixture models of parts, evaluation, "
        "prediction, export.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    from pixelwise import __version__

    parser.add_argument("--version", action="version", version=f"pixelwise {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in SUMMARIES.items():
        if command in (EVERY, name):
            from pixelwise.cli.commands import REGISTER

            REGISTER[name](sub)
        else:
            sub.add_parser(name, help=summary)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command_in(argv))
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
