"""``pixelwise depth``: monocular depth from RGB (Mostajabi thesis §5.5) with any segmentation architecture.

The network is a pixelwise segmentation model with one output channel read as log depth, so every architecture
(FCN-32s/16s/8s, zoom-out), backbone, initialisation (e.g. ``--init-from`` a colorization run) and the whole
training loop carry over; depth = exp(output) is positive by construction and starts at 1 m (FCN score layers are
zero-initialised). The loss is L1 in metres over the pixels with known depth (§5.5.2: "L1 depth"); validation
reports RMSE, RMSE(log), AbsRel, SqRel and the delta accuracies (:class:`~pixelwise.metrics.DepthErrors`), and
keeps the checkpoint with the best delta < 1.25. Data must carry a ``depth`` target (the synthetic scenes do;
CamVid has none).

Depth from segmentation (§5.5.1, Table 5.5): ``--input seg`` feeds the ground-truth labels as one binary mask
channel per class (void all-zero), ``seg+rgb`` stacks them after the RGB channels, and ``pred-seg`` /
``pred-seg+rgb`` feed a segmentation checkpoint's softmax probabilities instead (``--seg-from``: the deployable
case). The inputs are built inside the task from ``targets["seg"]``, so the data pipeline is unchanged and the
crops and flips that move the depth move the label channels too. With ground-truth seg the labels are the input
at test time as well: Table 5.5 measures how much depth the labels determine, not a deployable model.
"""

from pixelwise.lazy import lazy_exports

# Imported on first use: `pixelwise depth --help` reads config.py alone (no torch).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DEPTH_INPUTS": "config",
        "DepthConfig": "config",
        "MetricDepthConfig": "config",
        "DepthModel": "task",
        "DepthModelConfig": "task",
        "DepthTask": "task",
        "input_channels": "task",
        "one_hot_labels": "task",
    },
)

__all__ = [
    "DEPTH_INPUTS",
    "DepthConfig",
    "DepthModel",
    "DepthModelConfig",
    "DepthTask",
    "MetricDepthConfig",
    "input_channels",
    "one_hot_labels",
]
