"""Task-agnostic distillation (Larsson §4.3): the divergences' math, teachers read before their ReLU, the teacher
statistics and feature subset, and distillation runs whose students initialise segmentation."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pixelwise.cli.distill import register_distill
from pixelwise.engine.checkpoint import load_checkpoint, save_checkpoint
from pixelwise.engine.trainer import Trainer
from pixelwise.methods.colorization import ColorizationModel, ColorizerConfig
from pixelwise.methods.distill import (
    DistillationTask,
    DistillConfig,
    FrozenTeacher,
    StudentConfig,
    StudentModel,
    TeacherSpec,
    ab_divergence,
    ab_divergence_terms,
    ab_loss,
    classic_distillation_loss,
    ensemble_mean,
    feature_subset,
    generalized_kl_loss,
    generalized_kl_terms,
    l2_loss,
    load_teacher,
    stored_distillation,
    top_features,
)
from pixelwise.methods.distill import statistics as stats
from pixelwise.methods.segmentation import init_from_checkpoint
from pixelwise.models import ModelConfig, SegmentationModel, create_backbone
from pixelwise.models.inputs import InputNormalizer

TINY = "synthetic:8:48x64"


def features(seed: int, shape: tuple[int, ...] = (4, 16, 3, 5), spread: float = 1.5) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * spread


def closed_form(y: torch.Tensor, z: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """Eq. 4.6 written out case by case on p = exp(ŷ), q = exp(ẑ), as the thesis prints it."""
    p, q = y.exp(), z.exp()
    a, b = alpha, beta
    if a == 0 and b == 0:
        return 0.5 * (p.log() - q.log()) ** 2
    if a == 0:
        return (q**b * torch.log(q**b / p**b) - q**b + p**b) / b**2
    if b == 0:
        return (p**a * torch.log(p**a / q**a) - p**a + q**a) / a**2
    if a + b == 0:
        return (torch.log(q**a / p**a) + (q**a / p**a) ** -1 - 1) / a**2
    return -(p**a * q**b - a / (a + b) * p ** (a + b) - b / (a + b) * q ** (a + b)) / (a * b)


CASES = [(0.25, 0.0), (1.0, 0.0), (0.5, 0.3), (-0.7, 0.2), (0.1, 0.9), (0.4, -0.4), (-1.0, 1.0), (0.0, 0.6),
         (0.0, -0.3), (0.0, 0.0), (-0.2, -0.5), (2.0, -1.0)]  # fmt: skip


# ----------------------------------------------------------------------------------------------- divergences
@pytest.mark.parametrize(("alpha", "beta"), CASES)
def test_ab_divergence_equals_each_closed_form_of_eq_4_6(alpha: float, beta: float) -> None:
    y, z = features(0), features(1)
    expected = closed_form(y, z, alpha, beta)
    torch.testing.assert_close(ab_divergence_terms(y, z, alpha, beta), expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ab_divergence(y, z, alpha, beta), expected.sum(dim=1))
    torch.testing.assert_close(ab_loss(y, z, alpha, beta), expected.mean())


@pytest.mark.parametrize(
    ("near", "at"),
    [
        ((0.25, 1e-5), (0.25, 0.0)),  # β -> 0
        ((1e-5, 0.4), (0.0, 0.4)),  # α -> 0
        ((-0.3 + 1e-5, 0.3), (-0.3, 0.3)),  # α -> -β
        ((1e-5, 1e-5), (0.0, 0.0)),  # both -> 0 along α = β
        ((1e-5, -2e-5), (0.0, 0.0)),  # both -> 0 off the diagonals
        ((1e-9, 1e-9), (0.0, 0.0)),
    ],
)
def test_ab_divergence_is_continuous_into_its_special_cases(near: tuple, at: tuple) -> None:
    y, z = features(2, spread=1.0), features(3, spread=1.0)
    # d is smooth in (α, β): a step of h moves it by O(h) relative to its size, not by a jump
    step = max(abs(near[0] - at[0]), abs(near[1] - at[1]))
    close = ab_divergence_terms(y, z, *near)
    exact = ab_divergence_terms(y, z, *at)
    assert ((close - exact).abs() <= 50 * step * exact.abs() + 1e-12).all()
    assert torch.isfinite(close).all() and (close > 0).all()


def test_beta_zero_is_t_squared_generalized_kl_and_the_new_loss() -> None:
    """(α, 0) with α = 1/T: d = T² [e^{ŷ/T}(ŷ-ẑ)/T - e^{ŷ/T} + e^{ẑ/T}], so (1/C) D_AB = L_new (Eq. 4.7)."""
    y, z = features(4), features(5)
    for temperature in (1.0, 2.0, 4.0, 10.0):
        terms = ab_divergence_terms(y, z, 1 / temperature, 0.0)
        torch.testing.assert_close(terms, temperature**2 * generalized_kl_terms(y, z, temperature))
        torch.testing.assert_close(
            ab_loss(y, z, 1 / temperature, 0.0), generalized_kl_loss(y, z, temperature)
        )
        p, q = (y / temperature).exp(), (z / temperature).exp()  # Eq. 4.3 on the measures themselves
        gen_kl = (p * torch.log(p / q) - p + q).sum(dim=1)
        torch.testing.assert_close(ab_divergence(y, z, 1 / temperature, 0.0), temperature**2 * gen_kl)


def test_zero_zero_is_half_the_squared_difference() -> None:
    y, z = features(6), features(7)
    torch.testing.assert_close(ab_divergence_terms(y, z, 0.0, 0.0), 0.5 * (y - z) ** 2)
    torch.testing.assert_close(ab_loss(y, z, 0.0, 0.0), l2_loss(y, z).double())


@pytest.mark.parametrize("alpha", [0.25, -0.5, 1.0, 1e-4])
def test_alpha_equal_beta_is_symmetric(alpha: float) -> None:
    y, z = features(8), features(9)
    torch.testing.assert_close(
        ab_divergence_terms(y, z, alpha, alpha), ab_divergence_terms(z, y, alpha, alpha)
    )
    swapped = ab_divergence_terms(z, y, 0.25, 0.0)  # not symmetric off the line
    assert not torch.allclose(ab_divergence_terms(y, z, 0.25, 0.0), swapped)
    # and reflecting (α, β) about the line swaps the arguments (Fig. 4.1: reverse KL at (0, 1))
    torch.testing.assert_close(ab_divergence_terms(y, z, 0.0, 0.7), ab_divergence_terms(z, y, 0.7, 0.0))


@pytest.mark.parametrize("alpha", [0.25, -0.5, 1.0])
def test_alpha_minus_beta_is_invariant_to_a_common_shift(alpha: float) -> None:
    y, z = features(10), features(11)
    for shift in (-3.0, 0.7, 5.0):  # a shift of ŷ and ẑ is a common scale c = e^shift of p and q
        torch.testing.assert_close(
            ab_divergence_terms(y + shift, z + shift, alpha, -alpha), ab_divergence_terms(y, z, alpha, -alpha)
        )
    # the default (1/4, 0) is not: it makes the student match the teacher's mean (end of §4.3.2)
    assert not torch.allclose(
        ab_divergence_terms(y + 1, z + 1, 0.25, 0.0), ab_divergence_terms(y, z, 0.25, 0.0)
    )


def test_ab_divergence_is_nonnegative_and_zero_only_where_equal() -> None:
    y = features(12)
    z = y.clone()
    z[:, :8] += features(13)[:, :8]  # half the features differ
    for alpha, beta in [*CASES, (1e-7, 0.0), (0.3, -0.3 + 1e-8), (-1e-6, 1e-6), (3.0, 2.0)]:
        terms = ab_divergence_terms(y, z, alpha, beta)
        assert (terms[:, :8] > 0).all(), (alpha, beta)
        assert (terms[:, 8:] == 0).all(), (alpha, beta)


def test_gradient_of_the_new_loss_wrt_z_hat() -> None:
    """∂L_new/∂ẑ_i = (T/C)(e^{ẑ_i/T} - e^{ŷ_i/T}); wrt z_i = s_i ẑ_i it carries 1/s_i (the thesis's erratum)."""
    channels, temperature = 24, 4.0
    y_hat, z = features(14, (channels,)), features(15, (channels,))
    scale = torch.rand(channels, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 0.5
    z.requires_grad_(True)
    z_hat = z / scale
    z_hat.retain_grad()
    loss = ab_divergence(y_hat[None], z_hat[None], 1 / temperature, 0.0) / channels  # (1/C) D_AB, one sample
    loss.backward()
    expected = (
        temperature / channels * (torch.exp(z_hat.detach() / temperature) - torch.exp(y_hat / temperature))
    )
    torch.testing.assert_close(z_hat.grad, expected)
    torch.testing.assert_close(z.grad, expected / scale)


@pytest.mark.parametrize(("alpha", "beta"), [(0.25, 0.0), (0.0, 0.0), (0.3, -0.3), (0.0, 0.5), (0.4, 0.2)])
def test_gradients_are_finite_at_equal_inputs_and_in_low_precision(alpha: float, beta: float) -> None:
    y = features(16).float()
    z = y.clone().requires_grad_(True)
    ab_loss(
        y, z, alpha, beta
    ).backward()  # δ = 0 everywhere: every branch's 0/0 must stay out of the gradient
    assert torch.isfinite(z.grad).all() and z.grad.abs().max() == 0
    y64, z64 = features(17, spread=1.0), features(18, spread=1.0)
    exact = ab_divergence_terms(y64, z64, alpha, beta)
    single = ab_divergence_terms(y64.float(), z64.float(), alpha, beta).double()
    assert single.dtype == torch.float64 and ((single - exact).abs() <= 1e-4 * exact + 1e-6).all()
    half = ab_divergence_terms(y64.bfloat16(), z64.bfloat16(), alpha, beta)
    assert half.dtype == torch.float32 and torch.isfinite(half).all()  # bfloat16 features are upcast


def test_classic_distillation_is_t_squared_kl_of_softmaxes() -> None:
    members = [features(19 + m) for m in range(3)]
    y, z, temperature = ensemble_mean(members), features(23), 4.0
    torch.testing.assert_close(y, (members[0] + members[1] + members[2]) / 3)
    expected = F.kl_div(
        F.log_softmax(z / temperature, 1),
        F.log_softmax(y / temperature, 1),
        log_target=True,
        reduction="none",
    )
    loss = classic_distillation_loss(y, z, temperature)
    torch.testing.assert_close(loss, temperature**2 * expected.sum(1).mean())
    # shift invariant in y and z separately (unlike the new loss, §4.3.2)
    torch.testing.assert_close(classic_distillation_loss(y + 2, z - 1, temperature), loss)
    assert float(classic_distillation_loss(y, y, temperature)) == pytest.approx(0, abs=1e-12)


# ------------------------------------------------------------------------------------------------- teachers
@pytest.mark.parametrize("name", ["resnet18", "resnet50", "vgg16_narrow"])
def test_top_features_are_the_deepest_stage_before_its_relu(name: str) -> None:
    torch.manual_seed(0)
    backbone = create_backbone(name, 3, 32).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        pre = top_features(backbone, x)
        post = backbone.forward_stages(x)[backbone.stage_names[-1]]
    torch.testing.assert_close(torch.relu(pre), post)
    assert (pre < 0).float().mean() > 0.1  # the negative half the ReLU would have removed is there


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> dict[str, Path]:
    """Random-weight teacher runs (no training needed to test the plumbing): grey colorization, RGB FCN, and a
    stride-16 FCN, each a run folder with best.safetensors."""
    root = tmp_path_factory.mktemp("teachers")
    torch.manual_seed(0)
    models = {
        "colour": ColorizationModel(ColorizerConfig(hidden=16)),
        "seg": SegmentationModel(ModelConfig(arch="fcn32s", num_classes=3)),
        "seg16": SegmentationModel(ModelConfig(arch="fcn32s", num_classes=3, output_stride=16)),
    }
    for name, model in models.items():
        save_checkpoint(
            root / name / "best.safetensors", model.state_dict(), {"model": model.config.to_dict()}
        )
    return {name: root / name for name in models}


def test_teacher_loads_frozen_with_its_own_input_and_weights(teachers: dict[str, Path]) -> None:
    teacher = load_teacher(teachers["colour"])
    assert teacher.config.in_channels == 1 and teacher.config.kind == "colorization"
    teacher.train()  # the training loop calls train() on everything it owns: a teacher stays in eval mode
    assert not any(m.training for m in teacher.modules())
    assert not any(p.requires_grad for p in teacher.parameters())
    source = load_checkpoint(teachers["colour"]).model_state
    torch.testing.assert_close(teacher.backbone.conv1.weight, source["taps.backbone.conv1.weight"])
    images = torch.rand(2, 3, 48, 64)
    out = teacher(images)
    assert out.shape == (2, 512, 2, 2) and not out.requires_grad
    torch.testing.assert_close(teacher(images.mean(1, keepdim=True).expand_as(images)), out)  # sees lightness


def test_bad_teachers_are_one_line_errors_with_the_fix(teachers: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"--teachers .*nowhere.*run folder"):
        load_teacher(tmp_path / "nowhere")
    save_checkpoint(
        tmp_path / "ae.safetensors", {"encoder.0.weight": torch.zeros(2, 2)}, {"model": {"kind": "label-ae"}}
    )
    with pytest.raises(ValueError, match=r"ae\.safetensors: a label-ae checkpoint without a backbone"):
        load_teacher(tmp_path / "ae.safetensors")
    save_checkpoint(
        tmp_path / "bare.safetensors", {"head.w": torch.zeros(2)}, {"model": {"backbone": "resnet18"}}
    )
    with pytest.raises(ValueError, match=r"bare\.safetensors: .*no backbone weights \(taps\.backbone\.\*\)"):
        load_teacher(tmp_path / "bare.safetensors")
    config = DistillConfig(teachers=[str(teachers["seg16"])], data=TINY, output=str(tmp_path / "run"))
    task = DistillationTask(config)
    with pytest.raises(ValueError, match=r"seg16.*stride-16 grid.*pass --output-stride 16"):
        task.build_model()
    mixed = DistillConfig(teachers=[str(teachers["seg"]), str(teachers["seg16"])], data=TINY)
    with pytest.raises(ValueError, match="share one grid"):
        DistillationTask(mixed)
    warm = DistillConfig(teachers=[str(teachers["seg"])], data=TINY, backbone="resnet34", warm_start=True)
    with pytest.raises(
        ValueError, match=r"--warm-start: .* is a resnet18, the student a resnet34; pass --backbone"
    ):
        DistillationTask(warm).build_model()
    grey = DistillConfig(teachers=[str(teachers["colour"])], data=TINY, warm_start=True)
    with pytest.raises(ValueError, match="--in-channels 1"):
        DistillationTask(grey).build_model()
    classic = DistillConfig(
        teachers=[str(teachers["seg"]), str(teachers["colour"])], data=TINY, loss="kl-classic"
    )
    with pytest.raises(ValueError, match="kl-classic.*one teacher or --ensemble mean"):
        DistillationTask(classic).build_model()
    with pytest.raises(ValueError, match="needs --teachers"):
        DistillationTask(DistillConfig(data=TINY))


# ------------------------------------------------------------------------------------ statistics and subset
class FixedFeatures:
    """A stand-in teacher whose features are known: channel c of image value v is (c + 1) * v, on a 2x3 grid."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        value = images[:, :1, :2, :3]
        return torch.cat([value * (c + 1) for c in range(4)], dim=1)


def test_teacher_scale_is_the_rms_over_every_position_and_adds_up_over_processes() -> None:
    images = [torch.full((3, 4, 6), float(v)) for v in (1, 2, 3, 4, 5)]
    datasets = [[(im, {}) for im in images[:2]], [(im, {}) for im in images[2:]]]
    scale = stats.teacher_scale(FixedFeatures(), datasets, torch.device("cpu"), batch_size=2)
    rms = math.sqrt(sum(v * v for v in (1, 2, 3, 4, 5)) / 5)
    torch.testing.assert_close(scale.values, torch.tensor([rms * (c + 1) for c in range(4)]))
    assert (scale.images, scale.positions) == (5, 30)
    shared = stats.teacher_scale(FixedFeatures(), datasets, torch.device("cpu"), shared=True)
    expected = rms * math.sqrt(sum((c + 1) ** 2 for c in range(4)) / 4)
    torch.testing.assert_close(shared.values, torch.full((4,), expected))
    # torchrun: two processes' shares sum to the one-process sums, which the all-reduce then gives every rank
    whole = stats.channel_energy(FixedFeatures(), datasets, torch.device("cpu"))
    parts = [
        stats.channel_energy(FixedFeatures(), datasets, torch.device("cpu"), rank=r, world=2) for r in (0, 1)
    ]
    torch.testing.assert_close(parts[0][0] + parts[1][0], whole[0])
    torch.testing.assert_close(parts[0][1] + parts[1][1], whole[1])
    assert stats.statistics_indices(100, 10) == stats.statistics_indices(100, 10) != list(range(10))


def test_feature_subset_is_a_fixed_random_choice_that_keeps_the_first_teachers_channels_in_place() -> None:
    subset = feature_subset(1024, 512, seed=3, anchored=512)
    assert subset == feature_subset(1024, 512, seed=3, anchored=512)  # fixed by its seed
    assert subset != feature_subset(1024, 512, seed=4, anchored=512)
    assert len(set(subset)) == 512 and all(0 <= c < 1024 for c in subset)
    assert set(subset) == set(feature_subset(1024, 512, seed=3))  # the anchoring only orders the same set
    assert all(
        c == i for i, c in enumerate(subset) if c < 512
    )  # teacher 1's chosen channels keep their index
    assert 100 < sum(c < 512 for c in subset) < 412  # both teachers contribute
    assert feature_subset(512, 512, seed=0) == list(range(512))
    with pytest.raises(ValueError, match="--adapter auxiliary"):
        feature_subset(256, 512, seed=0)


# ----------------------------------------------------------------------------------------- the task and runs
def distill_config(runs: dict[str, Path], output: Path, **overrides) -> DistillConfig:
    values = dict(teachers=[str(runs["colour"]), str(runs["seg"])], data=TINY, output=str(output),
                  epochs=1, batch_size=4, crop=[48, 64], device="cpu", seed=1)  # fmt: skip
    values.update(overrides)
    return DistillConfig(**values)


def test_a_few_steps_of_distillation_lower_the_loss(teachers: dict[str, Path], tmp_path: Path) -> None:
    config = distill_config(teachers, tmp_path / "run")
    task = DistillationTask(config)
    train, _ = task.datasets()
    torch.manual_seed(0)
    model, lr = task.build_model()
    assert isinstance(model, StudentModel) and len(task.subset) == 512 and task.scale.values.shape == (1024,)
    images = torch.stack([train[i][0] for i in range(4)])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(12):
        loss = task.loss(model, images, {})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
    assert not any(p.grad is not None for p in task.teachers.parameters())


def test_run_stores_the_subset_and_statistics_and_resume_reads_them_back(
    teachers: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    config = distill_config(teachers, run)
    task = DistillationTask(config)
    scores = Trainer(config, task).fit()
    assert math.isfinite(scores["loss"]) and scores["neg_loss"] == -scores["loss"] and scores["images"] == 4
    stored = stored_distillation(run / "best.safetensors")
    assert stored["subset"] == task.subset and stored["adapter"] == "subset"
    assert stored["scale"]["channels"] == 1024 and stored["scale"]["images"] == 8
    assert [t["channels"] for t in stored["teachers"]] == [512, 512]
    assert [t["kind"] for t in stored["teachers"]] == ["colorization", "segmentation"]
    meta = load_checkpoint(run / "last.safetensors").meta
    assert meta["model"]["kind"] == "distill-student" and meta["model"]["layer"] == "layer4"
    # a resumed run takes s and the subset from its checkpoint: no second statistics pass
    monkeypatch.setattr(
        "pixelwise.methods.distill.task.teacher_scale", lambda *a, **k: pytest.fail("re-measured")
    )
    resumed = DistillationTask(distill_config(teachers, run, epochs=2, resume=True))
    Trainer(resumed.config, resumed).fit()
    assert resumed.subset == task.subset
    torch.testing.assert_close(resumed.scale.values, task.scale.values)


def test_student_initialises_segmentation_with_train_init_from(
    teachers: dict[str, Path], tmp_path: Path
) -> None:
    from pixelwise.cli.main import main

    run = tmp_path / "student"
    config = distill_config(teachers, run, warm_start=False)
    Trainer(config, DistillationTask(config)).fit()
    student = load_checkpoint(run / "best.safetensors").model_state
    segmenter = SegmentationModel(ModelConfig(arch="fcn32s", num_classes=3))
    assert init_from_checkpoint(segmenter, str(run)) is False  # the backbone only: a new head
    for key, value in segmenter.backbone.state_dict().items():
        torch.testing.assert_close(value, student[f"taps.backbone.{key}"])
    code = main(["train", "--init-from", str(run), "--data", TINY, "--output", str(tmp_path / "seg"), "--epochs",
                 "1", "--batch-size", "4", "--crop", "48", "64", "--arch", "fcn32s", "--device", "cpu",
                 "--eval-every", "0", "--num-examples", "0"])  # fmt: skip
    assert code == 0 and (tmp_path / "seg" / "best.safetensors").is_file()


def test_auxiliary_layer_trains_with_the_student_and_is_dropped_after(
    teachers: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "aux"
    config = distill_config(teachers, run, adapter="auxiliary", loss="l2", shared_scale=True)
    task = DistillationTask(config)
    Trainer(config, task).fit()
    last = load_checkpoint(run / "last.safetensors").model_state
    best = load_checkpoint(run / "best.safetensors").model_state
    assert last["adapter.1.weight"].shape == (1024, 512, 1, 1)
    assert not any("adapter" in k for k in best) and "taps.backbone.conv1.weight" in best
    torch.testing.assert_close(best["taps.backbone.conv1.weight"], last["model.taps.backbone.conv1.weight"])
    stored = stored_distillation(run)
    assert stored["adapter"] == "auxiliary" and stored["subset"] is None and stored["scale"]["shared"]
    segmenter = SegmentationModel(ModelConfig(arch="fcn32s", num_classes=3))
    init_from_checkpoint(
        segmenter, str(run / "last.safetensors")
    )  # the adapter is not read, only the backbone
    torch.testing.assert_close(segmenter.backbone.conv1.weight, best["taps.backbone.conv1.weight"])


def test_warm_start_and_classic_kl_with_one_teacher(teachers: dict[str, Path], tmp_path: Path) -> None:
    config = distill_config(teachers, tmp_path / "run", teachers=[str(teachers["seg"])], warm_start=True,
                            loss="kl-classic")  # fmt: skip
    task = DistillationTask(config)
    task.datasets()
    model, _ = task.build_model()
    assert task.subset == list(range(512)) and task.scale is None  # Eq. 4.1 needs no statistics
    source = load_checkpoint(teachers["seg"]).model_state
    torch.testing.assert_close(
        model.backbone.layer4[1].conv2.weight, source["taps.backbone.layer4.1.conv2.weight"]
    )
    images = torch.rand(2, 3, 48, 64)
    model.eval()  # a warm-started student in eval mode is its teacher: the classic loss is 0
    assert task.loss(model, images, {}).item() == pytest.approx(0, abs=1e-6)


def test_student_rebuilds_from_its_stored_config() -> None:
    student = StudentModel(StudentConfig("resnet18", 1))
    described = student.config.to_dict()
    assert described["kind"] == "distill-student" and described["layer"] == "layer4"
    rebuilt = StudentModel(StudentConfig.from_dict(described))
    rebuilt.load_state_dict(student.state_dict())
    assert isinstance(rebuilt.inputs, InputNormalizer) and rebuilt.inputs.in_channels == 1
    spec = TeacherSpec("x", "distill-student", "resnet18", 1, 32)
    teacher = FrozenTeacher(spec)
    teacher.load_state_dict(student.state_dict(), strict=False)
    images = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(teacher(images), student.eval()(images).detach())  # a student can teach again


# ------------------------------------------------------------------------------------------------------- CLI
def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="pixelwise")
    register_distill(root.add_subparsers(dest="command", required=True))
    return root


def test_cli_help_explains_every_flag(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["distill", "--help"])
    text = capsys.readouterr().out
    for flag in ("--teachers", "--loss", "--alpha", "--beta", "--shared-scale", "--adapter", "--warm-start",
                 "--ensemble", "--scale-images", "--splits", "--temperature", "--subset-seed"):  # fmt: skip
        assert flag in text
    assert "Eq. 4.6" in text and "§4.3.4" in text
    distill = parser()._subparsers._group_actions[0].choices["distill"]  # type: ignore[union-attr]
    assert all(action.help and action.help.strip() for action in distill._actions)


def test_cli_runs_a_distillation_and_refuses_a_missing_teacher(
    teachers: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "cli"
    args = parser().parse_args(["distill", "--teachers", str(teachers["seg"]), str(teachers["colour"]), "--data",
                                TINY, "--output", str(run), "--epochs", "1", "--batch-size", "4", "--crop", "48",
                                "64", "--alpha", "0.5", "--beta", "-0.5", "--device", "cpu"])  # fmt: skip
    assert args.run(args) == 0
    out = capsys.readouterr().out
    printed = json.loads(out[out.rindex("\n{") :])  # the scores, printed last
    assert set(printed) == {"loss", "l2", "images"} and (run / "best.safetensors").is_file()
    assert stored_distillation(run)["alpha"] == 0.5 and stored_distillation(run)["beta"] == -0.5
    bad = parser().parse_args(["distill", "--teachers", str(tmp_path / "missing"), "--data", TINY, "--output",
                               str(tmp_path / "bad")])  # fmt: skip
    with pytest.raises(ValueError, match=r"--teachers .*missing.*run folder") as err:
        bad.run(bad)
    assert "\n" not in str(err.value)
