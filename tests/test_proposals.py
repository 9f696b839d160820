"""Region proposals from pairwise networks (Long thesis Ch. 4): pairwise ops, upsampling, the region loss."""

from __future__ import annotations

import pytest
import torch

from pixelwise.methods.proposals.loss import region_loss, region_targets
from pixelwise.methods.proposals.model import RegionNet, RegionNetConfig
from pixelwise.methods.proposals.pairwise import offsets, pairwise_product, transpose
from pixelwise.methods.proposals.regions import (
    Window,
    label_windows,
    region_patches,
    upsample_regions,
    upsampling_matrix,
)
from pixelwise.models.receptive_field import Grid


def _explicit_transpose(p: torch.Tensor) -> torch.Tensor:
    n, channels, h, w = p.shape
    size = int(channels**0.5)
    delta = offsets(size).tolist()
    index = {tuple(d): c for c, d in enumerate(delta)}
    out = torch.zeros_like(p)
    for c, (dy, dx) in enumerate(delta):
        for i in range(h):
            for j in range(w):
                if 0 <= i + dy < h and 0 <= j + dx < w:
                    out[:, c, i, j] = p[:, index[(-dy, -dx)], i + dy, j + dx]
    return out


def test_transpose_equals_explicit_loops_and_is_an_involution_where_defined() -> None:
    p = torch.randn(2, 9, 5, 5, generator=torch.Generator().manual_seed(0))
    t = transpose(p)
    assert torch.equal(t, _explicit_transpose(p))
    twice = transpose(t)
    defined = transpose(transpose(torch.ones_like(p))) != 0  # (x, Delta) with x + Delta on the map
    assert torch.equal(twice[defined], p[defined])
    assert bool((twice[~defined] == 0).all()) and bool((~defined).any())  # zero outside the map


def test_transpose_of_the_centre_channel_is_the_identity() -> None:
    p = torch.randn(1, 25, 4, 6)
    assert torch.equal(transpose(p)[:, 12], p[:, 12])


def test_transpose_rejects_an_even_window() -> None:
    with pytest.raises(ValueError, match="W odd"):
        transpose(torch.zeros(1, 16, 3, 3))


def _brute_product(p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    n, channels, h, w = p1.shape
    size = int(channels**0.5)
    r = size // 2
    delta = offsets(size).tolist()
    index = {tuple(d): c for c, d in enumerate(delta)}
    out = torch.zeros_like(p1)
    for c, (ay, ax) in enumerate(delta):
        for d, (dy, dx) in enumerate(delta):
            ry, rx = ay - dy, ax - dx
            if abs(ry) > r or abs(rx) > r:
                continue
            for i in range(h):
                for j in range(w):
                    if 0 <= i + dy < h and 0 <= j + dx < w:
                        out[:, c, i, j] += p1[:, d, i, j] * p2[:, index[(ry, rx)], i + dy, j + dx]
    return out


def test_pairwise_product_equals_brute_force_and_has_the_identity() -> None:
    g = torch.Generator().manual_seed(1)
    p1, p2 = torch.randn(1, 9, 4, 5, generator=g), torch.randn(1, 9, 4, 5, generator=g)
    assert torch.allclose(pairwise_product(p1, p2), _brute_product(p1, p2), atol=1e-5)
    identity = torch.zeros_like(p2)
    identity[:, 4] = 1  # p2(x, 0) = 1, 0 elsewhere
    on_map = transpose(torch.ones_like(p1)) != 0  # p2(x + Delta, .) exists
    assert torch.allclose(pairwise_product(p1, identity)[on_map], p1[on_map])
    assert bool((pairwise_product(p1, identity)[~on_map] == 0).all())
    shortest = pairwise_product(p1, torch.where(identity > 0, 0.0, torch.inf), "min-sum")
    assert torch.equal(shortest[on_map], p1[on_map])  # (min, +) with the (min, +) identity


def test_upsampling_rows_sum_to_one_and_cell_centres_are_exact() -> None:
    for stride in (1, 2, 4, 8):
        window = Window(Grid(stride, 0.0), 5)
        matrix = upsampling_matrix(window)
        assert matrix.shape == (5 * stride, 5)
        assert torch.allclose(matrix.sum(1), torch.ones(5 * stride))
        centres = (torch.arange(5) - 2) * stride - window.first  # window pixel of each cell centre
        assert torch.allclose(matrix[centres], torch.eye(5))


def test_upsampling_is_differentiable() -> None:
    patches = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    window = Window(Grid(2, 0.0), 3)
    torch.autograd.gradcheck(
        lambda x: upsample_regions(x.float(), window).double(), (patches,), eps=1e-3, atol=1e-2
    )


def test_label_windows_read_the_pixels_around_each_centre() -> None:
    labels = torch.arange(20 * 24).reshape(20, 24)
    window = Window(Grid(4, 0.0), 3)  # 12 px windows, pixels -6 .. 5 around centre 4 i
    windows = label_windows(labels, window, (5, 6))
    assert windows.shape == (5, 6, 12, 12)
    assert int(windows[2, 3, 6, 6]) == int(labels[8, 12])  # the centre pixel
    assert int(windows[2, 3, 0, 0]) == int(labels[2, 6])
    assert int(windows[0, 0, 0, 0]) == -1  # off the image


def _two_objects() -> torch.Tensor:
    instances = torch.zeros(32, 32, dtype=torch.long)
    instances[4:10, 4:10] = 1  # small: fits a 9-cell window of stride 2 (18 px)
    instances[12:30, 2:30] = 2  # large: fits no window
    instances[0, :] = 255
    return instances


def test_region_targets_exclude_background_void_and_objects_too_big_for_the_window() -> None:
    window = Window(Grid(2, 0.0), 9)
    targets = region_targets(_two_objects(), window, (16, 16))
    assert bool(targets.trained[3, 3])  # centre pixel (6, 6) in object 1, which fits
    assert not bool(targets.trained[10, 8])  # in object 2, too big
    assert not bool(targets.trained[1, 14])  # background
    assert not bool(targets.scored[0, 3])  # void centre
    assert bool(targets.scored[10, 8]) and bool(targets.scored[1, 14])


def test_the_loss_ignores_regions_whose_object_does_not_fit() -> None:
    window = Window(Grid(2, 0.0), 9)
    instances = _two_objects()
    targets = region_targets(instances, window, (16, 16))
    logits = torch.zeros(1, 81, 16, 16, requires_grad=True)
    scores = torch.zeros(1, 1, 16, 16)
    loss = region_loss({"regions": [logits], "scores": [scores]}, instances[None], [window])
    loss.backward()
    touched = logits.grad.abs().sum(1)[0] > 0
    assert torch.equal(touched, targets.trained)


def test_a_tiny_region_net_trains_and_its_loss_falls() -> None:
    torch.manual_seed(0)
    config = RegionNetConfig(pathways=("layer1", "layer2"), windows=(9, 9), kernels=(3, 3), reduce=16)
    model = RegionNet(config)
    windows = [Window(g, w) for g, w in zip(model.grids, config.windows)]
    images = torch.rand(2, 3, 48, 64)
    instances = torch.zeros(2, 48, 64, dtype=torch.long)
    instances[:, 10:26, 10:30] = 1
    instances[:, 30:44, 36:60] = 2
    images[:, :, 10:26, 10:30] += 0.5
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)
    losses = []
    for _ in range(15):
        loss = region_loss(model(images.clamp(0, 1)), instances, windows)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_config_checks_and_round_trips() -> None:
    with pytest.raises(ValueError, match="odd"):
        RegionNetConfig(windows=(14, 15, 19, 19))
    config = RegionNetConfig(transpose=False)
    assert RegionNetConfig.from_dict(config.to_dict()) == config
    model = RegionNet(RegionNetConfig(pathways=("layer2",), windows=(5,), kernels=(3,), reduce=0))
    out = model(torch.rand(1, 3, 64, 96))
    assert out["regions"][0].shape == (1, 25, 8, 12) and out["scores"][0].shape == (1, 1, 8, 12)
    patches = region_patches(out["regions"][0][0], torch.tensor([1, 2]), torch.tensor([3, 4]))
    assert patches.shape == (2, 5, 5)


