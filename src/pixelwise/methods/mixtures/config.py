"""Options of ``pixelwise parts fit | eval | show`` (Larsson thesis §1.2); every flag's help lives here."""

from __future__ import annotations

from dataclasses import dataclass

from pixelwise.engine.config import option

# The choices below are defined here, torch-free, for `pixelwise parts --help`; layers.py and net.py check them.
TRANSFORMS = ("recompute", "analytic")  # how a parts layer's pose transforms are computed
MODELS = ("plain", "plain-svm", "oriented")
CLASS_SCORES = ("max", "logsumexp")
VARIANTS = (
    "basic",
    "rot",
    "bg-rand",
    "bg-img",
    "bg-img-rot",
)  # data.digits.VARIANTS (a test keeps them equal)

DATA_HELP = (
    "images: 'digits' (scikit-learn's 1,797 bundled handwritten digits at 28x28), 'fonts[:N]' (N digits rendered "
    "from matplotlib's fonts with random affine / stroke / elastic deformations) or 'folder:PATH' (PATH/<class>/"
    "*.png, one size)"
)


@dataclass
class PartsDataOptions:
    """Which images, which variation, which held-out part."""

    data: str = option("digits", DATA_HELP)
    variant: str = option(
        "basic",
        "MNIST-style variation: basic, rot (uniform rotation), bg-rand (max with uniform noise), bg-img (max with "
        "grey CamVid crops, needs --backgrounds), bg-img-rot",
        choices=VARIANTS,
    )
    backgrounds: str | None = option(
        None, "bg-img variants: CamVid folder whose train/*.png give the backgrounds"
    )
    test_fraction: float = option(
        0.3, "fraction of every class held out for scoring", exclusive_minimum=0, exclusive_maximum=1
    )
    split_seed: int = option(0, "seed of the held-out split and the variation", minimum=0)
    threads: int | None = option(
        None, "CPU threads for torch (default: all of this process' share)", minimum=1
    )


@dataclass
class PartsFitConfig(PartsDataOptions):
    """``pixelwise parts fit``: the layers without labels, then the top layer with --labels-per-class labels."""

    output: str = option("runs/parts", "folder: parts-net.safetensors (+ .json), parts.png, metrics.json")
    model: str = option(
        "plain",
        "plain (Edges -> Mixture -> per-class Mixture), plain-svm (linear SVM top) or oriented (RotMix layers with "
        "latent rotations), §1.2.9",
        choices=MODELS,
    )
    labels_per_class: int = option(
        0, "labelled training images per class for the top layer (0: all)", minimum=0
    )
    parts: int | None = option(None, "M, parts of layer 2 (default: plain 256, oriented 16)", minimum=1)
    rotations: int | None = option(
        None, "R, latent rotations of layer 2 (default: plain 1, oriented 16)", minimum=1
    )
    polarities: int = option(
        1, "T, latent polarities of layer 2 (2: rotation x polarity, Eq. A.2)", choices=(1, 2)
    )
    transform: str = option(
        "recompute",
        "how layer 2 transforms a patch: recompute (rotate the image, recompute the edges; any R) or analytic "
        "(rotate the edge map and permute its 8 orientations; R must divide 8), §1.2.5",
        choices=TRANSFORMS,
    )
    class_rotations: int | None = option(
        None, "R_c, latent rotations of each class model (default: plain 1, oriented 16)", minimum=1
    )
    class_components: int = option(1, "M_c, components of each class model (§1.2.6: 1)", minimum=1)
    patch_size: int = option(6, "S, parts are S x S patches of the edge maps", minimum=2)
    pool: int = option(4, "OR-pooling over pool x pool disjoint regions after layer 2", minimum=1)
    edge_k: int = option(6, "an edge must beat k of its 6 neighbouring differences", minimum=0, maximum=6)
    edge_radius: int = option(1, "spread edges by a (2r+1) x (2r+1) box dilation", minimum=0)
    minimum_contrast: float = option(0.0, "smallest intensity step that can make an edge", minimum=0)
    patches_per_image: int | None = option(
        None, "random patches per image for layer 2's EM (default: plain 40, oriented 20)", minimum=1
    )
    min_edges: int = option(
        10, "a training patch needs this many edges (blank patches are rejected)", minimum=0
    )
    parts_eps: float = option(
        0.005,
        "layer 2: clip the part probabilities to [eps, 1 - eps]",
        exclusive_minimum=0,
        exclusive_maximum=0.5,
    )
    class_eps: float = option(
        0.05,
        "class models: clip the probabilities to [eps, 1 - eps]",
        exclusive_minimum=0,
        exclusive_maximum=0.5,
    )
    class_score: str = option(
        "max",
        "class score: max over a class's parts (coding, A.4) or logsumexp (the marginal)",
        choices=CLASS_SCORES,
    )
    standardize: bool = option(
        False, "standardise each class's log-likelihood on the training images (§1.2.7)"
    )
    iterations: int = option(10, "EM iterations per mixture", minimum=1)
    svm_c: float | None = option(
        None,
        "plain-svm: the SVM's C (default: 3-fold cross-validation on the labelled images)",
        exclusive_minimum=0,
    )
    seed: int = option(0, "seed of the patch sampling and EM initialisation", minimum=0)


@dataclass
class PartsEvalConfig:
    """``pixelwise parts eval``: error rate on held-out images; data options default to the fitted run's."""

    data: str | None = option(None, DATA_HELP + " (default: the fitted run's)")
    variant: str | None = option(None, "variation (default: the fitted run's)", choices=VARIANTS)
    backgrounds: str | None = option(None, "bg-img variants: CamVid folder (default: the fitted run's)")
    test_fraction: float | None = option(
        None, "held-out fraction (default: the fitted run's)", exclusive_minimum=0, exclusive_maximum=1
    )
    split_seed: int | None = option(None, "seed of the held-out split (default: the fitted run's)", minimum=0)
    all_images: bool = option(False, "score every image of --data, not only the held-out part")
    output: str | None = option(None, "write eval.json here (default: next to the checkpoint)")
    threads: int | None = option(None, "CPU threads for torch", minimum=1)


@dataclass
class PartsShowConfig:
    """``pixelwise parts show``: the parts as a PNG grid."""

    output: str | None = option(None, "PNG file to write (default: parts.png next to the checkpoint)")
    scale: int = option(6, "pixels per part cell", minimum=1)

    OUTPUT_IS_FILE = True
