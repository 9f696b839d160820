"""``pixelwise correspond visualise|transfer|keypoints`` end to end on tiny synthetic files (Long thesis Ch. 2).

Random-init resnet18 at small sizes, so each run takes seconds; the checks are that the outputs exist, read back
and are sane, and that bad input is one line naming the file or flag and the fix.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.cli.main import main
from pixelwise.data.keypoints import Keypoint, KeypointImage, KeypointObject, load_keypoints, save_keypoints
from pixelwise.data.scene import PERSON, VEHICLE
from pixelwise.data.synthetic import SyntheticScenes

SIZE = (64, 96)
CATEGORIES = {VEHICLE: "vehicle", PERSON: "person"}


def _one_line_error(argv: list[str], capsys, *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def _keypoint_file(root: Path, split: str, scenes: int) -> Path:
    """Synthetic scenes as PNGs plus a keypoint JSON of their untruncated vehicles and people (keypoints
    inside the image only; visibility from the instance map)."""
    dataset = SyntheticScenes(scenes, size=SIZE, seed=3, split=split, cache=False)
    images = []
    for i in range(scenes):
        scene = dataset.scene(i)
        path = root / f"{split}_{i}.png"
        Image.fromarray(scene.image).save(path)
        objects = []
        for obj in scene.keypoints():
            if obj.truncated or max(obj.box_size) < 6 or not obj.visible.any():
                continue
            keypoints = {
                name: Keypoint(float(r), float(c), bool(v))
                for name, (r, c), v in zip(obj.names, obj.points.tolist(), obj.visible)
                if 0 <= r <= SIZE[0] - 1 and 0 <= c <= SIZE[1] - 1
            }
            objects.append(KeypointObject(CATEGORIES[obj.cls], tuple(map(float, obj.box)), keypoints))
        images.append(KeypointImage(path, SIZE, tuple(objects)))
    save_keypoints(root / f"{split}.json", images)
    return root / f"{split}.json"


@pytest.fixture(scope="module")
def keypoint_files(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("keypoints")
    return _keypoint_file(root, "train", 12), _keypoint_file(root, "val", 6)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    dataset = SyntheticScenes(5, size=(48, 64), seed=1, cache=False)
    for i in range(5):
        image, _, _ = dataset.load_raw(i)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(root / f"frame_{i}.png")
    return root


# ---------------------------------------------------------------------------------------------- visualise


def test_visualise_writes_panels_and_psnr_per_query(image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "vis"
    queries = [str(image_folder / "frame_0.png"), str(image_folder / "frame_1.png")]
    argv = ["correspond", "visualise", *queries, "--database", str(image_folder), "--k", "2", "--stage", "layer1",
            "--uniform-rf", "43", "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    record = json.loads((out / "reconstruction.json").read_text())
    assert record["database"]["images"] == 3  # the two queries are left out of the folder
    assert record["stage_rf"] == 43 and record["stride"] == 4
    assert [r["panel"] for r in record["queries"]] == ["panel_frame_0.png", "panel_frame_1.png"]
    for row in record["queries"]:
        assert math.isfinite(row["psnr_nn"]) and math.isfinite(row["psnr_uniform_rf"])
        with Image.open(out / row["panel"]) as panel:
            assert panel.width > 3 * 64 and panel.height > 48  # three images side by side, titled
    assert record["mean"]["gain_db"] == pytest.approx(
        record["mean"]["psnr_nn"] - record["mean"]["psnr_uniform_rf"], abs=1e-3
    )  # JSON floats carry 6 significant digits


def test_visualise_refuses_bad_input_in_one_line(image_folder: Path, tmp_path: Path, capsys) -> None:
    query = str(image_folder / "frame_0.png")
    base = ["correspond", "visualise", "--output", str(tmp_path / "vis")]
    _one_line_error([*base, str(tmp_path / "nope.png"), "--database", str(image_folder)], capsys, "nope.png")
    _one_line_error([*base, query], capsys, "--database")
    _one_line_error([*base, query, "--database", str(tmp_path / "missing")], capsys, "missing", "no such")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error([*base, query, "--database", str(empty)], capsys, "empty", "no images")
    _one_line_error([*base, query, "--database", query], capsys, "also a query")
    _one_line_error(
        [*base, query, "--database", str(image_folder), "--stage", "layer9"],
        capsys,
        "--stage layer9",
        "layer4",
    )
    _one_line_error(
        [*base, query, "--database", str(image_folder), "--init-from", str(tmp_path / "norun")],
        capsys,
        "--init-from",
        "norun",
    )
    with pytest.raises(SystemExit) as exit_info:  # out of range: argparse's error, before anything runs
        main([*base, query, "--database", str(image_folder), "--k", "0"])
    assert exit_info.value.code == 2 and "argument --k: must be >= 1" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- transfer


def test_transfer_writes_predictions_scores_and_panels(
    keypoint_files: tuple[Path, Path], tmp_path: Path
) -> None:
    train, val = keypoint_files
    out = tmp_path / "transfer"
    argv = ["correspond", "transfer", str(train), str(val), "--box-size", "32", "--stage", "layer1",
            "--neighbours", "3", "--top", "2", "--iterations", "5", "--radius", "3", "--panels", "2",
            "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    record = json.loads((out / "transfer.json").read_text())
    assert record["descriptor_stage"] == "layer4" and record["panels"] == 2
    assert len(list(out.glob("panel_*.png"))) == 2
    predicted = load_keypoints(out / "predictions.json")  # the predictions read back as a keypoint file
    given = load_keypoints(val)
    assert [len(im.objects) for im in predicted] == [len(im.objects) for im in given]
    assert sum(len(o.keypoints) for im in predicted for o in im.objects) > 0
    for method in ("conv_flow", "nn_transfer"):
        scores = record["scores"][method]
        for alpha in ("0.1", "0.05", "0.025"):
            assert 0.0 <= scores["pck"][alpha] <= 1.0
        assert all(math.isfinite(c["mean_error_px"]) for c in scores["categories"].values())
    assert all(len(o["neighbours"]) == 2 for o in record["objects"])


def test_transfer_leaves_a_query_out_of_its_own_neighbours(
    keypoint_files: tuple[Path, Path], tmp_path: Path
) -> None:
    train, _ = keypoint_files
    out = tmp_path / "self"
    argv = ["correspond", "transfer", str(train), str(train), "--box-size", "32", "--stage", "layer1",
            "--neighbours", "2", "--top", "1", "--iterations", "3", "--radius", "2", "--panels", "0",
            "--alphas", "0.1", "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    record = json.loads((out / "transfer.json").read_text())
    for obj in record["objects"]:
        assert all((n["image"], n["object"]) != (obj["image"], obj["object"]) for n in obj["neighbours"])
    assert record["panels"] == 0 and not list(out.glob("panel_*.png"))


def _with_keypoint_outside(val: Path, tmp_path: Path) -> Path:
    data = json.loads(val.read_text())
    entry = next(e for e in data["images"] if any(o["keypoints"] for o in e["objects"]))
    obj = next(o for o in entry["objects"] if o["keypoints"])
    next(iter(obj["keypoints"].values()))["row"] = 1000.0
    for e in data["images"]:
        e["image"] = str(val.parent / e["image"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    return bad


def test_transfer_and_keypoints_refuse_bad_files_in_one_line(
    keypoint_files: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    train, val = keypoint_files
    for tool in ("transfer", "keypoints"):
        base = ["correspond", tool, "--output", str(tmp_path / tool), "--box-size", "32"]
        _one_line_error([*base, str(tmp_path / "none.json"), str(val)], capsys, "none.json", "not found")
        _one_line_error(
            [*base, str(train), str(_with_keypoint_outside(val, tmp_path))], capsys, "bad.json", "outside"
        )
        _one_line_error(
            [*base, str(train), str(val), "--descriptor-stage", "fc7"], capsys, "--descriptor-stage fc7"
        )
        other = json.loads(val.read_text())
        for entry in other["images"]:
            entry["image"] = str(val.parent / entry["image"])
            for obj in entry["objects"]:
                obj["category"] = "bicycle"
        (tmp_path / "bikes.json").write_text(json.dumps(other))
        _one_line_error([*base, str(train), str(tmp_path / "bikes.json")], capsys, "bicycle", str(train))
    with pytest.raises(SystemExit):
        main(["correspond", "transfer", str(train), str(val), "--alphas", "0"])
    assert "argument --alphas: must be > 0" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- keypoints


def test_keypoints_predicts_with_and_without_the_prior(
    keypoint_files: tuple[Path, Path], tmp_path: Path
) -> None:
    train, val = keypoint_files
    out = tmp_path / "kp"
    argv = ["correspond", "keypoints", str(train), str(val), "--box-size", "32", "--stage", "layer1",
            "--block", "1", "--rounds", "1", "--folds", "2", "--panels", "1", "--alphas", "0.1", "0.2",
            "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    record = json.loads((out / "keypoints.json").read_text())
    for fitted in record["fitted"].values():
        assert 0.0 <= fitted["eta"] <= 1.0 and fitted["eta_cv"]  # chosen by cross-validation
    for method in ("detector", "detector_prior"):
        assert all(0.0 <= v <= 1.0 for v in record["scores"][method]["pck"].values())
    assert record["panels"] == 1 and len(list(out.glob("panel_*.png"))) == 1
    predicted = load_keypoints(out / "predictions.json")
    assert sum(len(o.keypoints) for im in predicted for o in im.objects) > 0


def test_keypoints_without_ground_truth_still_predicts(
    keypoint_files: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    train, val = keypoint_files
    boxes_only = [
        KeypointImage(im.image, im.size, tuple(KeypointObject(o.category, o.box) for o in im.objects))
        for im in load_keypoints(val)
    ]
    save_keypoints(tmp_path / "boxes.json", boxes_only)
    out = tmp_path / "kp"
    argv = ["correspond", "keypoints", str(train), str(tmp_path / "boxes.json"), "--box-size", "32",
            "--stage", "layer1", "--block", "1", "--rounds", "1", "--eta", "0.1", "--panels", "0",
            "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "nothing scored" in capsys.readouterr().out
    record = json.loads((out / "keypoints.json").read_text())
    assert record["scores"] is None and all(f["eta"] == 0.1 for f in record["fitted"].values())
    assert sum(len(o.keypoints) for im in load_keypoints(out / "predictions.json") for o in im.objects) > 0
    folds = ["correspond", "keypoints", str(train), str(val), "--folds", "99", "--output", str(out)]
    _one_line_error(folds, capsys, "--folds 99", "--eta")
    _one_line_error([*folds, "--block", "2"], capsys, "--block 2", "odd")


def test_the_config_module_lists_the_library_orders() -> None:
    from pixelwise.methods.correspondence.config import ORDERS as config_orders
    from pixelwise.methods.correspondence.transfer import ORDERS

    assert config_orders == ORDERS


def test_panels_are_rgb_images(keypoint_files: tuple[Path, Path], tmp_path: Path) -> None:
    train, val = keypoint_files
    out = tmp_path / "t"
    argv = ["correspond", "transfer", str(train), str(val), "--box-size", "16", "--stage", "layer1",
            "--neighbours", "1", "--top", "1", "--iterations", "2", "--radius", "1", "--panels", "1",
            "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    (panel,) = out.glob("panel_*.png")
    array = np.asarray(Image.open(panel))
    assert array.ndim == 3 and array.shape[2] == 3 and array.shape[1] >= 3 * 192
