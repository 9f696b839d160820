"""Correspondence from frozen features (Long thesis Ch. 2; spec correspondence-keypoints.md "What to test").

BP and its distance transform against exhaustive minimisation of the same energy, flow recovery of known shifts,
warping, keypoint transfer, NN reconstruction, and the PCK / EPE / label-transfer / PSNR metrics by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pixelwise.engine.checkpoint import save_checkpoint
from pixelwise.methods.colorization.model import ColorizationModel, ColorizerConfig
from pixelwise.methods.correspondence import (
    FeatureConfig,
    FeatureGrid,
    Flow,
    belief_propagation,
    build_database,
    conv_flow,
    data_cost,
    dense_features,
    displacements,
    feature_extractor,
    flow_energy,
    median_of_top,
    min_convolve_1d,
    min_convolve_2d,
    nn_transfer,
    reconstruct,
    stage_rf_sizes,
    transfer_keypoints,
    transfer_points,
    warp_image,
    warp_labels,
    zero_flow,
)
from pixelwise.methods.correspondence.descriptors import grey_patch_descriptors, sift_descriptors
from pixelwise.methods.correspondence.mrf import argmin_labels
from pixelwise.methods.correspondence.transfer import check_keypoints, cosine_neighbours, energy_order
from pixelwise.metrics.correspondence import (
    endpoint_error,
    flow_pck,
    label_transfer_scores,
    pck,
    pck_thresholds,
    psnr,
)
from pixelwise.models.receptive_field import ARCHITECTURES, Grid, receptive_fields

# ------------------------------------------------------------------------------------------ exact references


def _pairwise(labels: torch.Tensor) -> torch.Tensor:
    """||w - w'||^2 between every pair of labels [L, L]."""
    return (labels[:, None, :] - labels[None, :, :]).pow(2).sum(-1)


