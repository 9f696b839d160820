"""Regularisation via the label model (Mostajabi et al. 2018, §3.3, Figs. 1 and 4): an auxiliary training branch.

Decoder variant (Fig. 1, the default): "a new 1x1 convolutional layer" predicts the label autoencoder's code from
the backbone layer "whose spatial resolution matches that of the expected decoder input", and the learned decoder
turns it into class scores. Training minimises

    L = CE(primary, y) + lambda * CE(decoder(g(h)), y)            (§3.3, §4.1; lambda = 0.5 for CE, §4.2)

or an MSE between the decoder's softmax and the one-hot labels (the paper's dagger runs). The decoder is frozen
("parameters internal to the decoder are never updated"); ``unfrozen`` and ``random`` (a randomly initialised,
trainable decoder: no label model at all) are the ablations of Table 2.

Encoder variant (Fig. 4): the frozen encoder runs on the ground truth and the network regresses the encoder's
conv1 + conv3 activations (§4: "the concatenation of the encoder's activations in its conv1 and conv3 layers") from
its own hypercolumn with a 1x1 conv and an MSE loss.

The branch exists only during training. :class:`LabelRegularizedModel` wraps the plain
:class:`~pixelwise.models.SegmentationModel`; ``inference_model()`` returns that model untouched, which is what
validation scores and what ``best.safetensors`` stores (same weights, parameter count and speed as a model trained
without the regulariser); ``last.safetensors`` keeps the branch so ``--resume`` is exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.methods.label_ae.model import (
    LabelAEConfig,
    LabelAutoencoder,
    LabelDecoder,
    LabelEncoder,
    load_label_autoencoder,
    one_hot_labels,
    pad_to_multiple,
)
from pixelwise.methods.segmentation import segmentation_loss
from pixelwise.models import FeatureTaps, ModelConfig, SegmentationModel
from pixelwise.models.backbones import Backbone
from pixelwise.models.heads.hypercolumn import dense_hypercolumns
from pixelwise.models.receptive_field import Grid
from pixelwise.models.resample import resample

DECODER_MODES = ("frozen", "unfrozen", "random")
AUX_LOSSES = ("ce", "mse")
BRANCH_MODES = ("decoder", "encoder")
ENCODER_TARGETS = ("conv1", "conv3")  # §4: the encoder activations the network regresses


def default_aux_layer(backbone: Backbone, code_stride: int) -> str:
    """The deepest backbone stage at the code's stride (§3.3: its "resolution matches ... the decoder input").

    Falls back to the deepest stage when no stage has that stride; the predicted code is then interpolated.
    """
    matching = [name for name in backbone.stage_names if backbone.strides[name] == code_stride]
    return matching[-1] if matching else backbone.stage_names[-1]


def masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` [N, H, W] over ``valid`` pixels; 0 (not NaN) when none is valid (an all-void crop)."""
    return (values * valid).sum() / valid.sum().clamp(min=1)


class DecoderBranch(nn.Module):
    """Fig. 1's grey arrow: 1x1 conv from backbone layer ``layer`` to the code, then the label decoder."""

    def __init__(
        self,
        layer: str,
        in_channels: int,
        layer_grid: Grid,
        decoder: LabelDecoder,
        ae: LabelAEConfig,
        mode: str = "frozen",
        loss: str = "ce",
    ) -> None:
        super().__init__()
        if mode not in DECODER_MODES or loss not in AUX_LOSSES:
            raise ValueError(f"decoder mode must be one of {DECODER_MODES} and loss one of {AUX_LOSSES}")
        self.layers = (layer,)
        self.ae = ae
        self.loss_kind = loss
        self.layer_grid = layer_grid
        # Where the decoder expects code cells: the label encoder's code grid (2x2 pooling: block centres).
        self.code_grid = LabelEncoder(ae).grids["code"]
        self.project = nn.Conv2d(
            in_channels, self.ae.code_channels, 1
        )  # §3.3 "a new 1x1 convolutional layer"
        self.decoder = decoder.requires_grad_(mode != "frozen")  # §3.3: frozen decoder by default

    def predict(self, features: dict[str, torch.Tensor], padded: tuple[int, int]) -> torch.Tensor:
        """Class scores [N, K, >=H, >=W] of the auxiliary path for an input padded to ``padded``."""
        code = self.project(features[self.layers[0]])
        stride = self.ae.code_stride
        size = (math.ceil(padded[0] / stride), math.ceil(padded[1] / stride))
        # The layer's cells onto the code's (a ResNet cell i is at s*i, the code's at s*i + (s-1)/2); a layer
        # of another stride is resampled the same way (spec: engineering choice).
        return self.decoder(resample(code, self.layer_grid, self.code_grid, size))

    def forward(
        self, features: dict[str, torch.Tensor], labels: torch.Tensor, padded: tuple[int, int]
    ) -> torch.Tensor:
        height, width = labels.shape[-2:]
        logits = self.predict(features, padded)[..., :height, :width].float()
        ignore = self.ae.ignore_index
        if self.loss_kind == "ce":
            return segmentation_loss(logits, labels, None, ignore, 1.0)
        # MSE variant (§4.1 dagger): squared error between the decoder's softmax and the one-hot labels
        error = (logits.softmax(dim=1) - one_hot_labels(labels, self.ae.num_classes, ignore)).square().sum(1)
        return masked_mean(error, labels != ignore)


