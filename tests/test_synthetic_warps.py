"""Synthetic warps with exact flow (spec correspondence-keypoints.md P2) and precomputed NN reconstruction."""

from __future__ import annotations

import math

import torch

from pixelwise.methods.correspondence import (
    build_database,
    conv_flow,
    dense_features,
    feature_extractor,
    reconstruct,
)
from pixelwise.methods.correspondence.reconstruction import nearest_cells
from pixelwise.methods.correspondence.synthetic_warps import (
    WarpConfig,
    affine_flow,
    elastic_flow,
    random_flow,
    warp_pair,
)
from pixelwise.methods.correspondence.warp import warp_image
from pixelwise.metrics.correspondence import endpoint_error

STILL = WarpConfig(scale=(1.0, 1.0), rotation=0.0, shift=0.0, elastic=0.0, gain=(1.0, 1.0), gamma=(1.0, 1.0),
                   blur=(0.0, 0.0), noise=0.0)  # fmt: skip


def test_a_still_warp_is_the_identity() -> None:
    image = torch.rand(3, 20, 24, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 5, (20, 24))
    pair = warp_pair(image, labels, STILL)
    assert torch.equal(pair.flow, torch.zeros(2, 20, 24))
    assert torch.allclose(pair.warped, image, atol=1e-6)
    assert torch.equal(pair.labels, labels) and bool(pair.valid.all())


def test_affine_flow_shift_rotation_and_scale() -> None:
    shift = affine_flow((9, 11), 1.0, 0.0, (2.0, -3.0))
    assert torch.allclose(shift[0], torch.full((9, 11), 2.0)) and torch.allclose(
        shift[1], torch.full((9, 11), -3.0)
    )
    turn = affine_flow(
        (9, 9), 1.0, math.pi / 2, (0.0, 0.0)
    )  # B's pixel (r, c) reads A about the centre (4, 4)
    assert torch.allclose(turn[:, 4, 4], torch.zeros(2), atol=1e-6)
    assert torch.allclose(turn[:, 4, 8] + torch.tensor([4.0, 8.0]), torch.tensor([0.0, 4.0]), atol=1e-5)
    zoom = affine_flow((9, 9), 2.0, 0.0, (0.0, 0.0))  # B = A zoomed 2x: pixel 8 of B reads A at 6
    assert torch.allclose(zoom[1, 4, 8], torch.tensor(-2.0))


def test_the_warped_image_is_a_read_through_the_exact_flow() -> None:
    image = torch.rand(3, 40, 48, generator=torch.Generator().manual_seed(1))
    config = WarpConfig(gain=(1.0, 1.0), gamma=(1.0, 1.0), blur=(0.0, 0.0), noise=0.0)
    pair = warp_pair(image, None, config, torch.Generator().manual_seed(3))
    assert torch.allclose(pair.warped, warp_image(image, pair.flow).clamp(0, 1))
    assert 0 < float(pair.valid.float().mean()) <= 1 and pair.labels is None


def test_elastic_field_is_bounded_and_the_default_warp_stays_in_range() -> None:
    field = elastic_flow((30, 40), 8.0, 4, torch.Generator().manual_seed(0))
    assert abs(float(field.norm(dim=0).max()) - 8.0) < 1e-4
    flow = random_flow((180, 240), WarpConfig(), torch.Generator().manual_seed(0))
    assert float(flow.norm(dim=0).max()) < 64  # the benchmark's search reach


def test_conv_flow_on_a_pure_shift_warp_recovers_the_shift() -> None:
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(2))
    image = torch.nn.functional.avg_pool2d(image[None], 3, 1, 1)[0]  # some spatial structure
    config = WarpConfig(scale=(1.0, 1.0), rotation=0.0, shift=0.125, elastic=0.0, gain=(1.0, 1.0),
                        gamma=(1.0, 1.0), blur=(0.0, 0.0), noise=0.0)  # fmt: skip
    torch.manual_seed(0)
    extractor = feature_extractor(None, ("layer1",))
    pair = warp_pair(image, None, config, torch.Generator().manual_seed(5))
    pair_flow = torch.stack([pair.flow[0].round(), pair.flow[1].round()])  # integer shift of the image
    warped = warp_image(image, pair_flow)
    grids = dense_features(extractor, torch.stack([warped, image]))["layer1"]
    flow = conv_flow(grids.image(0), grids.image(1), 0.01, radius=3).dense()
    interior = torch.zeros(64, 64, dtype=torch.bool)
    interior[16:48, 16:48] = True
    assert endpoint_error(flow, pair_flow, interior) < endpoint_error(
        torch.zeros_like(flow), pair_flow, interior
    )


def test_reconstruct_with_precomputed_neighbours_equals_the_search() -> None:
    torch.manual_seed(0)
    extractor = feature_extractor(None, ("layer2",))
    images = [torch.rand(3, 32, 40, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    database = build_database(extractor, images[1:], "layer2")
    query = dense_features(extractor, images[0][None])["layer2"]
    neighbours = nearest_cells(query.features[0].flatten(1).T, database.features, 5)
    for k in (1, 5):
        direct = reconstruct(query, database, k)
        reused = reconstruct(query, database, k, neighbours=neighbours)
        assert torch.equal(direct.image, reused.image)
