"""Engine: end-to-end train/eval/predict on synthetic data, resume equivalence, staged training, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pixelwise.engine.checkpoint import load_checkpoint, save_checkpoint
from pixelwise.engine.optim import class_weights, learning_rate
from pixelwise.engine.trainer import TrainingError
from pixelwise.methods.kinds import build_model_from_checkpoint
from pixelwise.methods.segmentation import (
    TrainConfig,
    sample_loss_cells,
    segmentation_loss,
    segmentation_trainer,
)

TINY = "synthetic:16:48x64"


def tiny_config(output: Path, **overrides) -> TrainConfig:
    values = dict(
        data=TINY,
        output=str(output),
        arch="fcn8s",
        backbone="resnet18",
        epochs=2,
        batch_size=4,
        crop=[48, 64],
        scale=[0.75, 1.25],
        eval_every=1,
        num_examples=1,
        seed=3,
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.mark.slow
def test_train_then_eval_end_to_end(tmp_path: Path) -> None:
    scores = segmentation_trainer(tiny_config(tmp_path / "run", epochs=3, lr=5e-3)).fit()
    run = tmp_path / "run"
    for name in (
        "config.yaml",
        "log.jsonl",
        "last.safetensors",
        "best.safetensors",
        "metrics.json",
        "best.json",
    ):
        assert (run / name).is_file(), name
    assert 0.0 <= scores["mean_iou"] <= 1.0 and scores["pixel_acc"] > 0.5  # learnt more than nothing
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in records} >= {"val"}
    assert list((run / "examples").glob("epoch003/*.png"))
    model, meta = build_model_from_checkpoint(run)
    assert meta["dataset"]["class_names"][0] == "sky" and meta["model"]["arch"] == "fcn8s"


@pytest.mark.slow
def test_resume_continues_exactly_where_it_stopped(tmp_path: Path) -> None:
    straight = segmentation_trainer(tiny_config(tmp_path / "straight")).fit()
    segmentation_trainer(
        tiny_config(tmp_path / "split", time_limit=0.0)
    ).fit()  # stops (and checkpoints) after epoch 1
    assert load_checkpoint(tmp_path / "split" / "last.safetensors").meta["state"]["epoch"] == 1
    resumed = segmentation_trainer(tiny_config(tmp_path / "split", resume=True)).fit()
    a = load_checkpoint(tmp_path / "straight" / "last.safetensors").model_state
    b = load_checkpoint(tmp_path / "split" / "last.safetensors").model_state
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # bit-exact on CPU
    assert straight["mean_iou"] == resumed["mean_iou"]


def test_a_second_run_into_the_same_folder_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    save_checkpoint(run / "last.safetensors", {"w": torch.zeros(1)}, {"state": {}})
    with pytest.raises(TrainingError, match="already holds a run"):
        segmentation_trainer(tiny_config(run, epochs=1)).fit()


@pytest.mark.slow
def test_staged_training_16s_from_32s_starts_from_the_parent(tmp_path: Path) -> None:
    segmentation_trainer(tiny_config(tmp_path / "s32", arch="fcn32s", epochs=1)).fit()
    child = segmentation_trainer(
        tiny_config(tmp_path / "s16", arch="fcn16s", epochs=1, init_from=str(tmp_path / "s32"))
    )
    assert child.base_lr == pytest.approx(child.config.lr * 0.01)  # Long §3.3.4: lr / 100 at each upgrade
    parent_state = load_checkpoint(tmp_path / "s32").model_state
    key = "taps.backbone.layer4.1.conv2.weight"
    assert torch.equal(child.model.state_dict()[key], parent_state[key])


def test_checkpoint_round_trip_with_optimizer_state(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    path = save_checkpoint(
        tmp_path / "c.safetensors", model.state_dict(), {"hello": [1, 2]}, optimizer.state_dict()
    )
    loaded = load_checkpoint(path)
    assert loaded.meta["hello"] == [1, 2]
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=0.1)
    fresh.load_state_dict(loaded.optimizer_state)
    torch.testing.assert_close(
        fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"]
    )
    assert not list(tmp_path.glob("*.tmp"))  # written via temp file + rename


def test_loss_honours_ignore_index_and_class_weights() -> None:
    logits = torch.randn(2, 3, 4, 4)
    labels = torch.randint(0, 3, (2, 4, 4))
    ignored = labels.clone()
    ignored[:, 0] = 255
    full = segmentation_loss(logits, ignored, None, 255, 1.0)
    manual = torch.nn.functional.cross_entropy(
        logits.permute(0, 2, 3, 1)[:, 1:].reshape(-1, 3), labels[:, 1:].reshape(-1)
    )
    torch.testing.assert_close(full, manual)
    all_void = torch.full_like(labels, 255)
    assert segmentation_loss(logits, all_void, None, 255, 1.0) == 0  # an all-void crop must not stop a run
    weights = torch.tensor([1.0, 2.0, 0.5])
    per_pixel = torch.nn.functional.cross_entropy(logits, ignored, ignore_index=255, reduction="none")
    labelled = ignored != 255
    rebalanced = (
        weights[ignored[labelled]] * per_pixel[labelled]
    ).sum() / labelled.sum()  # Mostajabi: sum / N
    torch.testing.assert_close(segmentation_loss(logits, ignored, weights, 255, 1.0), rebalanced)


def test_loss_sampling_drops_whole_final_layer_cells() -> None:
    torch.manual_seed(0)
    labels = torch.zeros(4, 64, 96, dtype=torch.long)
    sampled = sample_loss_cells(labels, 0.5, 255)
    cells = sampled.unfold(1, 32, 32).unfold(2, 32, 32)  # [4, 2, 3, 32, 32]: one 32x32 block per cell
    dropped = (cells == 255).flatten(3).all(-1)
    kept = (cells == 0).flatten(3).all(-1)
    assert (dropped | kept).all()  # a cell is dropped or kept as a whole (Long §3.3.4), never thinned
    assert 0 < dropped.float().mean() < 1


def test_class_weights() -> None:
    counts = torch.tensor([100, 10, 0, 1000])
    median = class_weights(counts, "median-frequency")
    assert median[2] == 0 and median[0] == pytest.approx(1.0) and median[1] > median[0] > median[3]
    inverse = class_weights(counts, "inverse-frequency")
    assert inverse[[0, 1, 3]].mean() == pytest.approx(1.0)
    assert class_weights(counts, "none") is None
    # Median frequency counts each class over the images where it is present (Eigen & Fergus), not globally:
    # class 1 covers 80% of the one image it is in (global frequency: 80 / 300).
    per_image = torch.tensor([[10, 0, 90], [20, 80, 0], [10, 0, 90]])
    median = class_weights(per_image, "median-frequency")
    frequency = torch.tensor([40 / 300, 80 / 100, 180 / 200], dtype=torch.float64)
    torch.testing.assert_close(median.double(), frequency.median() / frequency, rtol=1e-6, atol=0)


def test_poly_and_step_schedules() -> None:
    config = TrainConfig(schedule="poly", poly_power=1.0)
    assert learning_rate(config, 1.0, 0, 100, 10) == 1.0
    assert learning_rate(config, 1.0, 50, 100, 10) == pytest.approx(0.5)
    step = TrainConfig(schedule="step", step_epochs=[2, 4])
    assert [round(learning_rate(step, 1.0, i * 10, 100, 10), 6) for i in (0, 2, 4)] == [1.0, 0.1, 0.01]


@pytest.mark.slow
def test_poly_time_schedule_anneals_over_the_time_budget() -> None:
    config = TrainConfig(data="synthetic", schedule="poly-time", time_limit=10.0, poly_power=1.0)
    assert learning_rate(config, 1.0, 0, 100, 10, minutes_trained=0.0) == 1.0
    assert learning_rate(config, 1.0, 0, 100, 10, minutes_trained=5.0) == pytest.approx(0.5)
    past_the_budget = learning_rate(config, 1.0, 0, 100, 10, minutes_trained=12.0)
    assert 0 < past_the_budget <= 0.011  # ~0, never negative
    with pytest.raises(ValueError, match="time-limit"):
        learning_rate(TrainConfig(data="synthetic", schedule="poly-time"), 1.0, 0, 100, 10)


@pytest.mark.slow
def test_minutes_trained_survive_a_resume(tmp_path: Path) -> None:
    """poly-time's clock continues across --resume, so the schedule does not restart."""
    out_of_time_after_epoch_1 = tiny_config(tmp_path / "run", schedule="poly-time", time_limit=1e-9)
    segmentation_trainer(out_of_time_after_epoch_1).fit()
    first = load_checkpoint(tmp_path / "run" / "last.safetensors").meta["state"]
    assert first["epoch"] == 1 and first["minutes_trained"] > 0
    segmentation_trainer(
        tiny_config(tmp_path / "run", schedule="poly-time", time_limit=60.0, resume=True)
    ).fit()
    second = load_checkpoint(tmp_path / "run" / "last.safetensors").meta["state"]
    assert second["epoch"] > 1 and second["minutes_trained"] > first["minutes_trained"]


