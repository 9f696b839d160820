"""2x2 jigsaw proxy (Larsson §4.7.1): permutations, puzzle geometry, head, loss, grey input, memorisation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from pixelwise.methods.proxies.jigsaw import (
    CHANCE_LOSS,
    CLASSES,
    PERMUTATIONS,
    JigsawHead,
    JigsawProxy,
    check_geometry,
    jigsaw_loss,
    jigsaw_puzzles,
    permutation_table,
    tile_corners,
)
from pixelwise.models.backbones import create_backbone
from pixelwise.models.inputs import IMAGENET_MEAN, IMAGENET_STD, InputNormalizer
from pixelwise.models.taps import FeatureTaps

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _index_image(batch: int, size: int) -> torch.Tensor:
    """Pixel (r, c) holds r * size + c in every channel (exact in float64), so a tile reveals where it was cut."""
    plane = torch.arange(size * size, dtype=torch.float64).view(size, size)
    return plane.expand(batch, 3, size, size).clone()


# ------------------------------------------------------------------------------------------- permutations
def test_all_24_permutations_in_bijection_with_the_labels() -> None:
    assert CLASSES == 24 and len(PERMUTATIONS) == 24
    assert set(PERMUTATIONS) == set(itertools.permutations(range(4)))  # all of them, each distinct
    assert PERMUTATIONS == tuple(itertools.permutations(range(4)))  # a fixed order: label k <-> permutation k
    table = permutation_table()
    assert table.dtype == torch.long and table.shape == (24, 4)
    assert {tuple(row) for row in table.tolist()} == set(PERMUTATIONS)
    assert CHANCE_LOSS == pytest.approx(math.log(24))


# ------------------------------------------------------------------------------------------- puzzles
def test_inverse_permutation_reassembles_the_quadrants() -> None:
    colours = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    image = torch.empty(3, 64, 64)
    for quadrant, colour in enumerate(colours):
        row, col = divmod(quadrant, 2)
        image[:, 32 * row : 32 * (row + 1), 32 * col : 32 * (col + 1)] = colour[:, None, None]
    images = image.expand(96, -1, -1, -1)  # enough puzzles to see most labels
    tiles, labels = jigsaw_puzzles(images, crop=64, tile=28, wiggle=0, generator=_seeded())
    assert tiles.shape == (96, 4, 3, 28, 28) and labels.dtype == torch.long
    assert len(labels.unique()) > 12
    # Each tile is one constant colour: cut from inside a single quadrant.
    assert torch.equal(tiles.amax(dim=(-2, -1)), tiles.amin(dim=(-2, -1)))
    shown = tiles[..., 0, 0]  # [N, 4, 3]: the colour in each slot
    for n, label in enumerate(labels.tolist()):
        order = PERMUTATIONS[label]
        assert torch.equal(shown[n], colours[list(order)])  # slot j shows quadrant order[j]
        inverse = torch.argsort(torch.tensor(order))
        assert torch.equal(
            shown[n, inverse], colours
        )  # the inverse permutation puts them back in raster order


def test_wiggle_stays_inside_the_quadrant_and_uses_all_of_it() -> None:
    # Crop = image: quadrant q's tile must lie in [84 * row, 84 * row + 84) x [84 * col, ...).
    corners = tile_corners(2000, (168, 168), crop=168, tile=76, wiggle=16, generator=_seeded())
    origins = torch.tensor([[0, 0], [0, 84], [84, 0], [84, 84]])
    offsets = corners - origins
    assert offsets.min() == 0 and offsets.max() == 84 - 76  # inside, and the 8 px of jitter are all used
    gaps = corners[:, 1, 1] - (corners[:, 0, 1] + 76)  # between the two top tiles
    assert gaps.min() == 0 and gaps.max() == 16  # the "<= 16 px wiggle" between pieces

    # Less wiggle than the quadrant allows: the jitter band is centred in the quadrant.
    corners = tile_corners(1000, (64, 64), crop=64, tile=28, wiggle=4, generator=_seeded())
    offsets = corners - origins // 84 * 32
    assert offsets.min() == 1 and offsets.max() == 3


def test_tiles_are_cut_where_the_corners_say() -> None:
    size, tile = 180, 76
    images = _index_image(16, size)
    tiles, labels = jigsaw_puzzles(images, generator=_seeded(3))
    corners = tile_corners(16, (size, size), generator=_seeded(3))  # the same draws, in raster order
    span = torch.arange(tile, dtype=torch.float64)
    for n, label in enumerate(labels.tolist()):
        for slot, quadrant in enumerate(PERMUTATIONS[label]):
            row, col = corners[n, quadrant].tolist()
            expected = (row + span[:, None]) * size + (col + span[None, :])
            assert torch.equal(tiles[n, slot, 0], expected)
    # The crops move over the image (the corners of quadrant 0 spread over the 12 px of slack plus jitter).
    assert len(corners[:, 0, 0].unique()) > 4


@pytest.mark.parametrize("device", DEVICES)
def test_puzzles_are_deterministic_given_the_generator(device: str) -> None:
    images = torch.rand(6, 3, 180, 240, generator=_seeded(9)).to(device)
    tiles_a, labels_a = jigsaw_puzzles(images, generator=_seeded(1))
    tiles_b, labels_b = jigsaw_puzzles(images, generator=_seeded(1))
    tiles_c, labels_c = jigsaw_puzzles(images, generator=_seeded(2))
    assert tiles_a.device == labels_a.device == images.device
    assert torch.equal(tiles_a, tiles_b) and torch.equal(labels_a, labels_b)
    assert not (torch.equal(tiles_a, tiles_c) and torch.equal(labels_a, labels_c))
    # The same draws on the CPU cut the same tiles: the geometry does not depend on the device.
    tiles_cpu, labels_cpu = jigsaw_puzzles(images.cpu(), generator=_seeded(1))
    assert torch.equal(tiles_cpu, tiles_a.cpu()) and torch.equal(labels_cpu, labels_a.cpu())


def test_images_smaller_than_the_crop_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"180x160.*168x168.*--crop / --base-size"):
        jigsaw_puzzles(torch.rand(2, 3, 180, 160))


@pytest.mark.parametrize(
    ("crop", "tile", "wiggle", "message"),
    [(168, 80, 16, "quadrants of >= 88"), (168, 76, 15, "must be even"), (64, 0, 0, "tile must be >= 1")],
)
def test_impossible_geometry_is_refused(crop: int, tile: int, wiggle: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_geometry(crop, tile, wiggle)
    with pytest.raises(ValueError, match=message):
        JigsawProxy(8, crop=crop, tile=tile, wiggle=wiggle)  # at construction, not at the first step


# ------------------------------------------------------------------------------------------- head
def test_head_pools_and_concatenates_in_presented_order() -> None:
    torch.manual_seed(0)
    head = JigsawHead(5, hidden=0)
    features = torch.randn(3 * 4, 5, 2, 3)
    logits = head(features)
    assert logits.shape == (3, 24)
    pooled = features.mean(dim=(2, 3)).view(3, 4, 5)
    manual = torch.cat(list(pooled.unbind(1)), dim=1) @ head.classifier.weight.T + head.classifier.bias
    torch.testing.assert_close(logits, manual)
    swapped = features.view(3, 4, 5, 2, 3)[:, [1, 0, 2, 3]].reshape(12, 5, 2, 3)
    assert not torch.allclose(head(swapped), logits)  # order matters: that is the task
    assert JigsawHead(5, hidden=16)(features).shape == (3, 24)
    with pytest.raises(ValueError, match=r"\[N \* 4, 5, h, w\]"):
        head(torch.randn(6, 5, 2, 2))


# ------------------------------------------------------------------------------------------- loss
class _Recording:
    """Callable taps that keep the backbone input they were given."""

    def __init__(self, taps: FeatureTaps) -> None:
        self.taps, self.inputs = taps, None

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.inputs = x
        return self.taps(x)


@pytest.fixture(scope="module")
def tiny_taps() -> FeatureTaps:
    backbone = create_backbone("resnet18", 3, 32)
    return FeatureTaps(backbone, backbone.stage_names)  # every stage, as a shared multi-proxy backbone has


def test_grey_mode_feeds_identical_channels(tiny_taps: FeatureTaps) -> None:
    images = torch.rand(2, 3, 72, 72, generator=_seeded(4))
    recording = _Recording(tiny_taps)
    grey = JigsawProxy.for_taps(tiny_taps, grey=True, crop=64, tile=28, wiggle=4)
    grey.loss(recording, images, generator=_seeded(5))
    fed = recording.inputs
    assert fed.shape == (8, 3, 28, 28)  # no padding to the stride
    assert torch.equal(fed[:, 0], fed[:, 1]) and torch.equal(fed[:, 1], fed[:, 2])
    # It is the tile's lightness (R+G+B)/3, standardised with the grey statistics of InputNormalizer(1).
    tiles, _ = jigsaw_puzzles(images, 64, 28, 4, _seeded(5))
    lightness = tiles.flatten(0, 1).mean(dim=1)
    expected = (lightness - sum(IMAGENET_MEAN) / 3) / (sum(IMAGENET_STD) / 3)
    torch.testing.assert_close(fed[:, 0], expected)

    rgb = JigsawProxy.for_taps(tiny_taps, grey=False, crop=64, tile=28, wiggle=4)
    rgb.loss(recording, images, generator=_seeded(5))
    assert not torch.allclose(recording.inputs[:, 0], recording.inputs[:, 1])  # RGB is kept


def test_a_mismatched_normaliser_is_refused(tiny_taps: FeatureTaps) -> None:
    head = JigsawHead(512)
    images = torch.rand(1, 3, 72, 72)
    with pytest.raises(ValueError, match=r"grey=True needs InputNormalizer\(1"):
        jigsaw_loss(tiny_taps, InputNormalizer(3, 1), head, images, grey=True, crop=64, tile=28, wiggle=4)
    with pytest.raises(ValueError, match=r"grey=False needs InputNormalizer\(3"):
        jigsaw_loss(tiny_taps, InputNormalizer(1, 1), head, images, grey=False, crop=64, tile=28, wiggle=4)


def test_proxy_holds_only_its_head_and_reads_the_deepest_tap(tiny_taps: FeatureTaps) -> None:
    proxy = JigsawProxy.for_taps(tiny_taps, hidden=32)
    assert proxy.stage == "layer4" and proxy.head.channels == 512
    assert all(key.startswith("head.") for key in proxy.state_dict())  # checkpoints keep taps.backbone.*


@pytest.mark.parametrize("grey", [True, False])
def test_the_backbone_alone_learns_to_memorise_a_fixed_batch(grey: bool) -> None:
    # The head stays at its random init and only the backbone trains: a falling loss is then the backbone's
    # doing, i.e. the gradients reach it through the pooled, concatenated tile features.
    torch.manual_seed(0)
    taps = FeatureTaps(create_backbone("resnet18", 3, 32), ("layer2", "layer4"))
    proxy = JigsawProxy.for_taps(taps, hidden=64, grey=grey, crop=64, tile=28, wiggle=4)
    proxy.requires_grad_(False)
    head = {k: v.clone() for k, v in proxy.state_dict().items()}
    images = torch.rand(8, 3, 72, 72, generator=_seeded(6))
    conv1 = taps.backbone.conv1.weight
    start = conv1.detach().clone()
    optimiser = torch.optim.Adam(taps.parameters(), lr=1e-3)
    losses = []
    for _ in range(24):
        out = proxy.loss(taps, images, generator=_seeded(7))  # the same 8 puzzles every step: memorisable
        optimiser.zero_grad()
        out["loss"].backward()
        optimiser.step()
        losses.append(out["loss"].item())
        assert 0.0 <= float(out["accuracy"]) <= 1.0 and not out["accuracy"].requires_grad
    assert losses[0] > 0.8 * CHANCE_LOSS  # starts near chance, log(24)
    assert losses[-1] < 0.1 * CHANCE_LOSS, losses
    assert float(out["accuracy"]) == 1.0
    assert all(torch.equal(v, head[k]) for k, v in proxy.state_dict().items())
    assert not torch.equal(conv1.detach(), start)  # down to the first layer
