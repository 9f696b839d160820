"""Models: FCN skip nets (Long §3.3), zoom-out (Mostajabi §3.5), bilinear deconvolution, staged zero-init, any input
size, weights loading."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from pixelwise.models import SegmentationModel, create_backbone, create_model
from pixelwise.models.heads.fcn import BilinearUpsample
from pixelwise.models.receptive_field import Grid
from pixelwise.models.resample import resample
from pixelwise.models.weights import WeightsError, load_backbone_weights


@pytest.mark.parametrize("factor", [2, 4])
def test_bilinear_deconvolution_on_block_grids_equals_bilinear_interpolation(factor: int) -> None:
    """2x2-pooled (VGG) grids: Long's even kernel, the same as interpolate(align_corners=False), borders too."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 9, 11)
    layer = BilinearUpsample(3, Grid.block(factor), Grid.block(1))
    assert layer.kernel_size == (2 * factor, 2 * factor)
    reference = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    torch.testing.assert_close(layer(x, reference.shape[-2:]), reference)


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("offsets", [(0.0, 0.0), (15.5, 7.5), (0.0, 3.5)])
def test_bilinear_deconvolution_equals_resampling_between_any_grids(factor: int, offsets: tuple) -> None:
    """ResNet grids (offset 0 at every stride: an odd kernel) and mixed grids: deconvolution == resample."""
    torch.manual_seed(0)
    coarse, fine = Grid(8 * factor, offsets[0]), Grid(8, offsets[1])
    x = torch.randn(1, 3, 9, 11)
    layer = BilinearUpsample(3, coarse, fine)
    size = (9 * factor, 11 * factor)
    torch.testing.assert_close(layer(x, size), resample(x, coarse, fine, size))


@pytest.mark.parametrize("backbone", ["resnet18", "vgg16_narrow"])
def test_zero_initialised_16s_and_8s_reproduce_their_parent(backbone: str) -> None:
    torch.manual_seed(0)
    parent = create_model("fcn32s", backbone, num_classes=5).eval()
    with torch.no_grad():  # a "trained" parent: give its score layer non-zero weights
        for p in parent.head.parameters():
            p.normal_()
    x = torch.rand(2, 3, 64, 96)
    for arch in ("fcn16s", "fcn8s"):
        child = create_model(arch, backbone, num_classes=5).eval()
        missing, unexpected = child.load_state_dict(parent.state_dict(), strict=False)
        assert not unexpected and all("scores" in k or "upsample" in k for k in missing)
        with torch.no_grad():
            ours, theirs = child(x)["seg"], parent(x)["seg"]
        # Same prediction; logits equal up to the difference between bilinear 2x-then-16x and bilinear 32x.
        assert torch.equal(ours.argmax(dim=1), theirs.argmax(dim=1))
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0.15 * float(theirs.abs().max()))
        # Before the final fixed upsampling the fused map is exactly the parent's map, upsampled by the deconv.
        taps = child.taps(child.inputs(x))
        coarse = parent.head.scores[parent.head.names[0]](taps[parent.head.names[0]])
        fused = child.head.fuse(taps)
        expected, grids = coarse, child.head.grids
        for a, b in zip(child.head.names, child.head.names[1:]):  # 2x at a time, between the true grids
            expected = resample(expected, grids[a], grids[b], taps[b].shape[-2:])
        torch.testing.assert_close(fused, expected)


def test_score_layers_start_at_zero() -> None:
    model = create_model("fcn8s", "resnet18", num_classes=4)
    assert all(float(p.detach().abs().sum()) == 0 for n, p in model.head.named_parameters() if "scores" in n)


@pytest.mark.parametrize("arch", ["fcn8s", "zoomout"])
@pytest.mark.parametrize("size", [(32, 32), (45, 61), (97, 130)])
def test_any_input_size_gives_logits_of_that_size(size: tuple[int, int], arch: str) -> None:
    model = create_model(arch, "resnet18", num_classes=3, head_width=16).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *size))["seg"]
    assert out.shape == (1, 3, *size)


@pytest.mark.parametrize("stride", [8, 16])
def test_dilated_backbones_keep_resolution(stride: int) -> None:
    backbone = create_backbone("resnet18", output_stride=stride)
    feats = backbone(torch.rand(1, 3, 64, 64))
    assert feats["layer4"].shape[-1] == 64 // stride
    assert backbone.strides["layer4"] == stride
    model = SegmentationModel(create_model("fcn8s", "resnet18", 3, output_stride=stride).config)
    assert model(torch.rand(1, 3, 64, 64))["seg"].shape == (1, 3, 64, 64)


@pytest.mark.parametrize("backbone", ["resnet18", "vgg16_narrow"])
def test_zoomout_reads_every_stage_on_a_quarter_grid_plus_the_scene(backbone: str) -> None:
    model = create_model("zoomout", backbone, num_classes=3, head_width=16)
    strides = model.taps.strides
    assert (
        min(strides.values()) == 4 and max(strides.values()) == 32 and len(strides) == 4
    )  # §3.5: every stage
    taps = model.taps(model.inputs(torch.rand(2, 3, 64, 96)))
    features = model.head.zoom_out_features(taps, (64, 96))
    deepest = model.taps.channels[model.taps.names[0]]
    assert features.shape == (2, sum(model.taps.channels.values()) + deepest, 16, 24)
    scene = features[:, -deepest:]
    assert torch.equal(scene, scene[..., :1, :1].expand_as(scene))  # one scene vector for every cell
    model(torch.rand(2, 3, 64, 96))["seg"].sum().backward()
    stages = model.backbone.stage_modules()
    for name in strides:  # every level is trained through the classifier
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in stages[name].parameters()), name