@pytest.mark.camvid
def test_train_and_eval_on_a_few_real_camvid_frames(tmp_path: Path, camvid_root: Path) -> None:
    """Real data through the whole loop: 6 train / 3 val CamVid frames via list files, at quarter resolution."""
    from pixelwise.data import CAMVID_INFO

    for split, count in (("train", 6), ("val", 3)):
        lines = (camvid_root / f"{split}.txt").read_text().splitlines()[:count]
        # List-file paths are relative to the list file: link the CamVid folders beside it (no data is copied).
        (tmp_path / f"{split}.txt").write_text("\n".join(lines) + "\n")
        for folder in (split, f"{split}annot"):
            (tmp_path / folder).symlink_to(camvid_root / folder)
    (tmp_path / "classes.txt").write_text("\n".join(CAMVID_INFO.class_names) + "\n")
    # CamVid's void (11) is outside 11 classes: the list-file route must say so rather than train on it.
    with pytest.raises(ValueError, match="11"):
        segmentation_trainer(tiny_config(tmp_path / "bad", data=str(tmp_path / "train.txt"), epochs=1))
    run = segmentation_trainer(
        tiny_config(
            tmp_path / "run",
            data=f"camvid:{tmp_path}",
            epochs=1,
            base_size=[90, 120],
            crop=[90, 120],
            eval_scale=0.25,
        )
    )
    assert len(run.train_set) == 6 and len(run.val_set) == 3
    scores = run.fit()
    assert 0.0 <= scores["mean_iou"] <= 1.0
    assert scores["present"][3]  # road is in every frame