def _perfect_outputs(instances: torch.Tensor, window: Window, cells: tuple[int, int]) -> dict:
    """The ideal network for box-shaped segments: each cell's logit is the signed distance (px, positive inside)
    of its centre to the box of the segment under the region centre, so the bilinear zero crossing lies on the box
    edge (exactly, away from the corners)."""
    from pixelwise.methods.proposals.loss import segment_boxes

    targets = region_targets(instances, window, cells)
    boxes = segment_boxes(instances)
    size, s, r = window.size, window.grid.stride, window.radius
    logits = torch.full((size, size, *cells), -100.0)
    steps = (torch.arange(size) - r).float() * s
    for i in range(cells[0]):
        for j in range(cells[1]):
            segment = int(targets.ids[i, j])
            if segment not in boxes:
                continue
            top, left, bottom, right = boxes[segment]
            rows, cols = window.centre_pixels(cells[0])[i] + steps, window.centre_pixels(cells[1])[j] + steps
            d_rows = torch.minimum(rows - (top - 0.5), (bottom + 0.5) - rows)
            d_cols = torch.minimum(cols - (left - 0.5), (right + 0.5) - cols)
            logits[:, :, i, j] = torch.minimum(d_rows[:, None], d_cols[None, :])
    score = torch.where(targets.trained, 4.0, -4.0)[None]
    return {"regions": [logits.reshape(size * size, *cells)[None]], "scores": [score[None]]}


def test_the_read_out_of_an_ideal_network_recovers_every_object_that_fits() -> None:
    from pixelwise.methods.proposals.loss import segment_boxes
    from pixelwise.methods.proposals.predict import ProposalOptions, read_out
    from pixelwise.metrics.proposals import best_matches

    instances = torch.zeros(48, 64, dtype=torch.long)
    instances[8:20, 8:24] = 1
    instances[24:40, 30:50] = 2
    instances[26:34, 52:60] = 3  # touching nothing, small
    window = Window(Grid(4, 0.0), 9)  # 36 px windows
    outputs = _perfect_outputs(instances, window, (12, 16))
    found = read_out(outputs, [window], (48, 64), ProposalOptions(nms_threshold=0.7))[0]
    best, which = best_matches(found.masks, instances)[None]
    assert bool((best > 0.8).all()), best  # exact but for the corners, which bilinear interpolation rounds
    for segment, (top, left, bottom, right) in segment_boxes(instances).items():
        proposal = found.masks[int(which[segment - 1])]
        rows, cols = torch.nonzero(proposal.mask, as_tuple=True)
        assert (int(rows.min()) + proposal.top, int(rows.max()) + proposal.top) == (top, bottom)  # no shift
        assert (int(cols.min()) + proposal.left, int(cols.max()) + proposal.left) == (left, right)
    assert found.scores == sorted(found.scores, reverse=True)
    sparse = read_out(outputs, [window], (48, 64), ProposalOptions(nms_threshold=0.7, lowest_stride=8))[0]
    assert all(i % 2 == 0 and j % 2 == 0 for i, j in sparse.cells)
