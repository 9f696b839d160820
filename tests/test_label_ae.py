"""Label-structure regulariser (Mostajabi 2018): the label autoencoder, its training, the auxiliary branch, the
stripped inference checkpoint, resume, retrieval in code space and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pixelwise.cli.main import main
from pixelwise.engine.checkpoint import load_checkpoint
from pixelwise.engine.trainer import Trainer
from pixelwise.methods.kinds import build_model_from_checkpoint
from pixelwise.methods.label_ae import (
    LabelAEConfig,
    LabelAETask,
    LabelAutoencoder,
    LabelRegularizedModel,
    attach_label_regularizer,
    default_aux_layer,
    layer_widths,
    load_label_autoencoder,
    one_hot_labels,
)
from pixelwise.methods.pretrain import PretrainConfig
from pixelwise.methods.segmentation import (
    SegmentationTask,
    TrainConfig,
    init_from_checkpoint,
    segmentation_trainer,
)
from pixelwise.models import SegmentationModel, create_model
from pixelwise.models.backbones import create_backbone

TINY = "synthetic:16:48x64"
CLASSES = 6


def ae_config(output: Path, **overrides) -> PretrainConfig:
    values = dict(
        method="label-ae", data=TINY, output=str(output), epochs=8, batch_size=4, crop=[48, 64],
        scale=[1.0, 1.25], lr=3e-3, eval_every=0, num_examples=1, seed=0, label_ae_depth=4, threads=1,
    )  # fmt: skip
    values.update(overrides)
    return PretrainConfig(**values)


def seg_config(output: Path, **overrides) -> TrainConfig:
    values = dict(
        data="synthetic:8:48x64", output=str(output), arch="fcn32s", backbone="vgg16_narrow", epochs=1,
        batch_size=4, crop=[48, 64], scale=[0.75, 1.25], eval_every=1, num_examples=0, seed=3, lr=5e-3,
        threads=1,
    )  # fmt: skip
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def label_ae(tmp_path_factory) -> tuple[Path, dict, float]:
    """One short label-AE pretraining on synthetic label maps; (run, final scores, untrained val mIoU).

    Depth 4 (code stride 8) learns the tiny 48x64 maps in fewer steps than the paper's 5 (tested above)."""
    run = tmp_path_factory.mktemp("label_ae") / "ae"
    config = ae_config(run)
    trainer = Trainer(config, LabelAETask(config))
    untrained = trainer.task.validate(trainer.model, trainer.val_loader, trainer.device, False)[0]
    return run, trainer.fit(), untrained["mean_iou"]


# ---------------------------------------------------------------- the autoencoder (§3.1)
def test_autoencoder_learns_from_the_labelled_fraction_only(tmp_path: Path) -> None:
    """With few labels the label model must not see more label maps than the predictor (the pipeline's F)."""
    task = LabelAETask(ae_config(tmp_path, labels_fraction=0.25))
    train, _ = task.datasets()
    segmentation = SegmentationTask(seg_config(tmp_path, data=TINY, seed=0, labels_fraction=0.25))
    assert len(train) == 4 and train.indices == segmentation.datasets()[0].indices  # the same seeded subset


def test_widths_are_named_by_the_bottleneck() -> None:
    assert layer_widths(32, 5) == (32,) * 5
    assert layer_widths(128, 5) == (32, 128, 128, 128, 128)
    assert layer_widths(256, 5) == (32, 128, 128, 128, 256)
    with pytest.raises(ValueError):
        layer_widths(64, 5)
    with pytest.raises(ValueError, match="code stride"):
        LabelAEConfig(depth=5, code_stride=8)


def test_one_hot_leaves_void_pixels_all_zero() -> None:
    labels = torch.tensor([[[0, 2], [255, 1]]])
    one_hot = one_hot_labels(labels, 3, 255)
    assert one_hot.shape == (1, 3, 2, 2)
    assert one_hot[0, :, 1, 0].sum() == 0 and one_hot[0, 2, 0, 1] == 1 and one_hot.sum() == 3


