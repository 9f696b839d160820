"""Options of ``pixelwise distill``: task-agnostic distillation of frozen teacher runs into one student
(Larsson thesis §4.3)."""

from __future__ import annotations

from dataclasses import dataclass

from pixelwise.engine.config import RunConfig, option

LOSSES = ("ab", "l2", "kl-classic")


@dataclass
class DistillConfig(RunConfig):
    """Distil the pre-ReLU top features of one or more teacher runs into a student backbone (§4.3)."""

    output: str = option(
        "runs/distill", "run folder: config.yaml, log.jsonl, last/best checkpoints (the student backbone)"
    )
    teachers: list[str] = option(
        [],
        "teacher run folders or checkpoints, any pixelwise run with a backbone (colorization, segmentation, depth, "
        "mixmatch, a distilled student); frozen, distilled at their deepest stage before its ReLU (§4.3.1)",
    )
    splits: list[str] = option(
        ["train"],
        "splits of --data whose images (never labels) are the distillation data; validation uses split 'val'",
    )
    in_channels: int = option(
        3, "student input channels: 3 for RGB, 1 for lightness (needed to warm-start from a colorization run)",
        choices=(1, 3),
    )  # fmt: skip
    loss: str = option(
        "ab",
        "ab: (1/C) D_AB^(alpha,beta)(exp(y^) || exp(z^)) on features pre-normalised by the teachers' s (Eq. 4.5-4.7);"
        " l2: 1/2 (y^ - z^)^2, i.e. D_AB at (0, 0); kl-classic: T^2 KL(softmax(y/T) || softmax(z/T)) over the "
        "channels (Eq. 4.1, no normalisation), only for one teacher or --ensemble mean of the student's width",
        choices=LOSSES,
    )
    alpha: float = option(
        0.25,
        "AB divergence alpha (Eq. 4.6; thesis default 1/4, i.e. the new loss L_new at T = 4, Eq. 4.7); "
        "alpha + beta is the inverse temperature; |alpha| <= 4 (exp(alpha y^) of normalised features fits float32)",
        minimum=-4,
        maximum=4,
    )
    beta: float = option(
        0.0,
        "AB divergence beta (Eq. 4.6): 0 gives the generalised KL of Eq. 4.2, beta = alpha a symmetric divergence, "
        "beta = -alpha a shift-invariant one; |beta| <= 4",
        minimum=-4,
        maximum=4,
    )
    temperature: float = option(
        4.0, "--loss kl-classic: the temperature T of Eq. 4.1 (unused by ab and l2)", exclusive_minimum=0
    )
    shared_scale: bool = option(
        False,
        "normalise every feature by one shared s = sqrt(E[y^2]) instead of its own s_c (Eq. 4.4); per-channel s "
        "suits teachers of different natural scales",
    )
    scale_images: int = option(
        0,
        "images of the statistics pass that measures s before training (no augmentation; a fixed seeded subset); "
        "0: all the distillation images",
        minimum=0,
    )
    ensemble: str = option(
        "concat",
        "how M teachers make one signal: concat (their M F features side by side, §4.3.4) or mean (Eq. 4.1's "
        "average; only meaningful when their channels correspond, e.g. teachers fine-tuned from one network)",
        choices=("concat", "mean"),
    )
    adapter: str = option(
        "subset",
        "when the teachers give more features than the student has (M F vs F, §4.3.4): subset (a fixed seeded "
        "random F of them, stored in the checkpoint; the thesis's better choice) or auxiliary (student -> ReLU -> "
        "1x1 conv to M F, a training-only layer left out of best.safetensors and of --init-from)",
        choices=("subset", "auxiliary"),
    )
    subset_seed: int | None = option(None, "seed of the feature subset (default: --seed)", minimum=0)
    warm_start: bool = option(
        False,
        "initialise the student's backbone from the first teacher (§4.3.5; needs the same --backbone and "
        "--in-channels)",
    )
    scale: list[float] = option(
        [1.0, 1.5],
        "random scale jitter range before cropping (>= 1 so crops never need padding); the teachers and the "
        "student see the same augmented images (§4.3.5)",
        length=2,
        exclusive_minimum=0,
    )
    color_jitter: float = option(
        0.2,
        "brightness/contrast/saturation jitter of the distillation images (0 disables)",
        minimum=0,
    )