@pytest.mark.slow
def test_grayscale_training_and_prediction(tmp_path: Path) -> None:
    """--in-channels 1 trains on lightness from the RGB data (the colorization-transfer setting)."""
    scores = segmentation_trainer(tiny_config(tmp_path / "grey", in_channels=1, epochs=1)).fit()
    assert 0.0 <= scores["mean_iou"] <= 1.0
    model, meta = build_model_from_checkpoint(tmp_path / "grey")
    assert meta["model"]["in_channels"] == 1
    with torch.no_grad():
        assert model(torch.rand(1, 3, 30, 40))["seg"].shape == (1, 6, 30, 40)


def test_batchnorm_recalibration_gives_frozen_layers_the_data_statistics() -> None:
    """A random frozen backbone's BatchNorm holds mean 0 / var 1; one pass gives it the training data's."""
    from pixelwise.engine.batchnorm import recalibrate_batchnorm
    from pixelwise.models import create_model

    torch.manual_seed(0)
    model = create_model("fcn8s", "resnet18", num_classes=3)
    images = [torch.rand(2, 3, 32, 32) * 0.5 + 0.5 for _ in range(3)]
    assert (
        recalibrate_batchnorm(model, [model.backbone], [(x, None) for x in images], torch.device("cpu")) > 0
    )
    with torch.no_grad():
        activations = torch.cat([model.backbone.conv1(model.inputs(x)) for x in images])
    torch.testing.assert_close(
        model.backbone.bn1.running_mean, activations.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5
    )
    assert model.training and model.backbone.bn1.momentum == 0.1  # the model's mode and momenta are restored


def test_sampling_with_replacement_draws_independently_and_the_ranks_split_one_stream() -> None:
    from pixelwise.engine.distributed import ShardedRandomSampler

    alone = ShardedRandomSampler(50, seed=2, replacement=True)
    drawn = list(alone)
    assert len(drawn) == 50 and len(set(drawn)) < 50  # repeats: not a permutation
    ranks = [list(ShardedRandomSampler(50, r, 2, seed=2, replacement=True)) for r in range(2)]
    assert [i for pair in zip(*ranks) for i in pair] == drawn
    alone.set_epoch(1)
    assert list(alone) != drawn
