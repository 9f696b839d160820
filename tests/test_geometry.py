"""Every feature cell at its true position (fcn.md erratum; Long §3.3's crop offsets from the layer geometry).

Three checks that would have caught the align_corners=False assumption on ResNet grids: (1) a cell's gradient
centroid is the centre the receptive-field calculator computes; (2) translating the input by the largest stride
translates every model's output by as much; (3) a bright dot comes out centred where it went in.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from pixelwise.methods.colorization.model import ColorizationModel, ColorizerConfig
from pixelwise.models import create_backbone, create_model
from pixelwise.models.inputs import IMAGENET_MEAN
from pixelwise.models.receptive_field import ARCHITECTURES, Grid, compose, receptive_fields

BACKBONES = [
    ("resnet18", 32),
    ("resnet34", 32),
    ("resnet50", 32),
    ("resnet101", 32),
    ("resnet18", 8),  # dilated
    ("vgg16", 32),
    ("vgg16_narrow", 32),
]


def _replace_pools(module: nn.Module, make) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.MaxPool2d):
            module._modules[name] = make(child)
        else:
            _replace_pools(child, make)


def _constant_positive(model: nn.Module) -> nn.Module:
    """Flip-symmetric, positive weights (uniform kernels), zero biases; BatchNorm in eval mode is the identity."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                if isinstance(module, nn.ConvTranspose2d):
                    continue  # the bilinear upsampling kernels are already symmetric and positive
                fan_in = module.weight[0].numel()
                module.weight.fill_(1.0 / fan_in)
                if module.bias is not None:
                    module.bias.zero_()
    return model.eval()


