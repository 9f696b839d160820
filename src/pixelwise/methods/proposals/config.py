"""Options of ``pixelwise proposals train`` (object segment proposals, Long thesis Ch. 4)."""

from __future__ import annotations

from dataclasses import dataclass

from pixelwise.engine.config import RunConfig, option

# CPU-scale pyramid of the spec (Table 4.1 adapted to ResNet-18 at 180x240): windows of 15 / 19 cells (odd: R = -R),
# kernels 5 / 9.
DEFAULT_PATHWAYS = ("conv1", "layer1", "layer2", "layer3")
DEFAULT_WINDOWS = (15, 15, 19, 19)
DEFAULT_KERNELS = (5, 5, 9, 9)


@dataclass
class ProposalTrainConfig(RunConfig):
    """Pairwise region network training (``pixelwise proposals train``)."""

    data: str = option(
        "synthetic-instances:1000",
        "instance data: synthetic-instances:N (rendered scenes with occlusion-correct instance maps), "
        "camvid-instances:PATH (connected components of car / pedestrian / bicyclist / sign labels: touching "
        "objects merge) or instances:FOLDER (images/, instances/ PNGs of ids, classes.json)",
    )
    val_data: str | None = option(None, "validation instance data (default: the 'val' split of --data)")
    output: str = option(
        "runs/proposals", "run folder: config.yaml, log.jsonl, last/best checkpoints, overlays"
    )
    epochs: int = option(
        10, "training epochs (draws of len(data) images with --sampling replacement)", minimum=1
    )
    batch_size: int = option(1, "images per optimiser step (§4.4.4: one whole image)", minimum=1)
    base_size: list[int] | None = option(
        [180, 240], "resize images once at load to H W (natural resolution: never cropped or rescaled after)",
        length=2, minimum=1,
    )  # fmt: skip
    sampling: str = option(
        "replacement", "training image order: replacement (§4.4.4 \"true\" stochastic selection) or shuffle",
        choices=("shuffle", "replacement"),
    )  # fmt: skip
    lr: float = option(1e-3, "base learning rate (AdamW; --optimizer sgd --momentum 0.99 is §4.4.4's)",
                       exclusive_minimum=0)  # fmt: skip
    pathways: list[str] = option(
        list(DEFAULT_PATHWAYS),
        "backbone taps with a region pathway each (the natural feature pyramid, §4.3.4)",
    )
    windows: list[int] = option(
        list(DEFAULT_WINDOWS), "window of each pathway in cells (odd: R = -R; Table 4.1's 14 / 18 become 15 / 19)",
        minimum=1,
    )  # fmt: skip
    kernels: list[int] = option(list(DEFAULT_KERNELS), "k x k region conv of each pathway (odd)", minimum=1)
    reduce: int = option(
        64, "1x1 reduction of each pathway's features before the k x k conv (0: none)", minimum=0
    )
    transpose: bool = option(True, "the transpose p^T(x, D) = p(x + D, -D) (§4.3.2; Fig. 4.4 ablation)")
    shared_matrix: bool = option(
        True, "the shared |R| x |R| matrix on every region (§4.3.3; Fig. 4.4 ablation)"
    )
    score_weight: float = option(1.0, "weight of the scoring pathway's objectness loss", minimum=0)
    init_from: str | None = option(
        None, "start the backbone from any pixelwise run (colorization, FCN, ...); the pathways are new"
    )
    nms: float | None = option(
        0.7, "validation NMS IoU threshold (none: off)", exclusive_minimum=0, maximum=1
    )
    top_k: int = option(1000, "proposals kept per validation image after NMS", minimum=1)
    lowest_stride: int | None = option(
        None, "validation density: stride of the lowest pathway's centres (Table 4.2; default: its natural one)",
        minimum=1,
    )  # fmt: skip
    val_images: int | None = option(None, "validate on the first N validation images only", minimum=1)


@dataclass
class ProposalReadout:
    """How a trained region network's proposals are read out (``proposals eval`` / ``predict``)."""

    nms: float | None = option(0.7, "NMS IoU threshold on the coarse masks (none: off)", exclusive_minimum=0,
                               maximum=1)  # fmt: skip
    top_k: int = option(1000, "proposals kept per image after NMS", minimum=1)
    lowest_stride: int | None = option(
        None,
        "density: stride of the lowest pathway's centres (Table 4.2; default: its natural one)",
        minimum=1,
    )
    device: str = option("auto", "'auto' (cuda if available), 'cpu', 'cuda', ...")


@dataclass
class ProposalEvalConfig(ProposalReadout):
    """``pixelwise proposals eval RUN``: recall, ABO, AR, AR@k and recall curves on instance data."""

    data: str = option("synthetic-instances:200", "instance data spec (see `proposals train --help`)")
    split: str = option("val", "split of --data to score", choices=("train", "val"))
    base_size: list[int] | None = option([180, 240], "resize images to H W (as in training)", length=2,
                                         minimum=1)  # fmt: skip
    images: int | None = option(None, "score the first N images only", minimum=1)
    output: str = option("runs/proposals_eval", "folder for eval.json and recall.png")


@dataclass
class ProposalPredictConfig(ProposalReadout):
    """``pixelwise proposals predict RUN IMAGE...``: ranked proposals drawn on each image."""

    output: str = option("runs/proposals_predict", "folder for <image>_proposals.png and proposals.json")
    show: int = option(10, "proposals drawn per overlay (best first)", minimum=1)
    size: list[int] | None = option(None, "resize images to H W first (e.g. the training size)", length=2,
                                    minimum=1)  # fmt: skip


@dataclass
class ProposalExportConfig:
    """``pixelwise proposals export RUN``: the region network as an ONNX graph."""

    output: str = option("proposals.onnx", "ONNX file to write")
    size: list[int] = option([180, 240], "input size H W the graph is built for", length=2, minimum=1)
