"""Stacked Bernoulli mixtures with latent transformations (Larsson thesis §1.2, App. A; specs/mixture-models.md):
the edges, Permutation EM (monotone, P = 1 is plain EM, brute-force E step, planted rotated parts), the layers'
coding, the class models, storage, refusals and the ``pixelwise parts`` command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pixelwise.cli.main import main
from pixelwise.data.digits import rotate
from pixelwise.methods.mixtures import (
    Edges,
    Mixture,
    PartsNet,
    PartsNetConfig,
    PermutationMM,
    circular_correlation,
    cyclic_group_table,
    edge_permutation,
    or_pool,
    oriented_edges,
    spread,
)
from pixelwise.methods.mixtures.edges import DIRECTIONS


def _binary(*shape: int, p: float = 0.3, seed: int = 0) -> torch.Tensor:
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < p).float()


# ---------------------------------------------------------------------------------------------- edges (§1.2.8)
def _brute_edges(image: torch.Tensor, k: int) -> torch.Tensor:
    """The k-of-6 rule written pixel by pixel (replicate border), for one grey image [H, W]."""
    height, width = image.shape

    def at(r: int, c: int) -> float:
        return float(image[min(max(r, 0), height - 1), min(max(c, 0), width - 1)])

    out = torch.zeros(8, height, width)
    for j, (dr, dc) in enumerate(DIRECTIONS):
        wr, wc = dc, -dr
        for r in range(height):
            for c in range(width):
                z, y = at(r, c), at(r + dr, c + dc)
                comparisons = [at(r + wr, c + wc) - z, at(r - wr, c - wc) - z, at(r + dr + wr, c + dc + wc) - y,
                               at(r + dr - wr, c + dc - wc) - y, at(r - dr, c - dc) - z, at(r + 2 * dr, c + 2 * dc) - y]  # fmt: skip
                if y - z > 0 and sum(abs(y - z) > abs(v) for v in comparisons) >= k:
                    out[j, r, c] = 1
    return out


@pytest.mark.parametrize("k", [6, 4, 1])
def test_edges_follow_the_k_of_6_rule(k: int) -> None:
    image = torch.rand(1, 1, 7, 9, generator=torch.Generator().manual_seed(k))
    assert torch.equal(oriented_edges(image, k)[0], _brute_edges(image[0, 0], k))


def test_a_vertical_step_fires_only_the_horizontal_feature_of_its_polarity() -> None:
    step = torch.zeros(1, 1, 10, 12)
    step[..., 6:] = 1  # dark left, bright right
    edges = oriented_edges(step)
    assert (
        edges[0, 0].sum() == 10 and edges[0, 0, :, 5].sum() == 10
    )  # "brighter to the right", at the dark pixel
    assert edges[0, 1:].sum() == 0
    flipped = oriented_edges(1 - step)  # bright left: the opposite polarity only
    assert flipped[0, 4].sum() == 10 and flipped[0, 4, :, 6].sum() == 10
    assert flipped.sum() == flipped[0, 4].sum()


def test_rotating_the_image_by_90_degrees_permutes_the_8_features() -> None:
    images = torch.rand(3, 1, 14, 14, generator=torch.Generator().manual_seed(1))
    edges = oriented_edges(images)
    turned = torch.rot90(images, -1, dims=(-2, -1))  # +90 degrees in data.digits.rotate's sense
    assert torch.allclose(rotate(images, torch.tensor(math.pi / 2)), turned, atol=1e-5)
    expected = torch.rot90(edges, -1, dims=(-2, -1))[:, edge_permutation(2)]
    assert torch.equal(oriented_edges(turned), expected)
    assert edges.sum() > 0


@pytest.mark.parametrize("radius", [0, 1, 2])
def test_spread_dilates_by_a_box_of_the_radius(radius: int) -> None:
    dot = torch.zeros(1, 1, 9, 9)
    dot[0, 0, 4, 4] = 1
    spread_dot = spread(dot, radius)
    assert spread_dot.sum() == (2 * radius + 1) ** 2
    assert spread_dot[0, 0, 4 - radius : 5 + radius, 4 - radius : 5 + radius].min() == 1


# ---------------------------------------------------------------------------------------------- Permutation EM
def test_cayley_table_of_3_rotations_and_2_polarities_is_a2() -> None:
    expected = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 0, 4, 5, 3], [2, 0, 1, 5, 3, 4],
                             [3, 4, 5, 0, 1, 2], [4, 5, 3, 1, 2, 0], [5, 3, 4, 2, 0, 1]])  # fmt: skip
    assert torch.equal(cyclic_group_table([3, 2]), expected)


def test_em_never_lowers_the_log_likelihood() -> None:
    samples = _binary(200, 6, 20, seed=3)
    model = PermutationMM(3, 6, cyclic_group_table([3, 2]), iterations=12, eps=0.05, seed=1).fit(samples)
    steps = np.diff(model.log_likelihoods)
    assert (steps >= -1e-6 * abs(model.log_likelihoods[0])).all(), model.log_likelihoods
    assert model.log_likelihoods[-1] > model.log_likelihoods[0]
    assert model.score(samples) >= model.log_likelihoods[-1] - 1e-3  # the fitted parameters are better still


def test_one_permutation_is_plain_bernoulli_em() -> None:
    samples = _binary(120, 1, 16, seed=4)
    model = PermutationMM(4, 1, iterations=5, eps=0.05, seed=2).fit(samples)
    # Plain Bernoulli EM (float64 numpy) from the same initial parts.
    picks = torch.randperm(120, generator=torch.Generator().manual_seed(2))[:4]
    mu = (0.5 * samples[picks, 0].double().numpy() + 0.25).clip(0.05, 0.95)
    pi = np.full(4, 0.25)
    x = samples[:, 0].double().numpy()
    for _ in range(5):
        log_joint = np.log(pi) + x @ np.log(mu).T + (1 - x) @ np.log(1 - mu).T
        gamma = np.exp(log_joint - log_joint.max(1, keepdims=True))
        gamma /= gamma.sum(1, keepdims=True)
        mu = ((gamma.T @ x) / gamma.sum(0)[:, None]).clip(0.05, 0.95)
        pi = gamma.mean(0)
    assert np.allclose(model.mu[:, 0].numpy(), mu, atol=1e-5)
    assert np.allclose(model.log_pi[:, 0].exp().numpy(), pi, atol=1e-5)


def test_e_step_equals_brute_force_enumeration() -> None:
    table = cyclic_group_table([3, 2])  # P = 6
    model = PermutationMM(2, 6, table, iterations=2, seed=0).fit(_binary(10, 6, 4, seed=5))
    samples = _binary(3, 6, 4, seed=6)
    gamma = model.responsibilities(samples)
    mu, pi = model.mu.double(), model.log_pi.exp().double()
    for n in range(3):
        raw = torch.zeros(2, 6, dtype=torch.float64)
        for z in range(2):
            for w in range(6):
                product = pi[z, w]
                for w2 in range(6):
                    for d in range(4):
                        x = samples[n, table[w, w2], d]
                        product = product * (mu[z, w2, d] if x else 1 - mu[z, w2, d])  # (1.7)
                raw[z, w] = product
        assert torch.allclose(gamma[n].double(), raw / raw.sum(), atol=1e-5)


def test_responsibilities_sum_to_one() -> None:
    samples = _binary(50, 4, 12, seed=7)
    model = PermutationMM(3, 4, iterations=3).fit(samples)
    assert torch.allclose(model.responsibilities(samples).sum(dim=(1, 2)), torch.ones(50), atol=1e-5)


def test_fits_are_deterministic_by_seed() -> None:
    samples = _binary(80, 4, 12, seed=8)
    first, again = (PermutationMM(3, 4, iterations=3, seed=5).fit(samples) for _ in range(2))
    other = PermutationMM(3, 4, iterations=3, seed=6).fit(samples)
    assert torch.equal(first.mu, again.mu) and not torch.equal(first.mu, other.mu)


def test_planted_rotated_parts_are_recovered_up_to_a_cyclic_relabelling() -> None:
    """3 random 8x8 templates, each sample one of them rotated by a random multiple of 90 degrees, 5% noise."""
    generator = torch.Generator().manual_seed(0)
    templates = (torch.rand(3, 8, 8, generator=generator) < 0.4).float()
    count, rotations = 300, 4
    which = torch.randint(0, 3, (count,), generator=generator)
    turns = torch.randint(0, rotations, (count,), generator=generator)
    clean = torch.stack([torch.rot90(templates[f], int(r)) for f, r in zip(which, turns)])
    flips = (torch.rand(clean.shape, generator=generator) < 0.05).float()
    noisy = (clean + flips) % 2
    complete = torch.stack([torch.rot90(noisy, r, dims=(-2, -1)) for r in range(rotations)], dim=1).flatten(2)
    fits = [PermutationMM(3, rotations, iterations=15, eps=0.01, seed=s).fit(complete) for s in range(3)]
    model = max(fits, key=lambda m: m.log_likelihoods[-1])  # EM with restarts: the most likely fit
    gamma = model.responsibilities(complete).flatten(1).argmax(dim=1)
    component, pose = gamma // rotations, gamma % rotations
    matched = 0
    for f in range(3):
        members = which == f
        assert members.any()
        z = int(torch.mode(component[members]).values)  # the component that took template f
        # E-step pairing: W = offset - rotation (the W -> -W relabelling of the errata), one offset per part.
        offsets = (pose[members] + turns[members]) % rotations
        agree = (component[members] == z) & (offsets == torch.mode(offsets).values)
        matched += int(agree.sum())
        blocks = model.mu[z].view(rotations, 8, 8).round()
        best = max(float((blocks[r] == templates[f]).float().mean()) for r in range(rotations))
        assert best > 0.95, f"template {f}: best block matches {best:.2%} of its pixels"
    assert matched / count > 0.95


def test_the_single_component_class_model_is_the_clipped_class_mean() -> None:
    samples = _binary(40, 1, 30, p=0.1, seed=9)
    model = PermutationMM(1, 1, iterations=3, eps=0.05).fit(samples)
    assert torch.allclose(model.mu[0, 0], samples[:, 0].mean(dim=0).clamp(0.05, 0.95), atol=1e-6)


# ---------------------------------------------------------------------------------------------- layers
def _blobs(count: int, size: int = 20, seed: int = 0) -> torch.Tensor:
    """Smooth random grey images: enough structure for edges everywhere."""
    noise = torch.rand(count, 1, size // 4, size // 4, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)


def test_coding_is_one_hot_per_location_and_or_pooled() -> None:
    images = _blobs(6)
    layer = Mixture(5, patch_size=4, pool=1, iterations=2, patches_per_image=10, min_edges=1).fit(
        images, Edges()
    )
    codes = layer.code(Edges()(images))
    assert codes.shape == (6, 5, 17, 17) and torch.equal(
        codes.sum(dim=1), torch.ones(6, 17, 17, dtype=torch.uint8)
    )
    pooled = or_pool(codes.float(), 4)
    assert pooled.shape == (6, 5, 5, 5)
    assert torch.equal(pooled[:, :, 0, 0], codes[:, :, :4, :4].float().amax(dim=(2, 3)))


def test_rotating_the_input_cyclically_permutes_the_coded_orientations() -> None:
    """RotMix with 4 rotations (analytic: parts exactly equivariant): a 90-degree turn of the image moves part
    (f, w) to (f, w + 1) at the turned position."""
    images, edges = _blobs(8, seed=1), Edges()
    layer = Mixture(3, patch_size=4, pool=1, rotations=4, transform="analytic", iterations=3,
                    patches_per_image=10, min_edges=1).fit(images, edges)  # fmt: skip
    codes = layer.code(edges(images)).view(8, 3, 4, 17, 17)
    turned = layer.code(edges(torch.rot90(images, -1, dims=(-2, -1)))).view(8, 3, 4, 17, 17)
    expected = torch.rot90(codes, -1, dims=(-2, -1)).roll(1, dims=2)
    assert (turned == expected).float().mean() > 0.99


def test_recomputed_complete_samples_start_with_the_untransformed_patch() -> None:
    images, edges = _blobs(4, seed=2), Edges()
    layer = Mixture(2, patch_size=6, rotations=4, iterations=1, patches_per_image=6, min_edges=0)
    generator = torch.Generator().manual_seed(0)
    complete = layer.complete_patches(images, edges, generator)
    plain = Mixture(2, patch_size=6, iterations=1, patches_per_image=6, min_edges=0).complete_patches(
        images, edges, torch.Generator().manual_seed(0)
    )
    assert torch.equal(complete[:, 0], plain[:, 0])
    # The 90-degree block is the patch of the turned image (bilinear at exact pixel positions).
    assert (complete[:, 1] != complete[:, 0]).any()


# ---------------------------------------------------------------------------------------------- networks
def _digits(count: int = 60, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    from pixelwise.data.digits import font_digits

    return font_digits(count, seed=seed)


def test_a_tiny_plain_net_classifies_fonts_and_round_trips_its_checkpoint(tmp_path: Path) -> None:
    images, labels = _digits(80)
    config = PartsNetConfig.for_model("plain", parts=12, patches_per_image=8, iterations=4)
    net = PartsNet(config).fit_parts(images)
    net.fit_top(net.features(images), labels)
    scores = net.scores(net.features(images))
    assert float((scores.argmax(1) == labels).float().mean()) > 0.5
    path = net.save(tmp_path / "net.safetensors")
    loaded, meta = PartsNet.load(path)
    assert meta["model"]["kind"] == "parts-net" and loaded.config == config
    assert torch.equal(loaded.scores(loaded.features(images)), scores)


def test_class_models_with_latent_rotation_take_the_best_pose() -> None:
    images, labels = _digits(40, seed=1)
    config = PartsNetConfig.for_model("oriented", parts=3, rotations=4, class_rotations=4, patches_per_image=4,
                                      iterations=2)  # fmt: skip
    net = PartsNet(config).fit_parts(images)
    complete = net.complete_features(images)
    assert complete.shape[:2] == (40, 4) and torch.equal(complete[:, 0], net.features(images))
    net.fit_top(complete, labels)
    assert net.class_mu.shape == (10, 4, complete.shape[-1])
    poses = net.poses(complete[:, 0], labels)
    assert poses.min() >= 0 and poses.max() < 4


def test_bad_input_is_refused_with_the_fix() -> None:
    images, labels = _digits(30)
    net = PartsNet(PartsNetConfig.for_model("plain", parts=4, patches_per_image=4, iterations=1)).fit_parts(
        images
    )
    with pytest.raises(ValueError, match="resize them to 28x28"):
        net.features(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="convert them to grey"):
        net.features(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="--transform recompute"):
        PartsNetConfig.for_model("oriented", transform="analytic", rotations=16)
    with pytest.raises(ValueError, match="every class needs one"):
        net.fit_top(net.features(images[labels < 5]), labels[labels < 5])


def test_circular_correlation_ignores_a_constant_offset() -> None:
    angles = torch.rand(200, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
    assert circular_correlation(angles, (angles + 1.3) % (2 * math.pi)) == pytest.approx(1.0, abs=1e-9)
    assert abs(circular_correlation(angles, torch.rand(200) * 2 * math.pi)) < 0.3


def test_parts_fit_eval_show_command_line(tmp_path: Path, capsys) -> None:
    run = tmp_path / "parts"
    flags = ["--data", "fonts:120", "--parts", "8", "--patches-per-image", "6", "--iterations", "3"]
    assert main(["parts", "fit", *flags, "--output", str(run), "--labels-per-class", "5"]) == 0
    assert (run / "parts-net.safetensors").is_file() and (run / "parts.png").is_file()
    assert main(["parts", "eval", str(run)]) == 0
    record = json.loads((run / "eval.json").read_text())
    assert record["images"] == 40 and 0 <= record["error"] < 0.9  # 30% of 120, the fitted run's split
    assert main(["parts", "show", str(run), "--output", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").is_file()
    capsys.readouterr()
    assert main(["parts", "fit", *flags, "--model", "oriented", "--rotations", "6", "--transform", "analytic",
                 "--output", str(tmp_path / "bad")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--transform recompute" in err and "Traceback" not in err
