"""The two-part joint depth + segmentation model (Mostajabi thesis §5.5.2): gradients through part 2's inputs,
the masked seg loss on depth-only images, the loss balance, the labelled-batch sampler and the arms."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pixelwise.methods.joint import (
    TERMS,
    BalancedTerms,
    JointConfig,
    JointModel,
    JointModelConfig,
    JointTask,
    LabelledBatchSampler,
    run_joint,
)
from pixelwise.methods.joint.loss import masked_seg_loss

K = 3


def _model(arm: str = "two-part", detach: bool = False, arch: str = "zoomout") -> JointModel:
    """A joint model whose zero-initialised layers (FCN scores, the zoom-out depth output, Long §3.3.4) are
    perturbed, as after some training: at exactly zero no gradient would pass them."""
    torch.manual_seed(0)
    parts = 1 if arm == "single-part" else 2
    model = JointModel(JointModelConfig(arch, "resnet18", K, 32, 8, parts, detach, 2.0, 1.0, arm)).train()
    with torch.no_grad():
        for part in (model.part1, model.part2):
            if part is None:
                continue
            if arch == "zoomout":
                part.head.classifiers["depth"][-1].weight.normal_(0, 0.1)
            else:
                for head in part.head.values():
                    for score in head.scores.values():
                        score.weight.normal_(0, 0.1)
    return model


def _batch(
    n: int = 2, has_seg: tuple[bool, ...] = (True, False)
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(n, 3, 32, 32, generator=generator)
    targets = {
        "seg": torch.randint(0, K, (n, 32, 32), generator=generator),
        "depth": torch.rand(n, 1, 32, 32, generator=generator) * 20 + 1,
        "has_seg": torch.tensor(has_seg),
    }
    return images, targets


def _task(arm: str = "two-part") -> JointTask:
    from pixelwise.data.info import DatasetInfo

    task = JointTask(JointConfig(arm=arm))
    task.info = DatasetInfo("toy", tuple(f"c{i}" for i in range(K)), ((0, 0, 0),) * K)
    return task


def _grad(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


def _heads(part: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return dict(part.head.classifiers.items())


@pytest.mark.parametrize("arch", ["zoomout", "fcn8s"])
def test_part2s_loss_reaches_part1_through_its_inputs(arch: str) -> None:
    for detach in (False, True):
        model = _model(detach=detach, arch=arch)
        if (
            arch != "zoomout"
        ):  # FCN score layers start at zero (Long §3.3.4): nothing would depend on the input yet
            with torch.no_grad():
                for head in [*model.part1.head.values(), *model.part2.head.values()]:
                    for score in head.scores.values():
                        score.weight.normal_(0, 0.1)
        images, _ = _batch()
        outputs = model(images)
        (outputs["depth"].sum() + outputs["seg"].sum()).backward()  # part 2's outputs only
        heads = _heads(model.part1) if arch == "zoomout" else dict(model.part1.head.items())
        for name, head in heads.items():
            if detach:
                assert _grad(head) == 0, name  # --detach: part 2's losses stop at its inputs
            else:
                assert _grad(head) > 0, name  # the probabilities and log depth part 2 read carry it back
        assert (_grad(model.part1.backbone) > 0) != detach


def test_depth_only_images_train_no_seg_head_but_the_backbone() -> None:
    model = _model()
    task = _task()
    images, targets = _batch(2, (False, False))  # every image depth-only
    loss = model.balance(task.terms(model(images, has_seg=targets["has_seg"]), targets))
    loss.backward()
    for part in (model.part1, model.part2):
        assert (
            _grad(_heads(part)["seg"]) == 0
        )  # the seg heads ran on detached weights and their loss is masked
        assert _grad(_heads(part)["depth"]) > 0
    assert _grad(model.part1.backbone) > 0  # part 1's seg output still carries part 2's depth loss back
    # the masked seg loss ignores depth-only images whatever labels they hold
    logits = torch.randn(2, K, 8, 8, requires_grad=True)
    labels = torch.randint(0, K, (2, 8, 8))
    has_seg = torch.tensor([True, False])
    value = masked_seg_loss(logits, labels, has_seg, 255)
    other = labels.clone()
    other[1] = (other[1] + 1) % K
    assert torch.equal(value, masked_seg_loss(logits, other, has_seg, 255))
    value.backward()
    assert logits.grad[1].abs().sum() == 0 and logits.grad[0].abs().sum() > 0
    assert masked_seg_loss(logits, labels, torch.tensor([False, False]), 255) == 0


def test_a_mixed_batch_gives_the_seg_head_the_labelled_images_gradient_only() -> None:
    model = _model()
    images, targets = _batch(2, (True, False))
    mixed = model(images, has_seg=targets["has_seg"])
    mixed["part1_seg"][0].sum().backward()  # labelled row: the head's weights learn
    assert _grad(_heads(model.part1)["seg"]) > 0
    model.zero_grad()
    mixed = model(images, has_seg=targets["has_seg"])
    mixed["part1_seg"][1].sum().backward()  # depth-only row: only the network below the head
    assert _grad(_heads(model.part1)["seg"]) == 0 and _grad(model.part1.backbone) > 0
    with torch.no_grad():  # the frozen pass computes the same values
        plain = model.eval()(images)
        frozen = model(images, has_seg=torch.tensor([False, False]))
    torch.testing.assert_close(plain["seg"], frozen["seg"])


def test_loss_weights_equalise_the_running_means_and_live_in_the_checkpoint() -> None:
    balance = BalancedTerms("two-part").train()
    balance.warmup_calls = 3
    batches = [
        torch.tensor([2.0, 0.5, 1.5, 0.2]),
        torch.tensor([4.0, 0.7, 2.5, 0.4]),
        torch.tensor([3.0, 0.6, 2.0, 0.3]),
    ]
    means = torch.stack(batches).mean(0)
    for values in batches:
        assert balance(values) == pytest.approx(float(values.sum()))  # unit weights during the warm-up
    weighted = balance.weighted_means(means)
    torch.testing.assert_close(weighted, weighted.mean().expand(4))
    assert float(balance.weights.sum()) == pytest.approx(4.0)  # the total keeps its scale
    state = balance.state_dict()
    assert {"weights", "sums", "count", "estimates"} <= set(state)
    restored = BalancedTerms("two-part")
    restored.load_state_dict(state)
    assert torch.equal(restored.weights, balance.weights)
    # the baseline balances its two terms; 2x-seg doubles the seg term after balancing
    baseline, doubled = BalancedTerms("baseline").train(), BalancedTerms("2x-seg").train()
    for b in (baseline, doubled):
        b.warmup_calls = 3
        for values in batches:
            b(values)
    assert baseline.weights[:2].tolist() == [0.0, 0.0]
    values = torch.tensor([1.0, 1.0, 1.0, 1.0])
    assert float(doubled(values)) == pytest.approx(float(baseline.weights[2] + 2 * baseline.weights[3]))


def test_baseline_part1_heads_learn_only_through_part2() -> None:
    task = _task("baseline")
    images, targets = _batch(2, (True, True))
    assert task.terms.__self__ is task
    for detach in (False, True):
        model = _model("baseline", detach=detach)
        model.balance(task.terms(model(images, has_seg=targets["has_seg"]), targets)).backward()
        for name, head in _heads(model.part1).items():
            # no loss reads part 1's outputs directly: with part 2's inputs detached they learn nothing
            assert (_grad(head) > 0) != detach, name
    assert model.balance.active.tolist() == [0.0, 0.0, 1.0, 1.0]
    assert TERMS == ("part1_depth", "part1_seg", "depth", "seg")


def test_single_part_has_one_network_with_two_heads() -> None:
    model = _model("single-part")
    assert model.part2 is None
    outputs = model(torch.rand(2, 3, 32, 32))
    assert set(outputs) == {"seg", "depth"} and outputs["seg"].shape == (2, K, 32, 32)


def test_the_sampler_puts_a_labelled_image_in_every_batch_and_covers_the_epoch() -> None:
    labelled = [i % 7 == 0 for i in range(45)]  # 7 labelled, 38 depth-only
    sampler = LabelledBatchSampler(labelled, 4, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) and all(len(b) == 4 for b in batches)
    assert all(any(labelled[i] for i in batch) for batch in batches)
    assert set().union(*map(set, batches)) == set(range(45))  # every image at least once per epoch
    assert list(LabelledBatchSampler(labelled, 4, seed=3)) == batches  # deterministic per seed
    sampler.set_epoch(1)
    assert list(sampler) != batches  # reshuffled per epoch
    assert list(LabelledBatchSampler(labelled, 4, seed=4)) != batches
    # two processes: equal lengths, each batch labelled, together exactly one process's epoch
    ranks = [LabelledBatchSampler(labelled, 4, rank=r, world_size=2, seed=3) for r in range(2)]
    shards = [list(r) for r in ranks]
    assert len(shards[0]) == len(shards[1]) == len(ranks[0])
    assert all(any(labelled[i] for i in b) for shard in shards for b in shard)
    whole = ranks[0].epoch_batches()
    assert shards[0] == whole[0::2] and shards[1] == whole[1::2]
    assert set().union(*map(set, shards[0] + shards[1])) == set(range(45))
    with pytest.raises(ValueError, match="labels"):
        LabelledBatchSampler([False] * 4, 2)


def test_joint_command_trains_both_phases_and_its_checkpoint_rebuilds(tmp_path: Path) -> None:
    from pixelwise.engine.checkpoint import load_checkpoint
    from pixelwise.methods.kinds import build_model_from_checkpoint

    config = JointConfig(data="synthetic:12:24x32:hard", val_data="synthetic:16:24x32:hard", crop=[24, 32],
                         batch_size=4, epochs=1, head_width=8, labels_fraction=0.25, balance_epochs=1,
                         phase2_epochs=1, threads=1, num_examples=1, output=str(tmp_path / "j"))  # fmt: skip
    scores = run_joint(config)
    assert {"rmse", "mean_iou", "part1_rmse", "part1_mean_iou"} <= set(scores)
    assert list((tmp_path / "j" / "phase2" / "examples").rglob("joint_00.png"))  # depth, error and label maps
    phase1 = load_checkpoint(tmp_path / "j" / "phase1" / "last.safetensors")
    assert phase1.meta["labelled_images"] == 3 and phase1.meta["training_images"] == 12
    assert int(phase1.model_state["balance.estimates"]) == 1  # weights set after the first epoch
    phase2 = load_checkpoint(tmp_path / "j" / "phase2" / "last.safetensors")
    assert phase2.meta["training_images"] == 3  # the labelled images only
    torch.testing.assert_close(phase2.model_state["balance.weights"], phase1.model_state["balance.weights"])
    for key in ("log_depth_mean", "log_depth_std"):  # part 2 reads depth standardised as in phase 1
        assert phase2.meta["model"][key] == phase1.meta["model"][key]
    model, meta = build_model_from_checkpoint(tmp_path / "j" / "phase2", expect="segmentation")
    assert meta["model"]["kind"] == "depth-seg"
    outputs = model(torch.rand(1, 3, 24, 32))
    assert outputs["depth"].shape == (1, 1, 24, 32) and bool((outputs["depth"] > 0).all())
    from pixelwise.cli.main import main  # eval and predict read its seg output

    data = ["--data", "synthetic:16:24x32:hard", "--output", str(tmp_path / "eval")]
    assert main(["eval", "--checkpoint", str(tmp_path / "j" / "phase2"), *data]) == 0
    from PIL import Image

    Image.new("RGB", (32, 24), (90, 120, 60)).save(tmp_path / "frame.png")
    run = str(tmp_path / "j" / "phase2")
    assert (
        main(
            ["predict", "--checkpoint", run, "--output", str(tmp_path / "pred"), str(tmp_path / "frame.png")]
        )
        == 0
    )
    assert {"frame_labels.png", "frame_depth.png", "frame_depth_mm.png"} <= {
        p.name for p in (tmp_path / "pred").iterdir()
    }
