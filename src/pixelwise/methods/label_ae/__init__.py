"""Label-structure regularisation (Mostajabi, Maire & Shakhnarovich 2018; thesis Ch. 5.1-5.4).

Two phases: model the training label maps with an autoencoder (no images), then train the segmentation network
with an auxiliary branch that must predict the labels through the learned (frozen) decoder; the branch is
discarded after training.

- :mod:`.model`: the label autoencoder of §3.1 (32 / 128 / 256 bottleneck widths) and its checkpoint loader;
- :mod:`.task`: phase 1 as a training task (``pixelwise pretrain --method label-ae``), scored by reconstruction IoU;
- :mod:`.regularizer`: phase 2's decoder branch (Fig. 1) and encoder-regression branch (Fig. 4), training-only;
- :mod:`.neighbours`: nearest-neighbour retrieval of label maps in code space (§4.3).
"""

from pixelwise.lazy import lazy_exports

# Imported on first use: `pixelwise CMD --help` reads the options module alone (no torch).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LabelAEConfig": "model",
        "LabelAutoencoder": "model",
        "LabelDecoder": "model",
        "LabelEncoder": "model",
        "layer_widths": "model",
        "load_label_autoencoder": "model",
        "one_hot_labels": "model",
        "DecoderBranch": "regularizer",
        "EncoderBranch": "regularizer",
        "LabelRegularizedModel": "regularizer",
        "attach_label_regularizer": "regularizer",
        "default_aux_layer": "regularizer",
        "LabelAETask": "task",
        "reconstruction_scores": "task",
    },
)

__all__ = [
    "DecoderBranch",
    "EncoderBranch",
    "LabelAEConfig",
    "LabelAETask",
    "LabelAutoencoder",
    "LabelDecoder",
    "LabelEncoder",
    "LabelRegularizedModel",
    "attach_label_regularizer",
    "default_aux_layer",
    "layer_widths",
    "load_label_autoencoder",
    "one_hot_labels",
    "reconstruction_scores",
]