class EncoderBranch(nn.Module):
    """Fig. 4: regress the frozen encoder's conv1 + conv3 activations of the ground truth from the hypercolumn.

    The regression runs at the stride of the coarsest target (conv3: 4); finer targets (conv1) are average-pooled
    to it, which keeps the dense MSE affordable (an engineering choice; the paper does not say at which
    resolution). Pixel cells without any labelled pixel carry no loss.
    """

    def __init__(
        self,
        layers: Sequence[str],
        channels: dict[str, int],
        grids: dict[str, Grid],
        encoder: LabelEncoder,
        ae: LabelAEConfig,
    ) -> None:
        super().__init__()
        self.ae = ae
        self.layers = tuple(layers)
        self.grids = {name: grids[name] for name in self.layers}
        # FeatureTaps holds the encoder (registered once, under targets.backbone); frozen (§3.3 "of course").
        self.targets = FeatureTaps(encoder.requires_grad_(False), ENCODER_TARGETS)
        self.scale = max(encoder.strides[n] for n in ENCODER_TARGETS)
        target_channels = sum(encoder.channels[n] for n in ENCODER_TARGETS)
        self.project = nn.Conv2d(sum(channels[n] for n in self.layers), target_channels, 1)

    @property
    def encoder(self) -> LabelEncoder:
        return self.targets.backbone  # type: ignore[return-value]

    @torch.no_grad()
    def target(self, labels: torch.Tensor) -> torch.Tensor:
        """conv1 + conv3 activations of the (void-padded) ground truth at stride ``scale``."""
        one_hot = one_hot_labels(labels, self.ae.num_classes, self.ae.ignore_index)
        one_hot = pad_to_multiple(one_hot, self.scale)
        activations = self.targets(one_hot)
        parts = []
        for name in ENCODER_TARGETS:
            factor = self.scale // self.encoder.strides[name]
            value = activations[name]
            parts.append(F.avg_pool2d(value, factor) if factor > 1 else value)
        return torch.cat(parts, dim=1)

    def forward(
        self,
        features: dict[str, torch.Tensor],
        labels: torch.Tensor,
        padded: tuple[int, int],
    ) -> torch.Tensor:
        ignore = self.ae.ignore_index
        labels = pad_to_multiple(labels.as_subclass(torch.Tensor), self.scale, ignore)
        target = self.target(labels)
        # The targets sit on the block grid of ``scale`` (2x2-pooled encoder, conv1 average-pooled): so does this.
        column = dense_hypercolumns({n: features[n] for n in self.layers}, self.grids, padded, self.scale)
        prediction = self.project(column).float()
        height, width = (min(a, b) for a, b in zip(prediction.shape[-2:], target.shape[-2:]))
        valid = F.max_pool2d((labels != ignore).float()[:, None], self.scale)[:, 0] > 0
        error = (prediction[..., :height, :width] - target[..., :height, :width]).square().mean(1)
        return masked_mean(error, valid[..., :height, :width])