def test_zoomout_scene_level_sees_the_whole_image() -> None:
    """A change beyond every conv's reach (ResNet-18: ~435 px) still moves a zoom-out score: the scene level."""
    torch.manual_seed(0)
    image = torch.rand(1, 3, 64, 704)
    changed = image.clone()
    changed[..., 640:] = 0  # 630+ px from the first columns
    with torch.no_grad():
        fcn = create_model("fcn8s", "resnet18", num_classes=3).eval()
        torch.nn.init.normal_(fcn.head.scores["layer4"].weight)
        assert torch.equal(fcn(image)["seg"][..., :8], fcn(changed)["seg"][..., :8])  # out of reach for convs
        zoomout = create_model("zoomout", "resnet18", num_classes=3, head_width=16).eval()
        assert not torch.equal(zoomout(image)["seg"][..., :8], zoomout(changed)["seg"][..., :8])


def test_cli_architecture_choices_are_the_models() -> None:
    from pixelwise.methods.train_config import ARCHITECTURE_CHOICES
    from pixelwise.models import ARCHITECTURES

    assert ARCHITECTURE_CHOICES == ARCHITECTURES  # config.py spells them out to keep --help torch-free


def test_an_fcn_initialises_a_zoomout_models_backbone_only(tmp_path) -> None:
    from pixelwise.engine.checkpoint import save_checkpoint
    from pixelwise.methods.segmentation import init_from_checkpoint

    fcn = create_model("fcn8s", "resnet18", num_classes=3)
    save_checkpoint(tmp_path / "fcn.safetensors", fcn.state_dict(), {"model": fcn.config.to_dict()})
    zoomout = create_model("zoomout", "resnet18", num_classes=3, head_width=16)
    assert init_from_checkpoint(zoomout, str(tmp_path / "fcn.safetensors")) is False  # a new head: full lr
    torch.testing.assert_close(zoomout.backbone.conv1.weight, fcn.backbone.conv1.weight)


def test_grayscale_input_and_backward() -> None:
    model = create_model("fcn16s", "vgg16_narrow", num_classes=3, in_channels=1)
    out = model(torch.rand(2, 1, 40, 50))["seg"]
    out.sum().backward()
    assert out.shape == (2, 3, 40, 50)
    rgb = torch.rand(1, 3, 40, 50)  # RGB input to a grey model is converted to lightness L = (R+G+B)/3
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(rgb)["seg"], model(rgb.mean(dim=1, keepdim=True))["seg"])


def test_torchvision_state_dict_loads_and_is_adapted_to_grey_input(tmp_path) -> None:
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    backbone = create_backbone("resnet18", in_channels=1)
    left_random = load_backbone_weights(backbone, path)
    assert not [k for k in left_random if not k.endswith("num_batches_tracked")]
    torch.testing.assert_close(backbone.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)
    # the RGB kernels summed: a grey pixel x responds as (x, x, x) did in the RGB network
    torch.testing.assert_close(backbone.conv1.weight, reference.conv1.weight.sum(dim=1, keepdim=True))


def test_vgg_classifier_is_convolutionalised(tmp_path) -> None:
    backbone = create_backbone("vgg16_narrow")
    fc6 = backbone.fc.fc6
    flat = torch.randn(fc6.out_channels, fc6.in_channels * 9)
    path = tmp_path / "vgg.pth"
    torch.save({"classifier.0.weight": flat, "classifier.0.bias": torch.zeros(fc6.out_channels)}, path)
    with pytest.raises(WeightsError, match="would stay random.*--allow-partial"):
        load_backbone_weights(backbone, path)  # fc6 alone: most of the backbone would stay random
    load_backbone_weights(backbone, path, allow_partial=True)
    torch.testing.assert_close(backbone.fc.fc6.weight, flat.reshape(fc6.weight.shape))


def test_weights_of_another_depth_are_refused_although_every_shared_name_fits(tmp_path, capsys) -> None:
    import torchvision

    path = tmp_path / "resnet34.safetensors"
    save_file(
        {k: v.contiguous() for k, v in torchvision.models.resnet34(weights=None).state_dict().items()},
        str(path),
    )
    with pytest.raises(WeightsError, match=r"layer1\.2\..*that this backbone lacks"):
        load_backbone_weights(create_backbone("resnet18"), path)
    assert (
        "loaded 120 of the backbone's 120 tensors; 0 left at their initial value; 96 in the file not used"
        in capsys.readouterr().out
    )


class _Exploit:
    def __reduce__(self):
        return (print, ("pickle code ran",))


def test_pickled_code_is_refused(tmp_path, capsys) -> None:
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"conv1.weight": _Exploit()}, handle)
    with pytest.raises(WeightsError, match="refused"):
        load_backbone_weights(create_backbone("resnet18"), path)
    assert "pickle code ran" not in capsys.readouterr().out


def test_weights_that_match_nothing_are_an_error(tmp_path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"something.else": torch.zeros(3)}, str(path))
    with pytest.raises(WeightsError, match="no tensor matches"):
        load_backbone_weights(create_backbone("resnet18"), path)
