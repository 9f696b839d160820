"""The selection split (--select-fraction): choices are made on held-out training images, val is reported once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pixelwise.engine.checkpoint import load_checkpoint
from pixelwise.methods.segmentation import carve_selection, segmentation_trainer
from test_engine import tiny_config


def synthetic_folders(tmp_path: Path, spec: str) -> tuple[Any, Path, Path]:
    """Synthetic scenes written as a folders: dataset (images/f<i>.png, labels/f<i>.png, classes.txt)."""
    import numpy as np
    from PIL import Image

    from pixelwise.data import build_dataset

    scenes = build_dataset(spec, "val")
    images, labels = tmp_path / "img", tmp_path / "lab"
    images.mkdir()
    labels.mkdir()
    for index in range(len(scenes)):
        image, target = scenes[index]
        Image.fromarray(image.mul(255).round().byte().permute(1, 2, 0).numpy()).save(images / f"f{index}.png")
        Image.fromarray(target["seg"].numpy().astype(np.uint8)).save(labels / f"f{index}.png")
    (labels / "classes.txt").write_text("\n".join(scenes.info.class_names) + "\n")
    return scenes, images, labels


def test_the_selection_split_is_fixed_disjoint_and_independent_of_the_seed() -> None:
    kept, held = carve_selection(367, 0.1)
    assert len(held) == 37 and len(kept) == 330 and not set(kept) & set(held)
    assert carve_selection(367, 0.1) == (kept, held)  # the same split for every run
    with pytest.raises(ValueError, match="select-fraction"):
        carve_selection(10, 1.0)


@pytest.mark.slow
def test_best_is_chosen_on_the_selection_split_and_val_is_scored_once_by_the_last_model(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    trainer = segmentation_trainer(tiny_config(run, epochs=2, select_fraction=0.25))
    assert len(trainer.train_set) == 12 and len(trainer.val_set) == 4  # 16 synthetic images: 4 held out
    scores = trainer.fit()
    assert scores["model"] == "last" and "mean_iou" in scores["selection"]
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "report" for r in records) == 1  # the reported split: once, at the end
    assert sum(r["kind"] == "val" for r in records) == 2  # every epoch, on the selection split
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["mean_iou"] == pytest.approx(scores["mean_iou"]) and "selection" in metrics
    meta = load_checkpoint(run / "best.safetensors").meta
    assert "selection split (4 held-out" in meta["best_chosen_on"]
    assert meta["selection"]["indices"] == carve_selection(16, 0.25)[1]


@pytest.mark.slow
def test_eval_and_predict_default_to_the_training_eval_scale_and_agree(tmp_path: Path) -> None:
    """Both score at the scale the run validated at (stored in the checkpoint) and give the same labels."""
    import numpy as np
    import torch
    from PIL import Image

    from pixelwise.cli.predict import predict_images
    from pixelwise.engine.config import EvalConfig, PredictConfig
    from pixelwise.evaluation import evaluate_checkpoint
    from pixelwise.metrics.confusion import confusion_matrix, segmentation_scores

    scenes, images, labels = synthetic_folders(tmp_path, "synthetic:6:64x96")
    data = f"folders:{images}:{labels}"
    run = tmp_path / "run"
    segmentation_trainer(
        tiny_config(run, data=data, val_data=data, epochs=1, eval_scale=0.5, crop=[64, 96])
    ).fit()
    scored = evaluate_checkpoint(EvalConfig(checkpoint=str(run / "last.safetensors"), data=data))
    assert scored["scales"] == [0.5] and "end of training" in scored["chosen"]
    predict_images(
        PredictConfig(checkpoint=str(run / "last.safetensors"), output=str(tmp_path / "pred")), [images]
    )
    cm = sum(
        confusion_matrix(
            torch.from_numpy(np.array(Image.open(tmp_path / "pred" / f"f{i}_ids.png"))).long(),
            torch.from_numpy(np.array(Image.open(labels / f"f{i}.png"))).long(),
            scenes.info.num_classes,
        )
        for i in range(len(scenes))
    )
    assert segmentation_scores(cm)["mean_iou"] == pytest.approx(scored["mean_iou"], abs=1e-6)


def test_predict_refuses_inputs_whose_outputs_would_overwrite_each_other(tmp_path: Path) -> None:
    from pixelwise.cli.predict import expand_inputs

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "frame.png").write_bytes(b"")
    with pytest.raises(ValueError, match="frame_\\*.png"):
        expand_inputs([tmp_path / "a", tmp_path / "b"])
    assert (
        len(expand_inputs([tmp_path / "a", tmp_path / "a" / "frame.png"])) == 1
    )  # the same file twice: once


@pytest.mark.slow
def test_selection_with_a_labelled_fraction_class_weights_and_dropped_files(tmp_path: Path) -> None:
    """Nested subsets count their labels; a file --skip-bad dropped shifts no held-out index onto a training one."""

    _, images, labels = synthetic_folders(tmp_path, "synthetic:10:48x64")
    (images / "f1.png").write_bytes(b"not a png")  # dropped by --skip-bad
    data = f"folders:{images}:{labels}"
    config = tiny_config(tmp_path / "run", data=data, val_data=data, select_fraction=0.3, labels_fraction=0.5,
                         class_weights="median-frequency", skip_bad=True, epochs=1, batch_size=2)  # fmt: skip
    trainer = segmentation_trainer(config)
    held = {trainer.val_set.dataset.pairs[i][0].name for i in trainer.val_set.indices}
    pool, kept = trainer.train_set.dataset, trainer.train_set.indices
    trained = {pool.dataset.pairs[pool.indices[i]][0].name for i in kept}
    assert held and trained and not held & trained and "f1.png" not in held | trained
    assert trainer.task.loss_weights is not None
