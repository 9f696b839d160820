"""Keypoints (Long thesis §2.3-2.4; spec correspondence-keypoints.md P4-P6): synthetic instance maps and analytic
keypoints, the JSON format and CamVid component keypoints, the torch linear SVM and its cross-validated C,
keypoint classification features, and keypoint prediction (blocks, hard negatives, the NN prior, eta)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pixelwise.data import DatasetError, SyntheticScenes
from pixelwise.data.keypoints import (
    COMPONENT_KEYPOINTS,
    Keypoint,
    KeypointImage,
    KeypointObject,
    camvid_keypoint_images,
    component_keypoints,
    load_keypoints,
    save_keypoints,
)
from pixelwise.data.scene import (
    BUILDING,
    KEYPOINT_NAMES,
    PERSON,
    ROAD,
    SKY,
    VEGETATION,
    VEHICLE,
    EgoMotion,
    _object_shape,
    _upsample_grid,
    object_keypoints,
    render_scene_full,
    render_second_frame,
)
from pixelwise.methods.correspondence import FeatureConfig, dense_features, feature_extractor
from pixelwise.methods.correspondence.features import FeatureGrid
from pixelwise.methods.correspondence.keypoints import (
    BoxSet,
    DetectorConfig,
    KeypointPredictor,
    LinearSVM,
    argmax_cells,
    block_features,
    box_set,
    combine,
    crop_boxes,
    cross_validate_c,
    default_sigma,
    expand_boxes,
    features_at,
    fit_predictor,
    fit_svm,
    from_box_frame,
    jitter_boxes,
    keypoint_samples,
    kfold,
    prediction_pck,
    prior_means,
    shift_and_stitch,
    sift_at,
    to_box_frame,
    train_detector,
    training_masks,
    window_argmax,
)
from pixelwise.models.receptive_field import Grid

# ------------------------------------------------------------------------- synthetic instances and keypoints

# sha256 of the renderer's outputs below, computed with the renderer as it was before instance maps and
# keypoints were added (git HEAD scene.py, imported side by side): other tests rely on these exact pixels.
RENDER_DIGEST = "24a4309a87263b53e77bbd111499736b6217b21f3e39bb1e8e0a74d537077b58"


def _render_digest() -> str:
    digest = hashlib.sha256()
    for seed in range(4):
        scene = render_scene_full(np.random.default_rng([seed, 3]), 48, 64)
        second = render_second_frame(scene, EgoMotion(forward=1.0, right=0.2, yaw=0.03))
        for array in (scene.image, scene.seg, scene.depth, *second):
            digest.update(np.ascontiguousarray(array).tobytes())
    dataset = SyntheticScenes(3, size=(48, 64), seed=2, cache=False)
    for index in range(3):
        image, target = dataset[index]
        assert sorted(target) == ["depth", "seg", "tags"]  # the items did not grow an instance map
        for tensor in (image, target["seg"], target["depth"], target["tags"]):
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def test_existing_renders_are_bit_identical() -> None:
    assert _render_digest() == RENDER_DIGEST


def _scenes(n: int = 24, size: tuple[int, int] = (60, 80)):
    return [render_scene_full(np.random.default_rng([seed, 5]), *size) for seed in range(n)]


def test_instance_ids_agree_with_the_class_and_depth_maps() -> None:
    for scene in _scenes():
        ids = scene.instances
        assert ids.dtype == np.int32 and ids.shape == scene.seg.shape
        for instance, painted in enumerate(scene.objects, start=1):
            where = ids == instance
            assert (scene.seg[where] == painted.obj.cls).all()
            assert (scene.depth[where] == np.float32(painted.obj.z)).all()
        # Every object class pixel belongs to an object; id 0 is sky, road or verge (vegetation) only.
        assert (ids[np.isin(scene.seg, (BUILDING, VEHICLE, PERSON))] > 0).all()
        assert np.isin(scene.seg[ids == 0], (SKY, ROAD, VEGETATION)).all()


def test_instance_map_is_occlusion_correct() -> None:
    """Recomputed independently: each pixel belongs to the last-painted (nearest) object whose shape covers it."""
    for scene in _scenes(12):
        h, w = scene.size
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
        noise = _upsample_grid(scene.noise_grid, h, w, scene.noise_cell)
        expected = np.zeros((h, w), np.int32)
        depths = [p.obj.z for p in scene.objects]
        assert depths == sorted(depths, reverse=True)  # painting order is far to near
        for instance, painted in enumerate(scene.objects, start=1):
            mask, _ = _object_shape(
                painted.obj, scene.camera, yy, xx, noise, painted.surface.lum, painted.window
            )
            expected[mask] = instance
        np.testing.assert_array_equal(scene.instances, expected)


def _own_mask(scene, instance: int) -> np.ndarray:
    h, w = scene.size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    painted = scene.objects[instance - 1]
    return _object_shape(painted.obj, scene.camera, yy, xx, np.zeros((h, w)), 0.5, 1.0)[0]


def test_keypoint_visibility_matches_the_instance_map() -> None:
    clear_objects = 0
    for scene in _scenes(40):
        h, w = scene.size
        for kp in scene.keypoints():
            rows, cols = np.floor(kp.points + 0.5).astype(int).T  # the pixel holding each point
            inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
            holder = np.zeros(len(rows), np.int64)
            holder[inside] = scene.instances[rows[inside], cols[inside]]
            np.testing.assert_array_equal(kp.visible, inside & (holder == kp.instance))
            assert kp.pixels == int((scene.instances == kp.instance).sum())
            # A hidden keypoint inside the image is covered by a nearer (later-painted) object, or its pixel
            # is off the object's own silhouette (which never happens to an unoccluded object, below).
            own = _own_mask(scene, kp.instance)
            hidden = np.flatnonzero(inside & ~kp.visible)
            covered = holder[hidden] > kp.instance
            assert (covered | ~own[rows[hidden], cols[hidden]]).all()
            unoccluded = not (own & (scene.instances != kp.instance)).any()
            if not kp.truncated and unoccluded and kp.box_size[0] >= 8:
                # Unoccluded, inside the image and not tiny: every keypoint is seen. (Under ~7 px a keypoint
                # can fall between the pixel centres its silhouette covers.)
                assert kp.visible.all()
                clear_objects += 1
    assert clear_objects >= 10


def test_keypoints_lie_inside_their_objects_box_in_the_expected_layout() -> None:
    count = 0
    for scene in _scenes(30):
        for kp in scene.keypoints():
            count += 1
            top, left, bottom, right = kp.box
            assert kp.names == KEYPOINT_NAMES[kp.cls] and kp.points.shape == (5, 2)
            assert (kp.points[:, 0] >= top).all() and (kp.points[:, 0] <= bottom).all()
            assert (kp.points[:, 1] >= left).all() and (kp.points[:, 1] <= right).all()
            p = dict(zip(kp.names, kp.points))
            if kp.cls == PERSON:
                assert p["head_top"][0] < p["head_centre"][0] < p["body_left"][0] < p["feet"][0]
                assert p["body_left"][1] < p["head_centre"][1] < p["body_right"][1]
            else:
                assert p["roof"][0] < p["left"][0] < p["bottom_left"][0]
                columns = [p[name][1] for name in ("left", "bottom_left", "roof", "bottom_right", "right")]
                # The 1 px inset can carry a tiny vehicle's extremes past its corners: only wider ones.
                assert kp.box_size[1] < 8 or columns == sorted(columns)
    assert count > 40
    with pytest.raises(ValueError, match="no keypoints are defined for classes \\[1\\]"):
        object_keypoints(_scenes(1)[0], (BUILDING,))


def test_synthetic_scenes_give_instances_and_keypoints_outside_the_items() -> None:
    dataset = SyntheticScenes(3, size=(48, 64), seed=4)
    for index in range(3):
        scene = dataset.scene(index)
        instances = dataset.instances(index)
        assert instances.dtype == torch.int64 and torch.equal(
            instances, torch.from_numpy(scene.instances).long()
        )
        objects = [(o.instance, o.cls) for o in dataset.keypoints(index)]
        assert objects == [
            (i, p.obj.cls) for i, p in enumerate(scene.objects, 1) if p.obj.cls in (VEHICLE, PERSON)
        ]
        seg = dataset.load_raw(index)[1]
        assert set(seg[instances == 0].unique().tolist()) <= {SKY, ROAD, VEGETATION}
        assert set(seg[instances > 0].unique().tolist()) <= {BUILDING, VEGETATION, VEHICLE, PERSON}


# --------------------------------------------------------------------------------- JSON keypoints, CamVid


def _image(path: Path, size: tuple[int, int] = (20, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((*size, 3), np.uint8)).save(path)
    return path


def _annotated(tmp_path: Path) -> KeypointImage:
    obj = KeypointObject(
        "car",
        (2.5, 3.5, 12.5, 20.5),
        {"left": Keypoint(7.0, 4.0), "roof": Keypoint(3.0, 12.25, visible=False)},
    )
    return KeypointImage(
        _image(tmp_path / "frames" / "a.png"), (20, 30), (obj, KeypointObject("person", (0, 0, 5, 5)))
    )


def test_keypoint_json_round_trip(tmp_path: Path) -> None:
    annotated = _annotated(tmp_path)
    save_keypoints(tmp_path / "out" / "kp.json", [annotated])
    data = json.loads((tmp_path / "out" / "kp.json").read_text())
    assert data["images"][0]["image"] == "../frames/a.png"  # relative to the JSON file
    (loaded,) = load_keypoints(tmp_path / "out" / "kp.json")
    assert loaded.image.resolve() == annotated.image.resolve()
    assert loaded.size == annotated.size and loaded.objects == annotated.objects
    points, visible = loaded.objects[0].arrays(("roof", "missing", "left"))
    assert torch.equal(points[0], torch.tensor([3.0, 12.25])) and torch.isnan(points[1]).all()
    assert visible.tolist() == [False, False, True]
    # A working frame at half size: rescaled on load, rescaled back on save (pixel centres map (p + .5) s - .5).
    (half,) = load_keypoints(tmp_path / "out" / "kp.json", size=(10, 15))
    assert half.objects[0].keypoints["left"] == Keypoint(3.25, 1.75)
    assert half.objects[0].box == (1.0, 1.5, 6.0, 10.0) and half.objects[0].box_size == (5.0, 8.5)
    save_keypoints(tmp_path / "kp2.json", [half])
    assert load_keypoints(tmp_path / "kp2.json")[0].objects == annotated.objects


def _write(tmp_path: Path, data) -> Path:
    _image(tmp_path / "a.png")
    path = tmp_path / "kp.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _file(objects: list, **image) -> dict:
    return {
        "format": "pixelwise-keypoints",
        "version": 1,
        "images": [{"image": "a.png", "objects": objects, **image}],
    }


def _car(**keypoint) -> dict:
    return {
        "category": "car",
        "box": {"top": 1, "left": 1, "bottom": 9, "right": 9},
        "keypoints": {"k": keypoint},
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _file([_car(row=25, col=3)]),
            r"images\[0\].objects\[0\].keypoints.k: \(row 25, col 3\) lies outside",
        ),
        (_file([_car(row=-1, col=3)]), "lies outside the 20x30 image a.png"),
        (_file([_car(row=2, col=3, visibile=True)]), "unknown field.*'visibile'"),
        (_file([_car(row=2, col=3, visible="yes")]), "expected true or false"),
        (_file([_car(row=2, col="x")]), r"keypoints.k.col: expected a finite number"),
        (
            _file([{"category": "car", "box": {"top": 5, "left": 1, "bottom": 25, "right": 9}}]),
            "leaves the 20x30",
        ),
        (_file([{"category": "car"}]), "missing 'box'"),
        (_file([], size=[30, 20]), r"\[30, 20\] does not match the image's \[H, W\] = \[20, 30\]"),
        (
            {"format": "pixelwise-keypoints", "version": 1, "images": [{"image": "b.png", "objects": []}]},
            "not found",
        ),
        ({"format": "coco", "version": 1, "images": []}, "expected 'pixelwise-keypoints' version 1"),
        ('{"format": "pixelwise-keypoints",\n "version": 1,,}', r"kp.json:2: not valid JSON"),
    ],
)
def test_keypoint_json_errors_are_one_clear_line(tmp_path: Path, data, message: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(DatasetError, match=message) as error:
        load_keypoints(path)
    assert "\n" not in str(error.value) and str(error.value).startswith(str(path))


def test_a_missing_keypoint_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="keypoint file not found"):
        load_keypoints(tmp_path / "nothing.json")


def test_component_keypoints_by_hand() -> None:
    label = np.zeros((40, 50), np.uint8)
    label[5:25, 5:25] = 8  # car, 400 px: kept
    label[2:4, 30:35] = 8  # car, 10 px: too small
    label[0:30, 44:50] = 9  # pedestrian touching the border: cut, dropped even when small ones count
    label[26:38, 5:40] = 9  # pedestrian, 12 x 35 = 420 px: kept (row 25 keeps it apart from the car)
    objects = component_keypoints(torch.from_numpy(label))
    assert [o.category for o in objects] == ["car", "pedestrian"]
    car, person = objects
    assert car.box == (4.5, 4.5, 24.5, 24.5) and car.box_size == (20.0, 20.0)
    assert list(car.keypoints) == list(COMPONENT_KEYPOINTS)
    k = {name: (p.row, p.col) for name, p in car.keypoints.items()}
    assert k == {
        "top": (5, 15),
        "bottom": (24, 15),
        "left": (15, 5),
        "right": (15, 24),
        "centroid": (14.5, 14.5),
    }
    assert all(p.visible for p in car.keypoints.values())
    assert person.box == (25.5, 4.5, 37.5, 39.5)
    assert len(component_keypoints(label, min_pixels=10)) == 3  # the small car joins


@pytest.mark.camvid
def test_camvid_component_keypoints_lie_on_their_class(camvid_root: Path) -> None:
    from pixelwise.data.camvid import camvid_dataset

    dataset = camvid_dataset(camvid_root, "val", length=3)
    images = camvid_keypoint_images(dataset, min_pixels=400)
    assert len(images) == 3 and sum(len(im.objects) for im in images) > 0
    for index, annotated in enumerate(images):
        label = dataset.load_label(index).numpy()
        assert annotated.size == label.shape
        for obj in annotated.objects:
            class_id = {"car": 8, "pedestrian": 9}[obj.category]
            for name in ("top", "bottom", "left", "right"):
                point = obj.keypoints[name]
                assert label[int(point.row), int(point.col)] == class_id


# ------------------------------------------------------------------------------------------ the linear SVM


def test_svm_separates_a_separable_toy_set() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 5, generator=generator, dtype=torch.float64) * 4
    labels = torch.arange(90) % 3
    x = centres[labels] + 0.3 * torch.randn(90, 5, generator=generator, dtype=torch.float64)
    svm = fit_svm(x, labels, 3, c=100.0)
    assert torch.equal(svm.predict(x), labels)
    scores = svm(x)
    assert (scores.gather(1, labels[:, None]) > 0).all()  # each one-vs-rest SVM puts its class on its side


def test_svm_reaches_the_analytic_optimum() -> None:
    """Points -1 / +1: the squared-hinge optimum is b = 0, w = 4C / (1 + 4C); the plain hinge's is the hard
    margin w = 1 for C >= 1/2 (the argmin of w^2 / 2 + 2C (1 - w))."""
    x, targets = (
        torch.tensor([[1.0], [-1.0]], dtype=torch.float64),
        torch.tensor([[1.0], [-1.0]], dtype=torch.float64),
    )
    for c in (0.1, 1.0, 100.0):
        svm = LinearSVM(1, 1).double().fit(x, targets, c)
        assert svm.weight.item() == pytest.approx(4 * c / (1 + 4 * c), abs=1e-6)
        assert svm.bias.item() == pytest.approx(0.0, abs=1e-6)
    hinge = LinearSVM(1, 1).double().fit(x, targets, 10.0, loss="hinge")
    assert hinge.weight.item() == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="C must be a positive"):
        LinearSVM(1, 1).fit(x, targets, 0.0)


def _noisy_toy(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One informative dimension among 60 noisy ones (two overlapping classes)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=generator)
    x = torch.randn(n, 60, generator=generator, dtype=torch.float64)
    x[:, 0] += labels * 2 - 1
    return x, labels


def test_c_is_chosen_by_cross_validation_on_a_toy_set() -> None:
    """Tiny C learns nothing (the bias alone: chance); CV rejects it, and the C it picks generalises to fresh
    samples. On a separable set every C from 1e-2 up is perfect and the tie goes to the smallest."""
    x, labels = _noisy_toy(0, 120)
    cs = (1e-6, 1e-2, 1e4)
    result = cross_validate_c(x, labels, 2, cs=cs, folds=4, max_iter=200)
    assert set(result.scores) == set(cs) and result.scores[result.best] == max(result.scores.values())
    assert result.scores[1e-6] < 0.6 and result.best != 1e-6 and result.scores[result.best] > 0.75
    fresh_x, fresh_labels = _noisy_toy(1, 400)
    accuracy = {
        c: float((fit_svm(x, labels, 2, c, max_iter=200).predict(fresh_x) == fresh_labels).double().mean())
        for c in (1e-6, result.best)
    }
    assert accuracy[result.best] > 0.7 > 0.6 > accuracy[1e-6]

    generator = torch.Generator().manual_seed(1)
    centres = torch.randn(3, 5, generator=generator, dtype=torch.float64) * 4
    classes = torch.arange(60) % 3
    separable = centres[classes] + 0.3 * torch.randn(60, 5, generator=generator, dtype=torch.float64)
    tied = cross_validate_c(separable, classes, 3, cs=(1.0, 1e-8, 1e-2, 100.0), folds=3)
    assert list(tied.scores) == [1e-8, 1e-2, 1.0, 100.0]  # sorted
    assert tied.scores[1e-8] < 0.5 and tied.scores[1e-2] == tied.scores[100.0] == 1.0 and tied.best == 1e-2


def test_folds_keep_each_instance_whole() -> None:
    groups = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4, 5])
    folds = kfold(len(groups), 3, groups, seed=1)
    assert sorted(torch.cat(folds).tolist()) == list(range(10))
    for fold in folds:
        for other in folds:
            if fold is not other:
                assert not set(groups[fold].tolist()) & set(groups[other].tolist())
    assert [f.tolist() for f in kfold(10, 3, groups, seed=1)] == [f.tolist() for f in folds]
    with pytest.raises(ValueError, match="7 folds need"):
        kfold(10, 7, groups)


# -------------------------------------------------------------------------------- §2.3 classification


def test_features_at_reads_the_cell_with_the_nearest_rf_centre() -> None:
    grid = Grid(8, 3.5)  # a 2x2-pooled layout: cell i centred on pixel 8 i + 3.5
    features = torch.arange(4 * 5, dtype=torch.float32).view(1, 1, 4, 5).repeat(2, 1, 1, 1)
    features[1] += 100
    cells = FeatureGrid(features, grid, (32, 40))
    points = torch.tensor([[3.5, 3.5], [7.4, 7.6], [11.6, 27.4], [-5.0, 60.0], [30.0, 0.0]])
    images = torch.tensor([0, 0, 0, 1, 1])
    # (row, col) cells: (0, 0), (0, 1), (1, 3), clamped (0, 4), (3, 0)
    assert features_at(cells, images, points)[:, 0].tolist() == [0.0, 1.0, 8.0, 104.0, 115.0]
    with pytest.raises(ValueError, match="NaN"):
        features_at(cells, images[:1], torch.tensor([[math.nan, 1.0]]))


def test_keypoint_samples_label_each_visible_keypoint_with_its_type() -> None:
    keypoints = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    visible = torch.tensor([[True, False, True], [False, True, True]])
    samples = keypoint_samples(keypoints, visible, images=torch.tensor([7, 9]))
    assert samples.labels.tolist() == [0, 2, 1, 2] and samples.instances.tolist() == [0, 0, 1, 1]
    assert samples.images.tolist() == [7, 7, 9, 9] and torch.equal(samples.points[1], keypoints[0, 2])


def test_sift_at_follows_the_points() -> None:
    generator = torch.Generator().manual_seed(0)
    image = F.avg_pool2d(torch.rand(1, 1, 70, 70, generator=generator), 3, 1, 1)[0]
    shifted = torch.roll(image, shifts=(5, -3), dims=(1, 2))
    points = torch.tensor([[30.0, 30.0], [40.0, 25.0]])
    a = sift_at(image[None], torch.zeros(2, dtype=torch.long), points, radius=12)
    b = sift_at(
        shifted[None], torch.zeros(2, dtype=torch.long), points + torch.tensor([5.0, -3.0]), radius=12
    )
    assert a.shape == (2, 128) and torch.allclose(a.norm(dim=1), torch.ones(2))
    assert torch.allclose(a, b, atol=1e-6) and not torch.allclose(a[0], a[1])


def test_shift_and_stitch_interleaves_the_cells_of_shifted_inputs() -> None:
    torch.manual_seed(0)
    extractor = feature_extractor(None, ("layer2",), FeatureConfig("resnet18"))
    image = torch.rand(3, 32, 40)
    stitched = shift_and_stitch(extractor, "layer2", image, lambda features: features[0, :2])
    assert stitched.grid == Grid(1, 0.0) and stitched.features.shape == (1, 2, 32, 40)
    for dy, dx in ((0, 0), (3, 5), (7, 7)):
        direct = dense_features(extractor, image[None, :, dy:, dx:])["layer2"].features[0, :2]
        piece = stitched.features[0, :, dy::8, dx::8]
        assert torch.allclose(piece, direct[:, : piece.shape[1], : piece.shape[2]])
    scores = torch.zeros(30, 30)
    scores[12, 17] = 1.0
    assert window_argmax(scores, Grid(1, 0.0), torch.tensor([10.0, 15.0]), window=9) == (2, 2)
    assert window_argmax(scores, Grid(1, 0.0), torch.tensor([10.0, 13.0]), window=9) is None  # on the border
    assert window_argmax(scores, Grid(1, 0.0), torch.tensor([2.0, 15.0]), window=9) is None  # leaves the map


# ------------------------------------------------------------------------------------ §2.4 prediction


def test_crops_and_the_box_frame_agree() -> None:
    rows = torch.arange(40.0).view(1, 40, 1).expand(1, 40, 48)
    cols = torch.arange(48.0).view(1, 1, 48).expand(1, 40, 48)
    image = torch.cat([rows, cols])
    boxes = torch.tensor([[5.5, 7.5, 30.5, 40.5], [0.0, 0.0, 10.0, 10.0]])
    crops = crop_boxes([image], torch.tensor([0, 0]), boxes, 16)  # a linear ramp is sampled exactly
    j, i = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    grid = torch.stack([j, i], dim=-1).reshape(1, -1, 2).expand(2, -1, -1)
    image_points = from_box_frame(grid, boxes, 16)
    assert torch.allclose(crops.flatten(2).transpose(1, 2), image_points, atol=1e-5)
    assert torch.allclose(to_box_frame(image_points, boxes, 16), grid, atol=1e-5)
    assert torch.allclose(expand_boxes(boxes[1:], 0.1), torch.tensor([[-1.0, -1.0, 11.0, 11.0]]))
    jittered = jitter_boxes(boxes, 0.1, 0.2, torch.Generator().manual_seed(0))
    size, centre = jittered[:, 2:] - jittered[:, :2], (jittered[:, :2] + jittered[:, 2:]) / 2
    extent = boxes[:, 2:] - boxes[:, :2]
    assert ((size / extent - 1).abs() <= 0.2 + 1e-6).all()
    assert ((centre - (boxes[:, :2] + boxes[:, 2:]) / 2).abs() <= 0.1 * extent + 1e-6).all()


def test_block_features_concatenate_the_3x3_neighbourhood() -> None:
    features = torch.randn(1, 2, 4, 5)
    blocks = block_features(FeatureGrid(features, Grid(4), (16, 20))).features
    assert blocks.shape == (1, 18, 4, 5)
    block = blocks[0, :, 1, 2].view(2, 3, 3)
    assert torch.equal(block, features[0, :, 0:3, 1:4])
    corner = blocks[0, :, 0, 0].view(2, 3, 3)
    assert (corner[:, 0] == 0).all() and (corner[:, :, 0] == 0).all()  # zero padding
    assert torch.equal(corner[:, 1:, 1:], features[0, :, 0:2, 0:2])


def _planted(
    seed: int, n: int = 60, poses: int | None = None, decoys: bool = False, jitter: float = 6.0
) -> BoxSet:
    """Instances on a 16 x 16 grid (stride 4, S = 64) whose cells hold noise plus, per keypoint type, a smooth
    blob of that type's vector centred on the keypoint; ``decoys`` plants a second blob elsewhere. With
    ``poses`` the keypoints cluster around a few layouts that the descriptors reveal (the prior's signal)."""
    generator = torch.Generator().manual_seed(seed)
    k, d, h, stride = 2, 16, 16, 4
    vectors = F.normalize(torch.randn(k, d, generator=generator), dim=1) * 2
    if poses:
        layouts = 8 + torch.rand(poses, k, 2, generator=generator) * 44
        pose = torch.arange(n) % poses
        keypoints = (layouts[pose] + jitter * torch.randn(n, k, 2, generator=generator)).clamp(0, 60)
        descriptors = F.one_hot(pose, poses).float() + 0.1 * torch.randn(n, poses, generator=generator)
    else:
        keypoints = torch.rand(n, k, 2, generator=generator) * 60
        descriptors = torch.randn(n, 8, generator=generator)
    cells = FeatureGrid(0.5 * torch.randn(n, d, h, h, generator=generator), Grid(stride), (64, 64))
    centres = cells.centres()
    blobs = [keypoints] + ([8 + torch.rand(n, k, 2, generator=generator) * 44] if decoys else [])
    for where in blobs:
        weight = torch.exp(-(centres[None, None] - where[:, :, None, None]).pow(2).sum(-1) / (2 * stride**2))
        cells.features.add_(torch.einsum("nkhw,kd->ndhw", weight, vectors))
    return BoxSet(block_features(cells), keypoints, torch.ones(n, k, dtype=torch.bool), descriptors, 64)


def test_training_masks_take_the_nearest_cells_and_far_negatives() -> None:
    data = _planted(0, n=4)
    data = BoxSet(data.features, data.keypoints, torch.tensor([[1, 1], [1, 0], [1, 1], [0, 0]]).bool(),
                  data.descriptors, 64)  # fmt: skip
    positive, negative = training_masks(data, DetectorConfig(positives=10))
    distance = (data.centres().reshape(1, 1, -1, 2) - data.keypoints[:, :, None]).norm(dim=-1).transpose(1, 2)
    for n in range(4):
        for k in range(2):
            if not data.visible[n, k]:
                assert not positive[n, :, k].any() and not negative[n, :, k].any()
                continue
            assert int(positive[n, :, k].sum()) == 10
            assert distance[n, positive[n, :, k], k].max() <= distance[n, ~positive[n, :, k], k].min()
            assert torch.equal(negative[n, :, k], (distance[n, :, k] > 8.0) & ~positive[n, :, k])  # 2 strides


def test_prediction_finds_a_planted_pattern() -> None:
    data = _planted(0)
    train, test = data.subset(torch.arange(40)), data.subset(torch.arange(40, 60))
    predictor = KeypointPredictor(train_detector(train, DetectorConfig(c=1.0)), train, default_sigma(64), 0.0)
    assert prediction_pck(predictor.predict(test), test, 0.1) == 1.0  # the blob's cell, within 6.4 px
    assert (
        prediction_pck(predictor.predict(test, eta=1.0), test, 0.1) < 0.3
    )  # random layouts: the prior guesses
    a, b = predictor.detector.platt.unbind(1)
    assert (a > 0).all()


def test_eta_zero_and_one_reduce_to_detector_only_and_prior_only() -> None:
    data = _planted(1, poses=3)
    train, test = data.subset(torch.arange(40)), data.subset(torch.arange(40, 60))
    detector = train_detector(train, DetectorConfig(c=1.0))
    predictor = KeypointPredictor(detector, train, default_sigma(64), 0.3)
    centres = test.centres()
    # eta = 0: the raw SVM scores' argmax (the Platt sigmoid is increasing).
    detector_only = argmax_cells(detector.scores(test.features), centres)
    assert torch.equal(predictor.predict(test, eta=0.0), detector_only)
    # eta = 1: the cell nearest the nearest training instance's keypoint (cosine on the descriptors).
    nearest = (F.normalize(test.descriptors, dim=1) @ F.normalize(train.descriptors, dim=1).T).argmax(dim=1)
    means = train.keypoints[nearest]
    closest = (centres.reshape(1, 1, -1, 2) - means[:, :, None]).norm(dim=-1).argmin(dim=-1)
    assert torch.equal(predictor.predict(test, eta=1.0), centres.reshape(-1, 2)[closest])
    with pytest.raises(ValueError, match="eta must lie in"):
        combine(torch.zeros(1), torch.zeros(1), 1.5)
    unseen = BoxSet(
        train.features, train.keypoints, train.visible & torch.tensor([True, False]), train.descriptors, 64
    )
    with pytest.raises(ValueError, match=r"keypoint type\(s\) \[1\] are visible on none of the 40"):
        train_detector(unseen)


def test_prior_means_skip_neighbours_without_the_keypoint_and_can_exclude_one() -> None:
    descriptors = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    keypoints = torch.tensor([[[1.0, 1.0], [2.0, 2.0]], [[3.0, 3.0], [4.0, 4.0]], [[5.0, 5.0], [6.0, 6.0]]])
    visible = torch.tensor([[True, False], [True, True], [False, False]])
    means = prior_means(torch.tensor([[1.0, 0.0]]), descriptors, keypoints, visible)
    assert means.tolist() == [[[1.0, 1.0], [4.0, 4.0]]]  # type 1: the nearest lacks it, the next has it
    excluded = prior_means(descriptors[:1], descriptors, keypoints, visible, exclude=torch.tensor([0]))
    assert excluded.tolist() == [[[3.0, 3.0], [4.0, 4.0]]]
    alone = prior_means(descriptors[:1], descriptors[2:], keypoints[2:], visible[2:])
    assert torch.isnan(alone).all()  # nobody has it: a uniform prior


def test_the_prior_helps_where_decoys_fool_the_detector_and_eta_is_cross_validated() -> None:
    """Each instance holds a decoy blob too: the detector alone picks it half the time, the prior alone is
    coarse (6 px layout jitter against sigma 2.8 px); combined, the prior picks the blob and the detector
    places it, the miniature of Table 2.4's conv5 -> conv5 + prior."""
    data = _planted(2, poses=3, decoys=True)
    train, test = data.subset(torch.arange(40)), data.subset(torch.arange(40, 60))
    predictor, chosen = fit_predictor(train, DetectorConfig(c=1.0), etas=(0.0, 0.1, 0.5, 1.0), folds=4)
    assert chosen is not None and 0.0 < chosen.best < 1.0 and predictor.eta == chosen.best
    assert chosen.scores[chosen.best] > max(chosen.scores[0.0], chosen.scores[1.0])
    detector, prior, both = (
        prediction_pck(predictor.predict(test, eta), test, 0.1) for eta in (0.0, 1.0, None)
    )
    assert both > max(detector, prior) + 0.15


def test_box_set_from_synthetic_vehicles_end_to_end() -> None:
    """Crops of jittered boxes through a random backbone: shapes, frames and a PCK in the image's pixels."""
    torch.manual_seed(0)
    dataset = SyntheticScenes(40, size=(60, 80), seed=3, cache=False)
    images, index, boxes, points, visible = [], [], [], [], []
    for i in range(len(dataset)):
        scene = dataset.scene(i)
        kept = [
            o
            for o in scene.keypoints((VEHICLE,))
            if not o.truncated and o.box_size[0] >= 8 and o.visible.any()
        ]
        if kept:
            images.append(torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255)
        for obj in kept:
            index.append(len(images) - 1)
            boxes.append(obj.box)
            points.append(torch.from_numpy(obj.points))
            visible.append(torch.from_numpy(obj.visible))
    assert len(index) >= 12
    boxes_t = jitter_boxes(expand_boxes(torch.tensor(boxes), 0.1), generator=torch.Generator().manual_seed(0))
    crops = crop_boxes(images, torch.tensor(index), boxes_t, 32)
    extractor = feature_extractor(None, ("layer1", "layer2"), FeatureConfig("resnet18"))
    keypoints = to_box_frame(torch.stack(points), boxes_t, 32)
    data = box_set(extractor, crops, keypoints, torch.stack(visible), "layer1", boxes=boxes_t)
    assert data.features.features.shape == (len(index), 9 * 64, 8, 8) and data.descriptors.shape == (
        len(index),
        128,
    )
    predictor, _ = fit_predictor(data, DetectorConfig(c=1.0, rounds=2, max_iter=100), eta=0.1)
    predicted = predictor.predict(data)
    assert predicted.shape == keypoints.shape
    assert 0.0 <= prediction_pck(predicted, data, 0.1) <= 1.0
    with pytest.raises(ValueError, match="stage 'layer4' is not tapped"):
        box_set(extractor, crops, keypoints, torch.stack(visible), "layer4")