def exhaustive_minimum(cost: torch.Tensor, beta: float) -> float:
    """min_w E(w) over *every* labelling of a small grid, by dynamic programming over columns whose states are all
    labellings of a column (exhaustive within a column, exact across columns: the grid is a chain of columns)."""
    h, w, k, _ = cost.shape
    labels = displacements(k // 2).double()
    count = k * k
    states = torch.cartesian_prod(*[torch.arange(count)] * h).view(-1, h)  # every labelling of one column
    f = labels[states]  # [S, h, 2]
    vertical = beta * (f[:, 1:] - f[:, :-1]).pow(2).sum((1, 2))
    horizontal = beta * (f[:, None] - f[None, :]).pow(2).sum((2, 3))  # [S, S]
    flat = cost.double().reshape(h, w, count)

    def unary(x: int) -> torch.Tensor:
        return flat[:, x, :].gather(1, states.T).sum(0) + vertical

    best = unary(0)
    for x in range(1, w):
        best = (best[:, None] + horizontal).amin(0) + unary(x)
    return float(best.min())


def bp_energy(cost: torch.Tensor, beta: float, iterations: int = 30) -> float:
    flow = argmin_labels(belief_propagation(cost, beta, iterations))
    return flow_energy(cost, flow, beta).total


# --------------------------------------------------------------------------------- distance transform, BP


def test_min_convolution_equals_brute_force_on_a_3x3_grid_with_5x5_labels() -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.rand(3, 3, 5, 5, generator=g) * 3
    h[0, 0, 0, :] = math.inf  # displacements leaving the target
    h[1, 1] = math.inf
    h[1, 1, 4, 4] = 0.3  # a single valid label, far from most others
    labels = displacements(2).double()
    for beta in (0.0, 0.37, 5.0):
        brute = (h.double().reshape(3, 3, 1, 25) + beta * _pairwise(labels)).amin(-1).reshape(3, 3, 5, 5)
        torch.testing.assert_close(min_convolve_2d(h.double(), beta), brute)
    row = torch.tensor([3.0, math.inf, 0.0, 5.0])
    torch.testing.assert_close(min_convolve_1d(row, 1.0, 0), torch.tensor([3.0, 1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="beta must be >= 0"):
        min_convolve_1d(row, -1.0, 0)


@pytest.mark.parametrize("shape", [(1, 4), (4, 1)])
def test_bp_on_a_chain_equals_brute_force(shape: tuple[int, int]) -> None:
    """A chain is a tree: min-sum BP is exact once the messages have crossed it."""
    labels = displacements(2)
    configurations = torch.cartesian_prod(*[torch.arange(25)] * 4)  # all 25^4 labellings
    for seed, beta in [(0, 0.05), (1, 0.3), (2, 2.0)]:
        g = torch.Generator().manual_seed(seed)
        cost = torch.rand(*shape, 5, 5, generator=g).double() * 2
        flat = cost.reshape(4, 25)
        data = flat[torch.arange(4), configurations].sum(1)
        f = labels[configurations].double()
        brute = float((data + beta * (f[:, 1:] - f[:, :-1]).pow(2).sum((1, 2))).min())
        assert bp_energy(cost, beta, iterations=12) == pytest.approx(brute, abs=1e-9)


def test_bp_on_a_single_loop_equals_brute_force() -> None:
    """A 2x2 grid is one loop: a converged max-product fixed point is the exact MAP there (Weiss & Freeman 2001)."""
    for seed in range(5):
        for beta in (0.05, 0.2):
            cost = torch.rand(2, 2, 3, 3, generator=torch.Generator().manual_seed(seed)).double() * 2
            assert bp_energy(cost, beta, iterations=100) == pytest.approx(
                exhaustive_minimum(cost, beta), abs=1e-9
            )


def test_bp_on_a_3x3_grid_finds_the_exact_minimum_on_these_problems() -> None:
    """Loopy BP is not exact in general; on these fixed weakly coupled 3x3 problems it finds the exact minimum
    (a regression check, against exhaustive minimisation of the same energy)."""
    for seed in range(4):
        for beta in (0.05, 0.2):
            cost = torch.rand(3, 3, 3, 3, generator=torch.Generator().manual_seed(seed)).double() * 2
            assert bp_energy(cost, beta) == pytest.approx(exhaustive_minimum(cost, beta), abs=1e-9)


def test_beta_zero_is_the_nearest_neighbour_flow() -> None:
    cost = torch.rand(4, 5, 7, 7, generator=torch.Generator().manual_seed(3))
    flow = argmin_labels(belief_propagation(cost, 0.0, 10))
    nearest = cost.reshape(4, 5, 49).argmin(-1)
    torch.testing.assert_close(flow, torch.stack([nearest // 7 - 3, nearest % 7 - 3], -1))


def test_a_very_large_beta_gives_the_best_single_translation() -> None:
    g = torch.Generator().manual_seed(4)
    source, target = torch.randn(8, 5, 6, generator=g), torch.randn(8, 5, 6, generator=g)
    cost = data_cost(source, target, radius=2)
    flow = argmin_labels(belief_propagation(cost, 1e3, 30))
    assert bool((flow == flow[0, 0]).all()), "one displacement everywhere"
    translations = {tuple(d.tolist()): cost[:, :, d[0] + 2, d[1] + 2].sum() for d in displacements(2)}
    best = min(translations, key=lambda d: float(translations[d]))
    assert tuple(flow[0, 0].tolist()) == best


def test_data_cost_is_the_l2_norm_and_inf_outside_the_target() -> None:
    g = torch.Generator().manual_seed(5)
    source, target = torch.randn(3, 4, 4, generator=g), torch.randn(3, 3, 5, generator=g)
    cost = data_cost(source, target, radius=1)
    assert cost.shape == (4, 4, 3, 3)
    assert float(cost[1, 2, 2, 0]) == pytest.approx(float((source[:, 1, 2] - target[:, 2, 1]).norm()))
    assert math.isinf(float(cost[0, 0, 0, 1])) and math.isinf(float(cost[3, 0, 1, 1]))  # rows -1 and 3 of 3
    with pytest.raises(ValueError, match="no displacement inside the target"):
        belief_propagation(data_cost(source, torch.randn(3, 1, 1), radius=1), 0.1)


# --------------------------------------------------------------------------------------------- conv flow


def _grid(features: torch.Tensor, grid: Grid = Grid(8, 0.0)) -> FeatureGrid:
    h, w = features.shape[-2:]
    return FeatureGrid(features[None], grid, (h * grid.stride, w * grid.stride))


def test_conv_flow_recovers_an_integer_shift_exactly() -> None:
    field = torch.randn(16, 12, 12, generator=torch.Generator().manual_seed(6))
    source = _grid(field[:, 2:10, 3:11])  # source(p) = field(p + (2, 3)) = target(p + (2, 3))
    target = _grid(field)
    for beta in (0.0, 0.05, 1.0):
        flow = conv_flow(source, target, beta, radius=3)
        assert bool((flow.cells == torch.tensor([2, 3])).all())
        assert flow.energy is not None and flow.energy.total == pytest.approx(0.0, abs=1e-5)
        assert bool((flow.pixels() == torch.tensor([16.0, 24.0])).all())  # stride 8
    assert flow.energy.deformation == 0.0


def test_conv_flow_recovers_a_shift_on_backbone_features() -> None:
    """A random ResNet-18's layer2 (stride 8) on a crop of a scene and on the whole scene."""
    torch.manual_seed(0)
    extractor = feature_extractor(stages=("layer2",))
    scene = F.interpolate(torch.rand(1, 3, 24, 24), size=(96, 96), mode="bilinear", align_corners=False)
    source = dense_features(extractor, scene[..., 16:80, 8:72])["layer2"]  # 64x64 at (16, 8)
    target = dense_features(extractor, scene)["layer2"]
    # source pixel x is scene (= target) pixel x + (16, 8): two cells down, one right. The source's border cells
    # see zero padding where the target sees the scene: alone (NN flow) some match elsewhere, the MRF fixes them.
    right = {
        beta: (conv_flow(source, target, beta, radius=3).cells == torch.tensor([2, 1])).all(-1)
        for beta in (0, 0.2)
    }
    assert bool(right[0.2].all()) and not bool(right[0].all())
    dense = conv_flow(source, target, 0.2, radius=3).dense()
    assert dense.shape == (2, 64, 64) and bool((dense == torch.tensor([16.0, 8.0]).view(2, 1, 1)).all())


def test_sift_and_grey_patch_flow_on_the_same_grid_recover_a_shift() -> None:
    """The baselines of §2.2: hand-made descriptors at the same grid points, through the same MRF."""
    torch.manual_seed(0)
    scene = F.interpolate(torch.rand(1, 3, 24, 24), size=(96, 96), mode="bilinear", align_corners=False)
    source_grid = FeatureGrid(torch.zeros(1, 1, 8, 8), Grid(8, 0.0), (64, 64))
    target_grid = FeatureGrid(torch.zeros(1, 1, 12, 12), Grid(8, 0.0), (96, 96))
    for describe, scale in [(sift_descriptors, 12.0), (grey_patch_descriptors, 8)]:
        source = describe(scene[..., 16:80, 8:72], source_grid, scale)
        target = describe(scene, target_grid, scale)
        assert source.grid == source_grid.grid and source.shape == (8, 8)
        torch.testing.assert_close(source.features.norm(dim=1), torch.ones(1, 8, 8))
        flow = conv_flow(source, target, 0.2, radius=3)
        assert bool((flow.cells == torch.tensor([2, 1])).all())
    with pytest.raises(ValueError, match="grid belongs to"):
        sift_descriptors(scene, source_grid, 12.0)


def test_flow_pixels_come_from_the_grid() -> None:
    cells = torch.zeros(3, 4, 2, dtype=torch.long)
    cells[1, 2] = torch.tensor([1, -2])
    flow = Flow(cells, Grid(16, 7.5), (48, 64))
    centres = flow.source_positions()
    assert centres[1, 2].tolist() == [7.5 + 16, 7.5 + 32]
    assert flow.target_positions()[1, 2].tolist() == [7.5 + 32, 7.5]
    assert flow.pixels()[1, 2].tolist() == [16.0, -32.0]
    # Pixel (23, 39) is at fractional cell ((23 - 7.5) / 16, (39 - 7.5) / 16) = (0.96875, 1.96875): bilinear
    # between cell (1, 2) and its zero neighbours gives 0.96875^2 of its flow.
    torch.testing.assert_close(flow.dense()[:, 23, 39], torch.tensor([16.0, -32.0]) * 0.96875**2)
    constant = Flow(torch.ones(3, 4, 2, dtype=torch.long), Grid(16, 7.5), (48, 64)).dense()
    assert bool((constant == 16).all())
    assert zero_flow(_grid(torch.zeros(2, 3, 4))).pixels().abs().sum() == 0


# ------------------------------------------------------------------------------------------------ warping


def test_warping_with_the_identity_flow_is_the_identity() -> None:
    image = torch.rand(3, 7, 9)
    labels = torch.randint(0, 5, (7, 9))
    zero = torch.zeros(2, 7, 9)
    assert torch.equal(warp_image(image, zero), image)
    assert torch.equal(warp_labels(labels, zero), labels)


def test_backward_warping_a_coordinate_image_returns_x_plus_u() -> None:
    rows, cols = torch.meshgrid(torch.arange(10.0), torch.arange(12.0), indexing="ij")
    coordinates = torch.stack([rows, cols])
    u = torch.stack([0.3 * torch.sin(cols / 3) + 1.5, 0.5 * torch.cos(rows / 4) - 0.25])  # stays inside
    u[:, :2], u[:, -2:], u[:, :, :1], u[:, :, -1:] = 0, 0, 0, 0
    torch.testing.assert_close(warp_image(coordinates, u), coordinates + u)
    shifted = warp_labels(
        torch.arange(120).view(10, 12), torch.stack([torch.ones(10, 12), -torch.ones(10, 12)])
    )
    assert shifted[3, 4] == 4 * 12 + 3 and shifted[9, 0] == 255  # (10, -1) is outside


# ------------------------------------------------------------------------------------------ keypoint transfer


def test_transfer_points_inverts_the_backward_warp() -> None:
    flow = torch.stack([torch.full((20, 24), 2.0), torch.full((20, 24), -3.0)])  # p reads p + (2, -3)
    points = torch.tensor([[10.0, 5.0], [math.nan, math.nan]])
    moved = transfer_points(flow, points)
    assert moved[0].tolist() == [8.0, 8.0] and torch.isnan(moved[1]).all()


def test_median_of_the_top_five_skips_neighbours_without_the_keypoint() -> None:
    nan = math.nan
    points = torch.tensor(
        [
            [[0.0, 0.0], [1.0, 1.0]],
            [[10.0, 20.0], [nan, nan]],
            [[2.0, 4.0], [3.0, 3.0]],
            [[4.0, 2.0], [nan, nan]],
            [[6.0, 8.0], [5.0, 7.0]],
            [[100.0, 100.0], [9.0, 9.0]],
            [[-50.0, -50.0], [100.0, 100.0]],
        ]
    )
    order = [5, 0, 2, 3, 4, 1, 6]  # neighbour 6 is sixth for keypoint 0, fifth for keypoint 1
    median = median_of_top(points, order, top=5)
    assert median[0].tolist() == [4.0, 4.0]  # of x (100, 0, 2, 4, 6) and y (100, 0, 4, 2, 8)
    assert median[1].tolist() == [5.0, 7.0]  # 9, 1, 3, 5, 100 / 9, 1, 3, 7, 100
    assert median_of_top(points[:, 1:], [1, 3, 0], top=5)[0].tolist() == [1.0, 1.0]
    assert median_of_top(points[:, 1:], [0, 2], top=5)[0].tolist() == [2.0, 2.0]  # even count: mean of two
    assert torch.isnan(median_of_top(points[:, 1:], [1, 3], top=5)).all()
    assert nn_transfer(points[:3], top=2)[0].tolist() == [5.0, 10.0]


def test_keypoint_transfer_through_shifted_neighbours() -> None:
    """Each neighbour is the query's scene moved by whole cells; its keypoints land back on the query's."""
    field = torch.randn(8, 14, 14, generator=torch.Generator().manual_seed(7))
    query = _grid(field[:, 3:11, 3:11], Grid(4, 0.0))  # 32x32 pixels
    truth = torch.tensor([[10.0, 12.0], [20.0, 6.0]])  # query keypoints (row, col)
    neighbours, keypoints = [], []
    for d in [(1, 0), (0, -1), (-1, 1)]:
        # neighbour cell q is field cell q + 1 + d, query cell p is field cell p + 3: p matches q = p + 2 - d,
        # and every query cell's match lies inside the 12x12 neighbour
        neighbours.append(_grid(field[:, 1 + d[0] : 13 + d[0], 1 + d[1] : 13 + d[1]], Grid(4, 0.0)))
        keypoints.append(truth + 4 * (2 - torch.tensor(d)))  # the same scene points in the neighbour
    result = transfer_keypoints(query, neighbours, torch.stack(keypoints), beta=0.1, radius=3, top=5)
    torch.testing.assert_close(result.keypoints, truth)
    assert sorted(result.order) == [0, 1, 2] and len(result.flows) == 3
    assert all(f.energy is not None and f.energy.deformation == 0 for f in result.flows)


def test_energy_order_and_retrieval() -> None:
    from pixelwise.methods.correspondence import FlowEnergy

    energies = [FlowEnergy(1.0, 5.0, 6.0), FlowEnergy(3.0, 1.0, 4.0), FlowEnergy(0.5, 2.0, 2.5)]
    assert energy_order(energies) == [1, 2, 0]
    assert energy_order(energies, "data") == [2, 0, 1]
    with pytest.raises(ValueError, match="unknown order"):
        energy_order(energies, "fc7")
    database = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert cosine_neighbours(torch.tensor([2.0, 0.1]), database, 2).tolist() == [0, 2]


def test_keypoints_outside_the_image_are_a_one_line_error() -> None:
    check_keypoints(torch.tensor([[0.0, 0.0], [31.0, 47.0], [math.nan, math.nan]]), (32, 48))
    with pytest.raises(ValueError, match=r"^keypoint 1 at \(row 32, col 3\) lies outside the 32x48 image$"):
        check_keypoints(torch.tensor([[0.0, 0.0], [32.0, 3.0]]), (32, 48))
    field = torch.randn(4, 6, 6)
    with pytest.raises(
        ValueError, match=r"^neighbour 0 keypoint 0 at \(row -1, col 2\) lies outside the 24x24 image$"
    ):
        transfer_keypoints(
            _grid(field, Grid(4, 0.0)), [_grid(field, Grid(4, 0.0))], torch.tensor([[[-1.0, 2.0]]]), 0.1
        )


# ------------------------------------------------------------------------------------------ feature grids


def test_feature_cell_centres_come_from_the_stage_grid() -> None:
    torch.manual_seed(0)
    for backbone, stage in [("resnet18", "layer2"), ("vgg16_narrow", "pool3")]:
        extractor = feature_extractor(stages=(stage,), config=FeatureConfig(backbone=backbone))
        grid = extractor.backbone.grids[stage]
        cells = dense_features(extractor, torch.rand(2, 3, 44, 60))[stage]
        assert cells.grid == grid
        h, w = cells.shape
        assert cells.rows()[-1] <= 43 < grid.position(h) and cells.cols()[-1] <= 59 < grid.position(w)
        centres = cells.centres()
        assert centres[2, 3].tolist() == [grid.position(2), grid.position(3)]
        torch.testing.assert_close(cells.features.norm(dim=1), torch.ones(2, h, w))
    assert (grid.offset, grid.stride) == (3.5, 8)  # VGG pool3: the centre of each 8x8 block


def test_feature_extractor_rejects_a_stage_the_backbone_lacks() -> None:
    with pytest.raises(ValueError, match=r"unknown tap\(s\) \['conv4'\]; ResNetBackbone has"):
        feature_extractor(stages=("conv4",))


def test_feature_extractor_loads_the_backbone_of_a_run(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = ColorizationModel(ColorizerConfig(hidden=8))
    save_checkpoint(
        tmp_path / "run" / "best.safetensors", model.state_dict(), {"model": model.config.to_dict()}
    )
    extractor = feature_extractor(str(tmp_path / "run"), stages=("layer1",))
    assert extractor.config.in_channels == 1  # read from the run: colorization sees lightness
    torch.testing.assert_close(extractor.backbone.conv1.weight, model.backbone.conv1.weight)
    extractor.train()
    assert not extractor.training and not any(p.requires_grad for p in extractor.parameters())
    images = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(extractor(images)["layer1"], extractor(images.mean(1, keepdim=True))["layer1"])


def test_stage_rf_sizes_match_the_receptive_field_table() -> None:
    extractor = feature_extractor(stages=("layer4",))
    table = {name: rf for name, rf, _ in receptive_fields(ARCHITECTURES["resnet18"])}
    sizes = stage_rf_sizes(extractor.backbone)
    assert sizes == {name: table[name] for name in sizes}
    assert sizes["layer2"] == 99  # AlexNet conv3's rf: the thesis's "uniform rf" neighbourhood


# ------------------------------------------------------------------------------------------ reconstruction


def test_nn_reconstruction_of_a_database_image_is_exact_and_beats_the_uniform_rf_control() -> None:
    torch.manual_seed(0)
    extractor = feature_extractor(stages=("layer1",))
    images = [F.interpolate(torch.rand(1, 3, 8, 8), size=(32, 40), mode="bilinear")[0] for _ in range(2)]
    database = build_database(extractor, images, "layer1")
    assert database.features.shape[0] == 2 * 8 * 10 and database.patch == 4
    query = dense_features(extractor, images[1][None])["layer1"]
    exact = reconstruct(query, database, k=1)
    assert exact.mask[:31, :39].all()  # patches of cells at 4i cover 4i-1 .. 4i+2
    assert psnr(exact.image, images[1], exact.mask) == math.inf
    control = reconstruct(query, database, k=1, uniform_rf=stage_rf_sizes(extractor.backbone)["layer2"])
    assert psnr(control.image, images[1], control.mask) < 30
    with pytest.raises(ValueError, match="database patch size"):
        reconstruct(
            dense_features(feature_extractor(stages=("layer2",)), images[0][None])["layer2"], database
        )


# ---------------------------------------------------------------------------------------------------- metrics


def test_pck_by_hand() -> None:
    gt = torch.zeros(3, 2, 2)
    pred = torch.tensor(
        [
            [[3.0, 4.0], [0.0, 4.99]],  # distance 5 (= the threshold: wrong, strict <), 4.99: right
            [[0.0, 4.9], [math.nan, math.nan]],  # 4.9 < 5: right; no prediction: wrong
            [[100.0, 0.0], [1.0, 0.0]],  # keypoint 0 invisible: not scored; 1 < 10 right
        ]
    )
    visible = torch.tensor([[True, True], [True, True], [False, True]])
    thresholds = pck_thresholds(torch.tensor([[50.0, 20.0], [10.0, 50.0], [100.0, 100.0]]), 0.1)
    assert thresholds.tolist() == pytest.approx([5.0, 5.0, 10.0])
    result = pck(pred, gt, visible, torch.tensor([5.0, 5.0, 10.0]))
    assert result["per_type"] == pytest.approx([1 / 2, 2 / 3]) and result["scored"] == [2, 3]
    assert result["mean"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert pck(pred, gt, visible, 200.0)["per_type"] == pytest.approx([1.0, 2 / 3])  # one threshold for all
    with pytest.raises(ValueError, match="alpha"):
        pck_thresholds(torch.ones(1, 2), 0.0)


def test_endpoint_error_and_pixel_pck() -> None:
    gt = torch.zeros(2, 2, 2)
    pred = torch.tensor([[[3.0, 0.0], [0.0, 1.0]], [[4.0, 0.0], [0.0, 0.0]]])  # errors 5, 0, 0, 1
    assert endpoint_error(pred, gt) == pytest.approx(1.5)
    assert endpoint_error(pred, gt, torch.tensor([[True, False], [False, False]])) == pytest.approx(5.0)
    assert flow_pck(pred, gt, [1, 5.5]) == {1.0: 0.5, 5.5: 1.0}


def test_label_transfer_counts_untransferred_pixels_as_errors() -> None:
    target = torch.tensor([[0, 0, 1, 1], [1, 1, 255, 255]])
    pred = torch.tensor([[0, 255, 1, 1], [1, 0, 0, 1]])
    scores = label_transfer_scores([(pred, target)], num_classes=2)
    # class 0: 1 right of 2 true, predicted once more (at a class-1 pixel): IU 1 / 3; class 1: 3 of 4, IU 3 / 4
    assert scores["per_class_iou"] == pytest.approx([1 / 3, 3 / 4])
    assert scores["mean_iou"] == pytest.approx((1 / 3 + 3 / 4) / 2)
    assert scores["coverage"] == pytest.approx(5 / 6)


def test_psnr_by_hand() -> None:
    target = torch.zeros(1, 2, 2)
    pred = torch.tensor([[[0.1, 0.0], [0.0, 0.5]]])
    assert psnr(pred, target, torch.tensor([[True, False], [False, False]])) == pytest.approx(20.0)
    assert psnr(pred, target) == pytest.approx(10 * math.log10(4 / 0.26))


def test_correspond_align_recovers_a_shift_between_two_files_and_writes_a_panel(tmp_path: Path) -> None:
    import json as _json

    import numpy as np
    from PIL import Image

    from pixelwise.cli.main import main

    rng = np.random.default_rng(0)
    texture = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
    shifted = np.roll(
        texture, shift=(0, 16), axis=(0, 1)
    )  # one layer2 cell (stride 8) = 8 px; 16 px = 2 cells
    Image.fromarray(texture).save(tmp_path / "a.png")
    Image.fromarray(shifted).save(tmp_path / "b.png")
    out = tmp_path / "align"
    command = ["correspond", "align", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--beta", "0.01",
               "--radius", "3", "--output", str(out)]  # fmt: skip
    assert main(command) == 0
    record = _json.loads((out / "flow.json").read_text())
    assert (out / "panel.png").is_file() and record["cells"][0] > 0
    assert record["psnr_warped"] > record["psnr_copy"] + 3  # the warp undoes most of the shift


def test_an_opencv_flow_warps_correctly_once_flipped_to_rows_cols() -> None:
    """Farneback's (dx, dy) and the warp's (dy, dx): flipped, a horizontal shift is undone."""
    import numpy as np

    from pixelwise.data.flow import farneback_flow
    from pixelwise.methods.correspondence.warp import warp_image

    rng = np.random.default_rng(0)
    base = torch.from_numpy(rng.random((1, 64, 96)).astype(np.float32))
    base = F.avg_pool2d(base[None], 5, stride=1, padding=2)[0].expand(3, -1, -1)  # smooth texture
    moved = torch.roll(base, shifts=3, dims=2)  # moved(x) = base(x - 3)
    flow = farneback_flow(moved, base)  # from moved to base: dx ~ -3
    assert flow[0, 16:-16, 16:-16].median() == pytest.approx(-3, abs=0.5)
    warped = warp_image(base, flow.flip(0))
    inner = (slice(None), slice(16, -16), slice(16, -16))
    assert (warped - moved)[inner].abs().mean() < 0.3 * (base - moved)[inner].abs().mean()