@pytest.mark.parametrize(("name", "output_stride"), BACKBONES)
def test_gradient_centroid_of_a_cell_is_its_computed_centre(name: str, output_stride: int) -> None:
    """(1) For every stage: the centroid of d(cell)/d(input) equals the grid's position of that cell."""
    torch.manual_seed(0)
    backbone = create_backbone(name, output_stride=output_stride)
    # Max pools pass the gradient to one input only; average pools of the same geometry reach the whole window.
    _replace_pools(backbone, lambda p: nn.AvgPool2d(p.kernel_size, p.stride, p.padding))
    backbone = _constant_positive(backbone).double()
    size = 160 if name.startswith("vgg") else 193  # odd at every ResNet stage: a true middle cell
    image = torch.ones(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    outputs = backbone.forward_stages(image)
    coords = torch.arange(size, dtype=torch.float64)
    for stage, grid in backbone.grids.items():
        feature = outputs[stage]
        rows = feature.shape[-2]
        # The middle cell, and one cell off the middle where that cell's receptive field lies inside the image.
        for cell in sorted({(rows - 1) // 2, (rows - 1) // 2 - 1}):
            (grad,) = torch.autograd.grad(feature[0, :, cell, cell].sum(), image, retain_graph=True)
            weight = grad[0].abs().sum(0)
            inside = all(edge.sum() == 0 for edge in (weight[0], weight[-1], weight[:, 0], weight[:, -1]))
            if cell != (rows - 1) // 2 and not inside:
                continue  # clipped by the border: its centroid is pulled inwards
            centroid_row = float((weight.sum(1) * coords).sum() / weight.sum())
            centroid_col = float((weight.sum(0) * coords).sum() / weight.sum())
            expected = grid.position(cell)
            assert abs(centroid_row - expected) < 0.5, (name, stage, cell, centroid_row, expected)
            assert abs(centroid_col - expected) < 0.5, (name, stage, cell, centroid_col, expected)


def test_centre_offsets_follow_the_composition_rule() -> None:
    """o' = o + ((k-1)/2 d - pad) s_prev: conv1 k7/s2/p3 keeps 0, a 2x2 pool adds s_prev / 2."""
    assert compose(Grid(1, 0.0), nn.Conv2d(3, 8, 7, 2, 3)) == Grid(2, 0.0)
    assert compose(Grid(2, 0.0), nn.MaxPool2d(2)) == Grid(4, 1.0)
    assert compose(Grid(4, 1.5), nn.Conv2d(8, 8, 3, 1, 1, dilation=1)) == Grid(4, 1.5)
    assert compose(Grid(4, 0.0), nn.Conv2d(8, 8, 3, 2, 0)) == Grid(8, 4.0)  # a valid conv moves the centre
    assert compose(Grid(8, 0.0), nn.Conv2d(8, 8, 3, 1, 2, dilation=2)) == Grid(8, 0.0)
    strides = {n: s for n, _, s in receptive_fields(ARCHITECTURES["resnet18"])}
    grids = create_backbone("resnet18").grids
    assert all(grids[n].stride == strides[n] for n in grids)
    assert {g.offset for g in grids.values()} == {0.0}
    assert [g.offset for g in create_backbone("vgg16_narrow").grids.values()] == [
        0.5,
        1.5,
        3.5,
        7.5,
        15.5,
        15.5,
    ]


def _circular(model: nn.Module) -> nn.Module:
    """Circular padding everywhere: the backbone is then exactly equivariant to rolls by multiples of its stride."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.padding != (0, 0):
            module.padding_mode = "circular"
    _replace_pools(
        model,
        lambda p: (
            nn.Sequential(nn.CircularPad2d(p.padding), nn.MaxPool2d(p.kernel_size, p.stride))
            if p.padding
            else p
        ),
    )
    return model


def _randomised(model: nn.Module) -> nn.Module:
    torch.manual_seed(1)
    with torch.no_grad():  # score layers start at zero (Long §3.3.4): give the head something to show
        for name, param in model.named_parameters():
            if "scores" in name:
                param.normal_(0, 0.1)
    return model.eval()


MODELS = ["fcn32s", "fcn16s", "fcn8s", "zoomout"]


def _build(which: str) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor], Grid]:
    """(model, image -> output map [N, C, h, w], the output's grid) for ``arch-backbone``."""
    arch, backbone = which.split("-")
    if arch == "hypercolumn":  # the colorization head's dense output, on the block grid of its scale
        model: nn.Module = ColorizationModel(ColorizerConfig(backbone=backbone, hidden=16)).eval()
        return model, lambda x: model(x, scale=4)["hue"], Grid.block(4)
    model = create_model(arch, backbone, num_classes=3).eval()
    return model, lambda x: model(x)["seg"], Grid(1, 0.0)


WHICH = [
    f"{arch}-{backbone}" for backbone in ("resnet18", "vgg16_narrow") for arch in (*MODELS, "hypercolumn")
]


@pytest.mark.parametrize("which", WHICH)
def test_translating_the_input_by_the_largest_stride_translates_the_output(which: str) -> None:
    """(2) Shift equivariance: roll the input by 32 px, the output rolls by 32 px (interior, to tolerance)."""
    model, run, grid = _build(which)
    _randomised(_circular(model))
    torch.manual_seed(0)
    image = torch.rand(1, 3, 192, 192)
    shift = 32
    with torch.no_grad():
        out = run(image)
        moved = run(image.roll((shift, shift), dims=(2, 3)))
    cells = shift // grid.stride
    lo, hi = 2 * 32 // grid.stride, out.shape[-1] - 2 * 32 // grid.stride  # away from the clamped border
    torch.testing.assert_close(
        moved[..., lo + cells : hi, lo + cells : hi], out[..., lo : hi - cells, lo : hi - cells]
    )


def _dot_response(
    run: Callable[[torch.Tensor], torch.Tensor], grid: Grid, dot: tuple[int, int], size: int = 256
) -> tuple[float, float]:
    """Centroid (pixels) of the output response, within 64 px of the dot, to one bright pixel on a flat image
    of the mean colour (which normalises to 0, so zero padding is the flat image and no border shows)."""
    flat = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, size, size).clone()
    image = flat.clone()
    image[0, :, dot[0], dot[1]] = 1.0
    with torch.no_grad():
        response = (run(image) - run(flat)).sum(1)[0].clamp(min=0).double()
    rows = grid.offset + grid.stride * torch.arange(response.shape[-2], dtype=torch.float64)
    cols = grid.offset + grid.stride * torch.arange(response.shape[-1], dtype=torch.float64)
    near = ((rows[:, None] - dot[0]).abs() <= 64) & ((cols[None, :] - dot[1]).abs() <= 64)
    weight = response * near
    return float((weight.sum(1) * rows).sum() / weight.sum()), float(
        (weight.sum(0) * cols).sum() / weight.sum()
    )


@pytest.mark.parametrize("which", WHICH)
def test_a_bright_dot_comes_out_where_it_went_in(which: str) -> None:
    """(3) Positive symmetric weights: the response to a dot is centred on the dot within 2 px (the misaligned
    code put it ~15 px down and right for FCN-32s/16s/8s on a ResNet, ~7 px for zoom-out)."""
    model, run, grid = _build(which)
    _constant_positive(model)
    dot = (112, 144)
    row, col = _dot_response(run, grid, dot)
    assert abs(row - dot[0]) <= 2 and abs(col - dot[1]) <= 2, (which, row, col)


def test_a_checkpoint_from_before_the_geometry_fix_is_refused_for_inference_but_gives_its_backbone(
    tmp_path,
) -> None:
    """Format-1 heads were trained on misread cells: eval/predict refuse them; --init-from takes the backbone."""
    from pixelwise.engine.checkpoint import save_checkpoint
    from pixelwise.methods.kinds import build_model_from_checkpoint
    from pixelwise.methods.segmentation import init_from_checkpoint

    old = create_model("fcn32s", "resnet18", num_classes=3)
    meta = {"format_version": 1, "model": old.config.to_dict()}
    path = save_checkpoint(tmp_path / "old.safetensors", old.state_dict(), meta)
    with pytest.raises(ValueError, match="older pixelwise.*retrain"):
        build_model_from_checkpoint(path)
    child = create_model("fcn16s", "resnet18", num_classes=3)
    init_from_checkpoint(child, str(path))
    torch.testing.assert_close(child.backbone.conv1.weight, old.backbone.conv1.weight)
    current = save_checkpoint(tmp_path / "new.safetensors", old.state_dict(), {"model": old.config.to_dict()})
    assert isinstance(build_model_from_checkpoint(current)[0], nn.Module)