class LabelRegularizedModel(nn.Module):
    """A segmentation model plus the training-only label-structure branch; ``forward(images, labels=y)``.

    Returns the plain model's outputs (``{"seg": logits}``) and, when labels are given, ``"aux_loss"``. The
    backbone runs once: the head's taps and the branch's layers are read together through one ``FeatureTaps``.
    """

    def __init__(self, model: SegmentationModel, branch: DecoderBranch | EncoderBranch, ae: LabelAEConfig):
        super().__init__()
        self.model = model
        self.branch = branch
        self.ae = ae
        names = sorted(set(model.taps.names) | set(branch.layers))
        # Kept out of the module tree on purpose: it wraps model.backbone, and registering it would list every
        # backbone weight twice in the state dict (and break safetensors' no-shared-tensors rule).
        self.__dict__["taps"] = FeatureTaps(model.backbone, names)

    @property
    def config(self) -> ModelConfig:
        """The plain model's config: checkpoints (best and last) describe the inference model."""
        return self.model.config

    @property
    def backbone(self) -> nn.Module:
        return self.model.backbone

    def inference_model(self) -> SegmentationModel:
        """The model without the branch: what is validated and saved as ``best.safetensors`` (§3.3: discarded)."""
        return self.model

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        # SegmentationModel.forward, with the branch's layers tapped in the same backbone pass
        height, width = images.shape[-2:]
        x = self.model.inputs(images)
        features = self.taps(x)
        head_taps = {name: features[name] for name in self.model.taps.names}
        outputs = {
            k: v[..., :height, :width] for k, v in self.model.head(head_taps, size=x.shape[-2:]).items()
        }
        if labels is not None:
            outputs["aux_loss"] = self.branch(features, labels, (x.shape[-2], x.shape[-1]))
        return outputs

    @torch.no_grad()
    def auxiliary_prediction(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores of the decoder path (Fig. 6's "auxiliary output"), at the input size."""
        if not isinstance(self.branch, DecoderBranch):
            raise ValueError("only the decoder branch predicts labels; the encoder branch regresses features")
        x = self.model.inputs(images)
        logits = self.branch.predict(self.taps(x), (x.shape[-2], x.shape[-1]))
        return logits[..., : images.shape[-2], : images.shape[-1]]


def attach_label_regularizer(
    model: SegmentationModel,
    checkpoint: str | None,
    num_classes: int,
    ignore_index: int,
    mode: str = "decoder",
    decoder: str = "frozen",
    loss: str = "ce",
    layer: str = "",
    seed: int = 0,
) -> LabelRegularizedModel:
    """Wrap ``model`` with the auxiliary branch built from the label autoencoder at ``checkpoint``.

    ``layer``: the backbone stage the branch reads (decoder mode; default :func:`default_aux_layer`) or a
    comma-separated list of stages forming the hypercolumn (encoder mode; default: the head's taps).
    The branch is built under a forked, seeded RNG, so the model's init and the run's random stream (data order,
    augmentation) are exactly those of the same run without the regulariser: arms differ by the branch only.
    """
    if mode not in BRANCH_MODES:
        raise ValueError(f"--label-ae-mode must be one of {BRANCH_MODES}, got {mode!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 7919)
        if checkpoint:
            autoencoder, _ = load_label_autoencoder(checkpoint)
        elif (
            mode == "decoder" and decoder == "random"
        ):  # Table 2's control needs no label model, only its shape
            autoencoder = LabelAutoencoder(LabelAEConfig(num_classes=num_classes, ignore_index=ignore_index))
        else:
            raise ValueError(
                "--regularizer label-ae needs --label-ae CKPT (from `pixelwise pretrain --method label-ae`)"
            )
        ae = autoencoder.config
        if ae.num_classes != num_classes:
            raise ValueError(
                f"{checkpoint}: the label autoencoder has {ae.num_classes} classes, the data {num_classes}"
            )
        ae = LabelAEConfig.from_dict({**ae.to_dict(), "ignore_index": ignore_index})
        if mode == "decoder" and decoder == "random":
            autoencoder = LabelAutoencoder(ae)  # same architecture, fresh random weights (Table 2's control)
        backbone = model.backbone
        names = [n.strip() for n in layer.split(",") if n.strip()]
        unknown = [n for n in names if n not in backbone.stage_names]
        if unknown:
            raise ValueError(
                f"--aux-layer {', '.join(unknown)}: not a stage of {model.config.backbone}; "
                f"use one of {', '.join(backbone.stage_names)}"
            )
        if mode == "decoder":
            if len(names) > 1:
                raise ValueError("--aux-layer: the decoder branch reads one layer")
            name = names[0] if names else default_aux_layer(backbone, ae.code_stride)
            branch: DecoderBranch | EncoderBranch = DecoderBranch(
                name, backbone.channels[name], backbone.grids[name], autoencoder.decoder, ae, decoder, loss
            )
        else:
            names = names or list(model.taps.names)
            branch = EncoderBranch(names, backbone.channels, backbone.grids, autoencoder.encoder, ae)
    return LabelRegularizedModel(model, branch, ae)
