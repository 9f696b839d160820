"""Mix-and-Match (Zhan et al. 2018): patch sampler, class-wise connected graph, loss, task, CLI and diagnostic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pixelwise.cli.main import main
from pixelwise.engine.checkpoint import load_checkpoint, save_checkpoint
from pixelwise.methods.colorization import ColorizationModel, ColorizerConfig
from pixelwise.methods.mixmatch import (
    MixMatchConfig,
    MixMatchModel,
    MixMatchTask,
    PatchSampler,
    centroid_diagnostic,
    class_wise_connected_triplets,
    perceptual_distance,
    perceptual_features,
    random_triplets,
    sample_patches,
    triplet_loss,
)
from pixelwise.methods.mixmatch.config import TuneConfig
from pixelwise.methods.segmentation import SegmentationTask, TrainConfig

TINY = "synthetic:16:48x64"
BACKBONE_PREFIX = "taps.backbone."


# ----------------------------------------------------------------------------------------------- graph
def _components(nodes: list[int], edges: list[tuple[int, int]]) -> int:
    parent = {n: n for n in nodes}

    def find(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a, b in edges:
        parent[find(a)] = find(b)
    return len({find(n) for n in nodes})


@pytest.mark.parametrize("seed", range(5))
def test_graph_every_node_is_an_anchor_and_each_class_is_connected(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 5, (60,), generator=generator)
    triplets = class_wise_connected_triplets(labels, generator)
    assert triplets.shape == (60, 3)
    assert sorted(triplets[:, 0].tolist()) == list(range(60))  # N nodes -> N triplets, each node an anchor
    anchor, positive, negative = triplets.T
    assert torch.equal(labels[anchor], labels[positive]) and (labels[anchor] != labels[negative]).all()
    assert (anchor != positive).all()  # no label is unique here, so no node is its own positive
    edges = list(zip(anchor.tolist(), positive.tolist()))
    for label in labels.unique().tolist():  # the attractive edges of a class span all its nodes
        nodes = (labels == label).nonzero().flatten().tolist()
        assert _components(nodes, [e for e in edges if e[0] in nodes]) == 1


def test_graph_edges_of_a_class_form_a_spanning_tree_in_insertion_order() -> None:
    labels = torch.tensor([0] * 10 + [1] * 6)
    triplets = class_wise_connected_triplets(labels, torch.Generator().manual_seed(3))
    # All but the first node of a class attach to a distinct earlier node: n - 1 edges, connected, so a tree
    # (the first node's own positive adds one more edge, a duplicate or a cycle).
    for label, size in ((0, 10), (1, 6)):
        rows = triplets[labels[triplets[:, 0]] == label]
        edges = {tuple(sorted(e)) for e in rows[:, :2].tolist()}
        assert size - 1 <= len(edges) <= size


def test_graph_unique_label_is_its_own_positive_and_single_class_gives_nothing() -> None:
    labels = torch.tensor([2, 0, 0, 0, 1, 1])
    triplets = class_wise_connected_triplets(labels, torch.Generator().manual_seed(0))
    unique = triplets[triplets[:, 0] == 0][0]
    assert unique[1] == 0 and labels[unique[2]] != 2  # duplicated as its own positive (§4)
    assert len(triplets) == 6
    assert class_wise_connected_triplets(torch.tensor([4, 4, 4])).shape == (0, 3)  # one class: no gradient
    assert class_wise_connected_triplets(torch.tensor([], dtype=torch.long)).shape == (0, 3)
    pair = class_wise_connected_triplets(torch.tensor([0, 1]))
    assert pair.tolist() in ([[0, 0, 1], [1, 1, 0]], [[1, 1, 0], [0, 0, 1]])


def test_random_triplets_are_disjoint_same_class_pairs_with_a_negative() -> None:
    labels = torch.tensor([0] * 7 + [1] * 4 + [2] * 1)
    triplets = random_triplets(labels, torch.Generator().manual_seed(0))
    assert triplets.shape == (3 + 2 + 0, 3)  # sum floor(n_c / 2)
    anchor, positive, negative = triplets.T
    assert torch.equal(labels[anchor], labels[positive]) and (labels[anchor] != labels[negative]).all()
    pairs = triplets[:, :2].flatten().tolist()
    assert len(set(pairs)) == len(pairs)  # disjoint: no node in two pairs
    assert random_triplets(torch.tensor([1, 1, 1, 1])).shape == (0, 3)


# ----------------------------------------------------------------------------------------------- sampler
def _labels_with_void(generator: torch.Generator) -> torch.Tensor:
    labels = torch.randint(0, 4, (3, 40, 50), generator=generator)
    labels[:, :10] = 255  # a void band
    labels[1, :, 30:] = 255
    return labels


def test_patches_are_labelled_by_their_centre_and_never_centred_on_ignore() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = _labels_with_void(generator)
    images = torch.rand(3, 3, 40, 50, generator=generator)
    sampler = PatchSampler(patches_per_image=6, sides=(8, 20), size=12)
    patches = sample_patches(images, labels, sampler, generator)
    assert len(patches) == 18 and patches.crops.shape == (18, 3, 12, 12)
    assert torch.equal(patches.image_index.bincount(), torch.tensor([6, 6, 6]))  # pooled over the B images
    top, left, side = patches.boxes.T
    centre = labels[patches.image_index, top + side // 2, left + side // 2]
    assert torch.equal(centre, patches.labels) and (patches.labels != 255).all()
    assert ((side >= 8) & (side <= 20)).all()


def test_overlap_rule_is_honoured_and_refill_reaches_k() -> None:
    generator = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 3, (2, 80, 80), generator=generator)
    sampler = PatchSampler(patches_per_image=5, sides=(10, 20), size=8)
    patches = sample_patches(torch.rand(2, 3, 80, 80), labels, sampler, generator)
    assert not patches.refilled.any()  # plenty of room: the rule alone gives K
    for b in range(2):
        covered = torch.zeros(80, 80, dtype=torch.bool)
        for top, left, side in patches.boxes[patches.image_index == b].tolist():
            window = (slice(max(top, 0), top + side), slice(max(left, 0), left + side))
            assert covered[window].float().mean() <= 0.6  # covered share of its area inside the image
            covered[window] = True
    # A tiny image and big patches: the rule rejects most candidates and the refill still gives K per image.
    crowded = sample_patches(torch.rand(1, 3, 12, 12), labels[:1, :12, :12], PatchSampler(8, (12, 12), 4))
    assert len(crowded) == 8 and crowded.refilled.any() and not crowded.refilled[0]


def test_crops_are_the_pixels_and_zero_outside_the_image() -> None:
    generator = torch.Generator().manual_seed(2)
    images = torch.rand(2, 3, 20, 24, generator=generator) + 0.5  # no zero inside the images
    labels = torch.randint(0, 3, (2, 20, 24), generator=generator)
    patches = sample_patches(
        images, labels, PatchSampler(10, (9, 9), 9), generator
    )  # side == size: no resize
    padded = F.pad(images, (9, 9, 9, 9))
    for crop, b, (top, left, side) in zip(patches.crops, patches.image_index, patches.boxes.tolist()):
        torch.testing.assert_close(crop, padded[b, :, top + 9 : top + 9 + side, left + 9 : left + 9 + side])
    assert (patches.crops == 0).any()  # some crop leaves the image (centres near the border)


def test_background_share_and_images_without_labels() -> None:
    labels = torch.zeros(2, 30, 30, dtype=torch.long)
    labels[:, 10:, :] = 1
    labels[1] = 255  # an all-void image gives no patch
    images = torch.rand(2, 3, 30, 30)
    for share, expected in ((0.0, 1), (1.0, 0)):
        sampler = PatchSampler(6, (4, 6), 4, background_class=0, background_share=share)
        patches = sample_patches(images, labels, sampler, torch.Generator().manual_seed(0))
        assert len(patches) == 6 and (patches.labels == expected).all()
    empty = sample_patches(images[1:], labels[1:], PatchSampler(), torch.Generator())
    assert len(empty) == 0 and empty.crops.shape[1:] == (3, 64, 64)


# ----------------------------------------------------------------------------------------------- loss
def test_triplet_loss_on_a_hand_made_example() -> None:
    embeddings = perceptual_features(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [1.0, 1.0]]))
    triplets = torch.tensor([[0, 1, 2], [3, 0, 2]])
    # (0, 1, 2): D(a,p) = 0, D(a,n) = 2 -> 0.1; (3, 0, 2): D(a,p) = D(a,n) = 2 - sqrt(2) -> 2.1.
    assert torch.isclose(triplet_loss(embeddings, triplets, 2.1), torch.tensor(1.1))
    assert torch.isclose(triplet_loss(embeddings, triplets, 0.05), torch.tensor(0.025))  # first hinge is off
    dist = perceptual_distance(embeddings[[3]], embeddings[[0]])
    assert torch.isclose(dist, torch.tensor([2 - 2**0.5]))


def test_features_flatten_the_whole_blob_and_alpha_never_saturates() -> None:
    blob = torch.rand(6, 4, 2, 3)  # non-negative, like pool5 after ReLU
    features = perceptual_features(blob)
    assert features.shape == (6, 24) and torch.allclose(features.norm(dim=1), torch.ones(6))
    distances = perceptual_distance(features[:, None], features[None]).flatten()
    assert distances.max() <= 2.0 + 1e-6  # so D(a,p) - D(a,n) + 2.1 >= 0.1: every hinge active
    triplets = torch.tensor([[0, 1, 2], [3, 4, 5]])
    hinges = perceptual_distance(features[[0, 3]], features[[1, 4]]) - perceptual_distance(
        features[[0, 3]], features[[2, 5]]
    )
    assert torch.isclose(triplet_loss(features, triplets), (hinges + 2.1).mean())
    leaf = torch.rand(3, 5, requires_grad=True)
    zero = triplet_loss(leaf, torch.zeros(0, 3, dtype=torch.long))
    zero.backward()
    assert zero == 0 and leaf.grad is not None


# ----------------------------------------------------------------------------------------------- model, diagnostic
def test_feature_layer_is_pool5_for_vgg_and_the_last_stage_for_resnet() -> None:
    assert MixMatchModel(MixMatchConfig("resnet18")).config.feature_layer == "layer4"
    vgg = MixMatchModel(MixMatchConfig("vgg16_narrow", in_channels=1))
    assert vgg.config.feature_layer == "pool5" and vgg.config.to_dict()["kind"] == "mixmatch"
    assert not any(p.requires_grad for p in vgg.backbone.fc.parameters())  # fc6/fc7 are past pool5
    embeddings = vgg(torch.rand(3, 3, 32, 32))  # RGB in, reduced to grey by the input normaliser
    assert embeddings.shape == (3, vgg.backbone.channels["pool5"]) and (embeddings >= 0).all()


def test_diagnostic_on_perfectly_separated_and_on_identical_features() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 10 + [2] * 10)
    centres = torch.eye(4)[[0, 3]]
    separated = perceptual_features(centres[labels // 2] + 0.01 * torch.rand(20, 4, generator=generator))
    scores = centroid_diagnostic(separated, labels, num_classes=3)
    assert scores["centroid_acc"] == 1.0 and scores["centroid_mean_class_acc"] == 1.0
    assert scores["intra_inter_ratio"] < 0.01 and scores["classes"] == 2 and scores["patches"] == 20
    assert scores["centroid_class_acc"][1] != scores["centroid_class_acc"][1]  # absent class: NaN
    same = centroid_diagnostic(torch.ones(20, 4) / 2, labels, num_classes=3)
    assert same["intra_distance"] == pytest.approx(0.0) and same["inter_distance"] == pytest.approx(0.0)
    # Pairwise means from sums equal the brute-force means.
    x = perceptual_features(torch.rand(20, 4, generator=generator))
    d = perceptual_distance(x[:, None], x[None])
    same_class = labels[:, None] == labels[None]
    off_diagonal = ~torch.eye(20, dtype=torch.bool)
    scores = centroid_diagnostic(x, labels, num_classes=3)
    assert scores["intra_distance"] == pytest.approx(d[same_class & off_diagonal].mean().item(), rel=1e-5)
    assert scores["inter_distance"] == pytest.approx(d[~same_class].mean().item(), rel=1e-5)


# ----------------------------------------------------------------------------------------------- end to end
def _tune_flags(output: Path, init: Path | None) -> list[str]:
    flags = ["--data", TINY, "--output", str(output), "--epochs", "1", "--batch-size", "4"]
    flags += [
        "--patches-per-image",
        "4",
        "--patch-sides",
        "8",
        "24",
        "--patch-size",
        "16",
        "--crop",
        "48",
        "64",
    ]
    flags += ["--device", "cpu", "--num-examples", "1", "--lr", "0.001"]
    return flags + (["--init-from", str(init)] if init else [])


@pytest.fixture(scope="module")
def colorization_checkpoint(tmp_path_factory) -> Path:
    """A (random) grey colorization model saved as `pixelwise pretrain` would: M&M's usual starting point."""
    torch.manual_seed(0)
    model = ColorizationModel(ColorizerConfig(hidden=8))
    path = tmp_path_factory.mktemp("colorization") / "last.safetensors"
    save_checkpoint(path, model.state_dict(), {"model": model.config.to_dict()})
    return path


