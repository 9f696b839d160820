"""Label-structure regularisation (Mostajabi, Maire & Shakhnarovich 2018; thesis Ch. 5.1-5.4).

Two phases: model the training label maps with an autoencoder (no images), then train the segmentation network
with an auxiliary branch that must predict the labels through the learned (frozen) decoder; the branch is
discarded after training.

- :mod:`.model`: the label autoencoder of §3.1 (32 / 128 / 256 bottleneck widths) and its checkpoint loader;
- :mod:`.task`: phase 1 as a training task (``pixelwise pretrain --method label-ae``), scored by reconstruction IoU;
- :mod:`.regularizer`: phase 2's decoder branch (Fig. 1) and encoder-regression branch (Fig. 4), training-only;
- :mod:`.neighbours`: nearest-neighbour retrieval of label maps in code space (§4.3).
"""

from pixelwise.methods.label_ae.model import (
    LabelAEConfig,
    LabelAutoencoder,
    LabelDecoder,
    LabelEncoder,
    layer_widths,
    load_label_autoencoder,
    one_hot_labels,
)
from pixelwise.methods.label_ae.regularizer import (
    DecoderBranch,
    EncoderBranch,
    LabelRegularizedModel,
    attach_label_regularizer,
    default_aux_layer,
)
from pixelwise.methods.label_ae.task import LabelAETask, reconstruction_scores

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