@pytest.mark.parametrize(("width", "stride"), [(32, 16), (128, 32), (256, 16)])
def test_autoencoder_is_five_convs_mirrored_without_skips(width: int, stride: int) -> None:
    model = LabelAutoencoder(LabelAEConfig(num_classes=CLASSES, width=width, code_stride=stride))
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    deconvs = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(deconvs) == 5 and all(c.kernel_size == (3, 3) for c in convs + deconvs)
    assert [c.out_channels for c in convs] == list(layer_widths(width, 5))
    assert [c.in_channels for c in deconvs] == list(reversed(layer_widths(width, 5)))  # mirrored widths
    assert deconvs[-1].out_channels == CLASSES
    labels = torch.randint(0, CLASSES, (2, 45, 61))  # not a multiple of the stride: padded with void
    code = model.encode(labels)
    assert code.shape == (2, width, -(-45 // stride), -(-61 // stride))
    assert model(labels).shape == (2, CLASSES, 45, 61)
    assert model.encoder.strides["conv3"] == 4 and model.encoder.strides["code"] == stride


def test_pretraining_improves_reconstruction_iou_and_writes_a_label_ae_checkpoint(label_ae) -> None:
    run, scores, untrained = label_ae
    assert scores["mean_iou"] > untrained + 0.15, (untrained, scores["mean_iou"])
    model, meta = load_label_autoencoder(run)
    assert meta["model"]["kind"] == "label-ae" and meta["model"]["num_classes"] == CLASSES
    assert isinstance(model, LabelAutoencoder) and not model.training
    assert list((run / "examples").glob("epoch008/*.png"))
    with pytest.raises(ValueError, match="label autoencoder"):
        load_label_autoencoder_from_segmentation(run.parent)


def load_label_autoencoder_from_segmentation(folder: Path) -> None:
    from pixelwise.engine.checkpoint import save_checkpoint

    plain = create_model("fcn32s", "resnet18", num_classes=CLASSES)
    save_checkpoint(folder / "seg.safetensors", plain.state_dict(), {"model": plain.config.to_dict()})
    load_label_autoencoder(folder / "seg.safetensors")


# ---------------------------------------------------------------- the branch (§3.3)
def test_default_layer_matches_the_code_stride() -> None:
    resnet, vgg = create_backbone("resnet18"), create_backbone("vgg16_narrow")
    assert default_aux_layer(resnet, 16) == "layer3" and default_aux_layer(resnet, 32) == "layer4"
    assert default_aux_layer(vgg, 16) == "pool4" and default_aux_layer(vgg, 32) == "fc7"
    assert default_aux_layer(create_backbone("resnet18", output_stride=16), 16) == "layer4"  # dilated


@pytest.mark.parametrize("arch", ["fcn32s", "fcn16s", "fcn8s", "zoomout"])
@pytest.mark.parametrize("mode", ["decoder", "encoder"])
def test_branch_fits_every_head_and_leaves_its_output_unchanged(arch: str, mode: str, label_ae) -> None:
    torch.manual_seed(0)
    plain = create_model(arch, "resnet18", num_classes=CLASSES, head_width=16)
    wrapped = attach_label_regularizer(plain, str(label_ae[0]), CLASSES, 255, mode=mode)
    images, labels = torch.rand(2, 3, 45, 61), torch.randint(0, CLASSES, (2, 45, 61))
    labels[:, :5] = 255
    outputs = wrapped(images, labels=labels)
    assert torch.equal(outputs["seg"], plain(images)["seg"])  # the primary path is the plain model's
    assert outputs["aux_loss"].ndim == 0 and torch.isfinite(outputs["aux_loss"])
    outputs["aux_loss"].backward()
    assert wrapped.branch.project.weight.grad is not None
    assert plain.backbone.conv1.weight.grad.abs().sum() > 0  # the auxiliary loss trains the network
    frozen = wrapped.branch.decoder if mode == "decoder" else wrapped.branch.encoder
    assert all(not p.requires_grad and p.grad is None for p in frozen.parameters())
    assert wrapped.inference_model() is plain
    assert set(wrapped.inference_model().state_dict()) == set(
        create_model(arch, num_classes=CLASSES).state_dict()
    )


def test_mse_loss_and_an_explicit_layer() -> None:
    plain = create_model("fcn8s", "resnet18", num_classes=CLASSES)
    wrapped = attach_label_regularizer(
        plain, None, CLASSES, 255, decoder="random", loss="mse", layer="layer4"
    )
    labels = torch.randint(0, CLASSES, (1, 64, 64))
    loss = wrapped(torch.rand(1, 3, 64, 64), labels=labels)["aux_loss"]
    assert 0 < loss < 2  # squared error between a softmax and a one-hot vector lies in [0, 2]
    assert wrapped.auxiliary_prediction(torch.rand(1, 3, 64, 64)).shape == (1, CLASSES, 64, 64)
    with pytest.raises(ValueError, match="not a stage"):
        attach_label_regularizer(plain, None, CLASSES, 255, decoder="random", layer="fc7")
    with pytest.raises(ValueError, match="--label-ae"):
        attach_label_regularizer(plain, None, CLASSES, 255, decoder="frozen")


def test_zero_weight_gives_exactly_the_baseline_loss(label_ae) -> None:
    """lambda = 0: same init, same data stream, same loss (the branch is built under a forked RNG)."""
    losses = []
    for extra in ({}, {"regularizer": "label-ae", "label_ae": str(label_ae[0]), "aux_weight": 0.0}):
        torch.manual_seed(0)
        task = SegmentationTask(seg_config(Path("unused"), **extra))
        train, _ = task.datasets()
        model, _ = task.build_model()
        images, targets = zip(*(train[i] for i in range(4)))
        batch = torch.stack(images), {"seg": torch.stack(tuple(t["seg"] for t in targets))}
        losses.append(task.loss(model, *batch))
        losses.append(torch.rand(()))  # the global stream continues identically
    assert torch.equal(losses[0], losses[2]) and torch.equal(losses[1], losses[3])
    weighted = SegmentationTask(seg_config(Path("unused"), regularizer="label-ae", label_ae=str(label_ae[0])))
    weighted.datasets()
    model, _ = weighted.build_model()
    assert weighted.loss(model, *batch) > losses[0]  # lambda > 0 adds the auxiliary CE


# ---------------------------------------------------------------- training and checkpoints
@pytest.mark.slow
def test_frozen_decoder_training_keeps_the_decoder_and_saves_a_plain_inference_model(
    tmp_path: Path, label_ae
) -> None:
    decoder = {k: v.clone() for k, v in load_label_autoencoder(label_ae[0])[0].decoder.state_dict().items()}
    config = seg_config(tmp_path / "run", regularizer="label-ae", label_ae=str(label_ae[0]))
    trainer = Trainer(config, SegmentationTask(config))
    assert isinstance(trainer.model, LabelRegularizedModel)
    projection = trainer.model.branch.project.weight.detach().clone()
    trainer.fit()
    for key, value in trainer.model.branch.decoder.state_dict().items():
        assert torch.equal(value, decoder[key]), key  # §3.3: "never updated"
    assert not torch.equal(trainer.model.branch.project.weight, projection)
    last = load_checkpoint(tmp_path / "run" / "last.safetensors")
    assert any(k.startswith("branch.decoder.") for k in last.model_state)  # kept for --resume
    best = load_checkpoint(tmp_path / "run" / "best.safetensors")
    plain = SegmentationModel(trainer.model.config)
    assert best.model_state.keys() == plain.state_dict().keys()
    assert sum(v.numel() for v in best.model_state.values()) == sum(
        v.numel() for v in plain.state_dict().values()
    )
    for name in ("best", "last"):  # eval/predict/export also accept the resumable checkpoint
        model, meta = build_model_from_checkpoint(tmp_path / "run" / f"{name}.safetensors")
        assert type(model) is SegmentationModel and meta["model"]["kind"] == "segmentation"


@pytest.mark.slow
@pytest.mark.parametrize("decoder", ["unfrozen", "random"])
def test_unfrozen_and_random_decoders_are_trained(tmp_path: Path, label_ae, decoder: str) -> None:
    config = seg_config(
        tmp_path / "run", regularizer="label-ae", label_ae=str(label_ae[0]), label_ae_decoder=decoder
    )
    trainer = Trainer(config, SegmentationTask(config))
    start = {k: v.clone() for k, v in trainer.model.branch.decoder.state_dict().items()}
    loaded = load_label_autoencoder(label_ae[0])[0].decoder.state_dict()
    key = next(iter(start))
    assert torch.equal(start[key], loaded[key]) == (decoder == "unfrozen")  # random: a fresh init
    trainer.fit()
    assert not torch.equal(trainer.model.branch.decoder.state_dict()[key], start[key])


@pytest.mark.slow
def test_resume_with_the_branch_is_exact(tmp_path: Path, label_ae) -> None:
    extra = dict(regularizer="label-ae", label_ae=str(label_ae[0]), label_ae_mode="encoder", epochs=2)
    segmentation_trainer(seg_config(tmp_path / "straight", **extra)).fit()
    segmentation_trainer(seg_config(tmp_path / "split", time_limit=0.0, **extra)).fit()  # stops after epoch 1
    segmentation_trainer(seg_config(tmp_path / "split", resume=True, **extra)).fit()
    a = load_checkpoint(tmp_path / "straight" / "last.safetensors").model_state
    b = load_checkpoint(tmp_path / "split" / "last.safetensors").model_state
    assert a.keys() == b.keys() and any(k.startswith("branch.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    fresh = create_model("fcn32s", "vgg16_narrow", num_classes=CLASSES)  # --init-from a regularised run
    init_from_checkpoint(fresh, str(tmp_path / "straight" / "last.safetensors"))
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, a[f"model.{key}"]), key


# ---------------------------------------------------------------- retrieval (§4.3) and the CLI
@pytest.mark.slow
def test_cli_pretrain_train_and_neighbours(tmp_path: Path, label_ae, capsys) -> None:
    ae_run = tmp_path / "ae"
    flags = ["--data", TINY, "--epochs", "1", "--batch-size", "4", "--crop", "48", "64", "--threads", "1"]
    assert main(["pretrain", "--method", "label-ae", "--output", str(ae_run), *flags]) == 0
    assert load_checkpoint(ae_run / "best.safetensors").meta["model"]["kind"] == "label-ae"
    train = ["train", "--output", str(tmp_path / "seg"), "--arch", "fcn16s", "--backbone", "vgg16_narrow"]
    train += ["--num-examples", "0", *flags]
    aux = ["--regularizer", "label-ae", "--label-ae", str(ae_run), "--aux-weight", "1.0", "--aux-loss", "mse"]
    assert main([*train, *aux, "--label-ae-decoder", "unfrozen", "--aux-layer", "pool5"]) == 0
    out = tmp_path / "nn"
    args = ["label-ae", "neighbours", "--checkpoint", str(label_ae[0]), "--data", TINY, "--output", str(out)]
    assert main([*args, "--queries", "2", "--k", "3"]) == 0
    record = json.loads((out / "neighbours.json").read_text())
    assert len(record["queries"]) == 2 and all(len(q["neighbours"]) == 3 for q in record["queries"])
    distances = record["queries"][0]["distances"]
    assert distances == sorted(distances)
    from PIL import Image

    grid = Image.open(out / "neighbours.png")
    assert grid.width >= 4 * 64 and grid.height >= 2 * 48