def test_tune_infers_grey_input_and_loads_the_pretrained_backbone(colorization_checkpoint: Path) -> None:
    task = MixMatchTask(TuneConfig(data=TINY, init_from=str(colorization_checkpoint), epochs=8))
    assert task.config.step_epochs == [6]  # lr / 10 at 75% (Zhan §4: 6k of 8k iterations)
    task.datasets()
    model, lr = task.build_model()
    assert model.config.in_channels == 1 and lr == 0.01
    state = load_checkpoint(colorization_checkpoint).model_state
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, state[BACKBONE_PREFIX + key])
    batch = [task.datasets()[0][i] for i in range(4)]
    images, labels = torch.stack([b[0] for b in batch]), torch.stack([b[1]["seg"] for b in batch])
    loss = task.loss(model, images, {"seg": labels})
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert model.backbone.layer4[-1].conv2.weight.grad is not None


def test_tune_cli_end_to_end_then_train_init_from_and_diagnose(
    colorization_checkpoint: Path, tmp_path: Path
) -> None:
    run = tmp_path / "tune"
    assert main(["tune", "--method", "mixmatch", *_tune_flags(run, colorization_checkpoint)]) == 0
    tuned = load_checkpoint(run / "last.safetensors")
    assert tuned.meta["model"]["kind"] == "mixmatch" and tuned.meta["model"]["in_channels"] == 1
    assert (run / "examples" / "epoch001" / "patches.png").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["centroid_acc"] <= 1.0 and metrics["patches"] > 0
    # Tuning changed the backbone, and segmentation training's --init-from takes exactly that backbone.
    before = load_checkpoint(colorization_checkpoint).model_state
    changed = [k for k, v in tuned.model_state.items() if k in before and not torch.equal(v, before[k])]
    assert any(k.startswith(BACKBONE_PREFIX + "layer4") for k in changed)
    task = SegmentationTask(TrainConfig(data=TINY, init_from=str(run), in_channels=1, arch="fcn32s"))
    task.datasets()
    segmenter, _ = task.build_model()
    for key, value in segmenter.backbone.state_dict().items():
        assert torch.equal(value, tuned.model_state[BACKBONE_PREFIX + key]), key
    train_flags = ["--data", TINY, "--output", str(tmp_path / "seg"), "--epochs", "1", "--batch-size", "4"]
    train_flags += ["--crop", "48", "64", "--device", "cpu", "--arch", "fcn32s", "--num-examples", "0"]
    assert main(["train", *train_flags, "--init-from", str(run), "--in-channels", "1"]) == 0
    # The diagnostic scores the tuned backbone and, by default, its --init-from checkpoint (before).
    report = tmp_path / "diagnose.json"
    args = ["tune", "diagnose", "--checkpoint", str(run), "--data", TINY, "--output", str(report)]
    assert main([*args, "--device", "cpu"]) == 0
    scores = json.loads(report.read_text())["scores"]
    assert set(scores) == {f"before:{colorization_checkpoint}", str(run)}
    assert all(0.0 <= s["centroid_acc"] <= 1.0 and s["patches"] > 0 for s in scores.values())


def test_tune_from_random_init_with_random_triplets(tmp_path: Path) -> None:
    run = tmp_path / "random"
    flags = _tune_flags(run, None) + ["--sampler", "random", "--eval-every", "0"]
    assert main(["tune", *flags]) == 0
    tuned = load_checkpoint(run / "last.safetensors")
    assert tuned.meta["model"]["in_channels"] == 3 and tuned.meta["config"]["sampler"] == "random"
