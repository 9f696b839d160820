"""Options of ``pixelwise correspond`` (Long thesis Ch. 2): one dataclass per tool, every field a flag with help.

``visualise`` (§2.1 nonparametric reconstruction), ``align`` (§2.2 conv flow), ``transfer`` (§2.2 keypoint
transfer) and ``keypoints`` (§2.4 keypoint prediction) all read one frozen backbone: a run's (``--init-from``)
or a random one (``--backbone``, the control).
"""

from __future__ import annotations

from dataclasses import dataclass

from pixelwise.engine.config import option

ORDERS = ("deformation", "total", "data")  # transfer.ORDERS: what the neighbours are sorted by
THESIS_CONV3_RF = (
    99  # px: AlexNet conv3's rf (Table 2.1), also ResNet-18 layer2's (§2.1's uniform-rf control)
)


@dataclass
class FrozenBackboneOptions:
    """The frozen backbone every ``correspond`` tool reads (Ch. 2 never fine-tunes)."""

    init_from: str | None = option(
        None,
        "run folder or checkpoint whose frozen backbone gives the features (default: random, the control)",
    )
    backbone: str = option("resnet18", "backbone when --init-from is not given")


@dataclass
class AlignConfig(FrozenBackboneOptions):
    """``pixelwise correspond align SOURCE TARGET``: conv flow between two images (§2.2)."""

    stage: str = option(
        "layer2", "backbone stage whose cells are matched (Long: conv4 of AlexNet ~ mid stages)"
    )
    beta: float = option(0.1, "weight of the quadratic smoothness on the cell flow (Eq. 2.1)", minimum=0)
    radius: int | None = option(None, "search window in cells (default: the whole grid)", minimum=0)
    iterations: int = option(30, "belief-propagation iterations", minimum=1)
    size: list[int] | None = option(None, "resize both images to H W first", length=2, minimum=1)
    output: str = option(
        "align", "folder for panel.png (source | target | target warped | |flow|) and flow.json"
    )


@dataclass
class VisualiseConfig(FrozenBackboneOptions):
    """``pixelwise correspond visualise QUERY... --database D...``: NN patch reconstruction (§2.1, Fig. 2.1)."""

    stage: str = option(
        "layer2",
        "backbone stage whose cells are matched; each cell owns the stride x stride patch at its rf centre",
    )
    k: int = option(
        1,
        "nearest database cells (cosine) whose centre patches are averaged per query cell (thesis: 1, 5)",
        minimum=1,
    )
    database: list[str] = option(
        [],
        "images the neighbours come from: folders (their .png/.jpg/... files) and/or image files; a query "
        "image found here is left out",
    )
    uniform_rf: int = option(
        THESIS_CONV3_RF,
        "rf (px) of the uniform-rf control: the same neighbours' patches taken at a random offset inside it "
        "(thesis: conv3-sized, 99 px = ResNet-18 layer2's rf)",
        minimum=1,
    )
    seed: int = option(0, "seed of the uniform-rf control's random offsets", minimum=0)
    size: list[int] | None = option(
        None, "resize queries and database images to H W first (default: as stored)", length=2, minimum=1
    )
    output: str = option(
        "visualise",
        "folder for panel_<name>.png (query | NN reconstruction | uniform-rf control) and reconstruction.json",
    )


@dataclass
class BoxOptions(FrozenBackboneOptions):
    """What keypoint transfer and prediction share: instances are their boxes warped to a square crop."""

    descriptor_stage: str | None = option(
        None,
        "stage whose mean L2-normalised cell is the global descriptor for retrieval by cosine (default: the "
        "backbone's deepest; the thesis: fc7 / pool5)",
    )
    alphas: list[float] = option(
        [0.1, 0.05, 0.025],
        "PCK thresholds as fractions of max(h, w) of the ground-truth box (thesis Tables 2.2, 2.4)",
        exclusive_minimum=0,
        maximum=1,
    )
    panels: int = option(
        12, "at most this many query objects get a panel_<image>_<object>.png (0: none)", minimum=0
    )


@dataclass
class TransferConfig(BoxOptions):
    """``pixelwise correspond transfer TRAIN.json QUERIES.json``: keypoint transfer by conv flow (§2.2)."""

    stage: str = option("layer2", "stage whose cells are aligned by conv flow (thesis: conv4)")
    box_size: int = option(
        96, "side (px) of the square crop each box (plus --margin) is warped to", minimum=8
    )
    margin: float = option(0.1, "box margin, as a fraction of its height / width on every side", minimum=0)
    neighbours: int = option(
        25, "training objects of the query's category retrieved by descriptor cosine and aligned", minimum=1
    )
    top: int = option(5, "neighbours (in energy order) whose transferred keypoints are medianed", minimum=1)
    order: str = option(
        "deformation",
        "neighbour order: 'deformation' (smoothness energy, the thesis' best), 'total' or 'data' energy",
        choices=ORDERS,
    )
    beta: float = option(0.1, "weight of the quadratic smoothness on the cell flow (Eq. 2.1)", minimum=0)
    radius: int | None = option(None, "search window in cells (default: the whole grid)", minimum=0)
    iterations: int = option(30, "belief-propagation iterations", minimum=1)
    output: str = option(
        "transfer",
        "folder for predictions.json (keypoint format), transfer.json (PCK, conv flow vs NN transfer) and panels",
    )


@dataclass
class KeypointsConfig(BoxOptions):
    """``pixelwise correspond keypoints TRAIN.json QUERIES.json``: keypoint prediction (§2.4, Table 2.4)."""

    stage: str = option("layer3", "stage whose cells, in blocks, are the detector's features (thesis: conv5)")
    block: int = option(
        3, "cells per side of the concatenated block around each cell (odd; thesis: 3)", minimum=1
    )
    box_size: int = option(
        128, "side S (px) of the square crop each box is rescaled to (thesis: 500)", minimum=8
    )
    margin: float = option(0.0, "box margin, as a fraction of its height / width on every side", minimum=0)
    c: float = option(1.0, "the SVM's C (liblinear units; depends on the feature scale)", exclusive_minimum=0)
    positives: int = option(10, "cells nearest each training keypoint taken as positives", minimum=1)
    negative_distance: float | None = option(
        None,
        "negatives: cells whose centre is farther than this (px) from the keypoint (default: 2 strides)",
        minimum=0,
    )
    rounds: int = option(3, "rounds of hard-negative mining", minimum=1)
    eta: float | None = option(
        None,
        "weight of the prior in f = s^(1-eta) p^eta (default: chosen by cross-validation on TRAIN; thesis 0.1)",
        minimum=0,
        maximum=1,
    )
    folds: int = option(5, "cross-validation folds over training objects when --eta is not given", minimum=2)
    sigma: float | None = option(
        None,
        "std (px of the crop) of the prior's Gaussian (default: 0.044 S, the thesis' 22 px of 500)",
        exclusive_minimum=0,
    )
    alphas: list[float] = option(
        [0.1],
        "PCK thresholds as fractions of max(h, w) of the ground-truth box (thesis Table 2.4: 0.1)",
        exclusive_minimum=0,
        maximum=1,
    )
    output: str = option(
        "keypoints",
        "folder for predictions.json (keypoint format), keypoints.json (PCK with and without the prior) and panels",
    )
