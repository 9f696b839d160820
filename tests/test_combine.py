"""Gradient combination of several losses on shared weights (Larsson §4.5): sum, NormSGD, separate, round-robin."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from pixelwise.engine.checkpoint import load_checkpoint
from pixelwise.engine.combine import GradientCombiner, normsgd_freeze_step
from pixelwise.engine.trainer import Trainer, TrainingError
from pixelwise.methods.segmentation import SegmentationTask, TrainConfig, segmentation_loss


class Toy(nn.Module):
    """A shared 'backbone' and one head per task."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
        self.heads = nn.ModuleDict({"a": nn.Linear(8, 1), "b": nn.Linear(8, 1)})


def task_gradients(model: Toy, combiner: GradientCombiner, scales: dict[str, float], step: int = 0) -> dict:
    inputs = torch.linspace(-1, 1, 12).view(3, 4)
    grads = {}
    for name in combiner.active(step):
        loss = scales[name] * model.heads[name](model.backbone(inputs)).pow(2).mean()
        loss.backward()
        grads[name] = combiner.take_gradients()
    return grads


def one_step(mode: str, scales: dict[str, float], steps: int = 1, **options) -> dict[str, torch.Tensor]:
    model = Toy()
    params = list(model.parameters())
    combiner = GradientCombiner(mode, params, model.backbone.parameters(), ["a", "b"], **options)
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    for step in range(steps):
        combiner.step(optimizer, task_gradients(model, combiner, scales), step)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("factor", [2.0**-7, 2.0**9])
def test_normsgd_update_is_bit_identical_when_a_loss_is_scaled_by_a_power_of_two(factor: float) -> None:
    reference = one_step("normsgd", {"a": 1.0, "b": 1.0}, steps=3)
    scaled = one_step("normsgd", {"a": factor, "b": 1.0}, steps=3)
    for key in reference:
        assert torch.equal(reference[key], scaled[key]), key


def test_normsgd_is_invariant_to_any_loss_scale_and_sum_is_not() -> None:
    """Any c > 0: equal to float rounding (autograd rounds c * g differently from g for c not a power of 2)."""
    reference = one_step("normsgd", {"a": 1.0, "b": 1.0}, steps=3)
    scaled = one_step("normsgd", {"a": 37.3, "b": 1e-3}, steps=3)
    for key in reference:
        torch.testing.assert_close(scaled[key], reference[key], rtol=1e-5, atol=1e-7)
    plain = one_step("sum", {"a": 1.0, "b": 1.0}, steps=3)
    plain_scaled = one_step("sum", {"a": 37.3, "b": 1e-3}, steps=3)
    assert not torch.allclose(plain["backbone.0.weight"], plain_scaled["backbone.0.weight"], atol=1e-4)


def test_each_normalised_task_gradient_has_mean_absolute_value_one_on_the_shared_weights() -> None:
    model = Toy()
    combiner = GradientCombiner("normsgd", list(model.parameters()), model.backbone.parameters(), ["a", "b"])
    grads = task_gradients(model, combiner, {"a": 5.0, "b": 0.01})
    for name, task in grads.items():
        scale = combiner.scale(name, task, 0)
        shared = torch.cat([task[i].flatten() for i in combiner.shared])
        torch.testing.assert_close((shared / scale).abs().mean(), torch.tensor(1.0))


def test_the_statistic_freezes_to_the_mean_of_its_recent_values() -> None:
    model = Toy()
    combiner = GradientCombiner(
        "normsgd", list(model.parameters()), model.backbone.parameters(), ["a", "b"], freeze_at=3
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    seen = []
    for step in range(5):
        grads = task_gradients(model, combiner, {"a": 1.0, "b": 1.0})
        seen.append(combiner.mean_abs(grads["a"]))
        combiner.step(optimizer, grads, step)
    assert combiner.frozen["a"] == pytest.approx(sum(seen[:3]) / 3)
    assert combiner.history["a"] == pytest.approx(seen[:3])  # nothing recorded once frozen
    assert combiner.last_scales["a"] == combiner.frozen["a"]
    assert normsgd_freeze_step(100, 1100) == 200  # warm-up + 10% of the steps to the first drop


def test_round_robin_trains_task_t_over_q_mod_m() -> None:
    model = Toy()
    combiner = GradientCombiner(
        "sum", list(model.parameters()), model.backbone.parameters(), ["a", "b", "c"], round_robin=2
    )
    assert [combiner.active(t) for t in range(7)] == [["a"], ["a"], ["b"], ["b"], ["c"], ["c"], ["a"]]


def test_separate_is_the_mean_of_one_adam_per_task() -> None:
    """Eq. 4.10: g = (1/M) sum_m Adam_m(g_m), each Adam with its own moments; a loss 1000x larger does not
    dominate (Adam is scale free per task)."""
    model = Toy()
    params = list(model.parameters())
    combiner = GradientCombiner("separate", params, model.backbone.parameters(), ["a", "b"])
    optimizer = torch.optim.Adam(params, lr=0.01)
    reference = copy.deepcopy(model)
    twins = {name: copy.deepcopy(model) for name in "ab"}
    adams = {name: torch.optim.Adam(twin.parameters(), lr=0.01) for name, twin in twins.items()}
    for step in range(4):
        grads = task_gradients(model, combiner, {"a": 1.0, "b": 1000.0})
        combiner.step(optimizer, grads, step)
        updates = []
        for name, twin in twins.items():  # Adam_m(g_m) from the reference point, with task m's own state
            with torch.no_grad():
                for mine, ref in zip(twin.parameters(), reference.parameters()):
                    mine.copy_(ref)
            for param, grad in zip(twin.parameters(), grads[name]):
                param.grad = grad
            adams[name].step()
            updates.append([mine - ref for mine, ref in zip(twin.parameters(), reference.parameters())])
        with torch.no_grad():
            for ref, delta_a, delta_b in zip(reference.parameters(), *updates):
                ref.add_((delta_a + delta_b) / 2)
    for mine, ref in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-7)
    assert not optimizer.state  # the shared optimiser's own state stays unused: each task has its own


class TwoLossSegmentation(SegmentationTask):
    """Segmentation twice, the second loss on flipped images and ``factor`` times larger: a multi-loss task."""

    factor = 100.0

    def loss_names(self) -> list[str]:
        return ["plain", "flipped"]

    def losses(
        self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> Iterator[tuple[str, Callable[[], torch.Tensor]]]:
        def plain() -> torch.Tensor:
            return segmentation_loss(net(images)["seg"].float(), targets["seg"], None, 255, 1.0)

        def flipped() -> torch.Tensor:
            logits = net(images.flip(-1))["seg"].float()
            return self.factor * segmentation_loss(logits, targets["seg"].flip(-1), None, 255, 1.0)

        yield "plain", plain
        yield "flipped", flipped


def toy_config(output: Path, **overrides) -> TrainConfig:
    values = dict(data="synthetic:8:48x64", output=str(output), arch="fcn32s", backbone="resnet18", epochs=2,
                  batch_size=4, crop=[48, 64], eval_every=1, num_examples=0, seed=1, optimizer="sgd", lr=0.01,
                  combine="normsgd", normsgd_freeze=3, threads=1)  # fmt: skip
    values.update(overrides)
    return TrainConfig(**values)


@pytest.mark.slow
def test_normsgd_resume_is_exact_and_keeps_the_frozen_statistic(tmp_path: Path) -> None:
    """Two epochs straight == one epoch, stop, resume; the frozen s_m (step 3, in epoch 2) and the per-loss
    values reach the checkpoint and the log."""
    Trainer(toy_config(tmp_path / "straight"), TwoLossSegmentation(toy_config(tmp_path / "straight"))).fit()
    split = toy_config(tmp_path / "split", time_limit=0.0)
    Trainer(split, TwoLossSegmentation(split)).fit()  # stops after epoch 1 (2 steps): live statistics
    first = load_checkpoint(tmp_path / "split" / "last.safetensors").extra_state["combiner"]
    assert first["frozen"] == {} and len(first["history"]["plain"]) == 2
    resumed = toy_config(tmp_path / "split", resume=True)
    Trainer(resumed, TwoLossSegmentation(resumed)).fit()
    a = load_checkpoint(tmp_path / "straight" / "last.safetensors")
    b = load_checkpoint(tmp_path / "split" / "last.safetensors")
    for key in a.model_state:
        assert torch.equal(a.model_state[key], b.model_state[key]), key
    assert a.extra_state["combiner"]["frozen"] == b.extra_state["combiner"]["frozen"]
    assert set(b.extra_state["combiner"]["frozen"]) == {"plain", "flipped"}
    log = (tmp_path / "split" / "log.jsonl").read_text()
    assert '"loss_flipped"' in log and '"scale_plain"' in log


def test_combine_options_are_refused_where_they_cannot_act(tmp_path: Path) -> None:
    from pixelwise.methods.segmentation import segmentation_trainer

    with pytest.raises(TrainingError, match="has one loss"):
        segmentation_trainer(toy_config(tmp_path / "one", combine="normsgd"))
    with pytest.raises(TrainingError, match="--optimizer sgd"):
        config = toy_config(tmp_path / "adam", optimizer="adamw")
        Trainer(config, TwoLossSegmentation(config))


def test_split_weights_a_step_of_one_task_leaves_the_other_groups_weights_untouched() -> None:
    from pixelwise.methods.multiproxy.split import channel_groups, split_weight_masks

    assert [len(g) for g in channel_groups(11, 4)] == [3, 3, 2, 3]
    model = Toy()
    params = list(model.parameters())
    masks = split_weight_masks(model.backbone, ["a", "b"])
    combiner = GradientCombiner("sum", params, model.backbone.parameters(), ["a", "b"], masks=masks)
    optimizer = torch.optim.SGD(params, lr=0.1)
    before = model.backbone[0].weight.detach().clone()
    inputs = torch.linspace(-1, 1, 12).view(3, 4)
    model.heads["a"](model.backbone(inputs)).pow(2).mean().backward()
    combiner.step(optimizer, {"a": combiner.take_gradients("a")}, 0)
    after = model.backbone[0].weight.detach()
    assert torch.equal(after[4:], before[4:])  # task b's rows (output channels 4-7) did not move
    assert not torch.equal(after[:4], before[:4])


def test_a_task_round_robin_reaches_late_does_not_freeze_on_one_value() -> None:
    model = Toy()
    combiner = GradientCombiner("normsgd", list(model.parameters()), model.backbone.parameters(), ["a", "b"],
                                round_robin=20, freeze_at=5)  # fmt: skip
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for step in range(30):
        combiner.step(optimizer, task_gradients(model, combiner, {"a": 1.0, "b": 1.0}, step), step)
    assert "a" in combiner.frozen and len(combiner.history["b"]) == 5 and "b" in combiner.frozen
