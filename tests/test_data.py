"""Datasets, validation errors and joint transforms (fast: tiny files in tmp_path, small synthetic sets)."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn.functional import max_pool2d
from torch.utils.data import default_collate
from torchvision import tv_tensors

from pixelwise.data import (
    CAMVID_INFO,
    DatasetError,
    DatasetInfo,
    Depth,
    SyntheticScenes,
    build_dataset,
    eval_transforms,
    train_transforms,
    validation_spec,
)

# ---------------------------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_per_seed_split_and_index():
    a, b = SyntheticScenes(4, seed=1), SyntheticScenes(4, seed=1, cache=False)
    b[0]  # access order must not matter
    for i in (3, 1):
        (ia, ta), (ib, tb) = a[i], b[i]
        assert (
            torch.equal(ia, ib)
            and torch.equal(ta["seg"], tb["seg"])
            and torch.equal(ta["depth"], tb["depth"])
        )
    assert not torch.equal(a[0][0], SyntheticScenes(1, seed=2)[0][0])
    assert not torch.equal(a[0][0], SyntheticScenes(1, seed=1, split="val")[0][0])


def test_synthetic_shapes_dtypes_ranges():
    ds = build_dataset("synthetic", "val", size=(60, 80), length=3)
    assert len(ds) == 3 and len(ds.names) == 3 and ds.info.num_classes == 6 and ds.info.name == "synthetic"
    for image, target in ds:
        assert (
            isinstance(image, tv_tensors.Image)
            and image.dtype == torch.float32
            and image.shape == (3, 60, 80)
        )
        assert 0 <= image.min() and image.max() <= 1
        seg, depth, tags = target["seg"], target["depth"], target["tags"]
        assert isinstance(seg, tv_tensors.Mask) and seg.dtype == torch.int64 and seg.shape == (60, 80)
        assert (
            isinstance(depth, tv_tensors.Mask) and depth.dtype == torch.float32 and depth.shape == (1, 60, 80)
        )
        assert 0 <= seg.min() and seg.max() < 6
        assert (depth > 0).all() and depth.max() <= 80
        assert tags.dtype == torch.float32 and tags.tolist() == [float(c in seg) for c in range(6)]
    assert build_dataset("synthetic").__len__() == 200 and build_dataset("synthetic", "val").__len__() == 50
    small = build_dataset("synthetic:8:32x48", "val")
    assert len(small) == 4 and small[0][0].shape == (3, 32, 48)
    with pytest.raises(DatasetError, match="synthetic:0"):
        build_dataset("synthetic:0")


def test_default_collate_and_preload():
    ds = SyntheticScenes(3, size=(32, 48), transform=train_transforms((24, 32)))
    ds.preload(progress=False)
    images, targets = default_collate([ds[i] for i in range(3)])
    assert images.shape == (3, 3, 24, 32) and targets["seg"].shape == (3, 24, 32)
    assert targets["depth"].shape == (3, 1, 24, 32) and targets["tags"].shape == (3, 6)


# ---------------------------------------------------------------------------------------------- transforms

_COLOURS = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 0]])


def _colour_coded_sample(seed: int):
    """An image whose colour encodes the label: blocky labels, so only block edges get blended."""
    g = torch.Generator().manual_seed(seed)
    seg = torch.randint(0, 4, (5, 6), generator=g).repeat_interleave(12, 0).repeat_interleave(12, 1)
    image = tv_tensors.Image(_COLOURS[seg].permute(2, 0, 1).contiguous())
    tags = torch.tensor([1.0, 0.0, 1.0])
    target = {"seg": tv_tensors.Mask(seg), "depth": Depth(seg[None].float() + 1), "tags": tags}
    return image, target, tags


@pytest.mark.parametrize("seed", range(6))
def test_train_transforms_keep_labels_integer_and_aligned(seed):
    torch.manual_seed(seed)
    image, target, tags = _colour_coded_sample(seed)
    t = train_transforms((48, 64), scale=(0.6, 1.6), color_jitter=0.0)
    out_img, out = t(image, target)
    seg, depth = out["seg"], out["depth"]
    assert out["tags"] is tags  # plain tensors pass through untouched
    assert out_img.shape == (3, 48, 64) and seg.shape == (48, 64) and seg.dtype == torch.int64
    assert set(seg.unique().tolist()) <= {0, 1, 2, 3, 255}
    assert torch.equal(depth[0][seg != 255], seg[seg != 255].float() + 1)  # depth moved with the labels
    assert (depth[0][seg == 255] == 0).all()  # padding: ignore label, unknown depth
    # Away from label edges the pixel colour must still encode its label.
    s = seg[None, None].float()
    interior = (max_pool2d(s, 5, 1, 2) == -max_pool2d(-s, 5, 1, 2))[0, 0] & (seg != 255)
    interior[:, [0, 1, -2, -1]] = interior[[0, 1, -2, -1]] = (
        False  # label edges may lie just outside the crop
    )
    nearest = torch.cdist(out_img.permute(1, 2, 0).reshape(-1, 3), _COLOURS).argmin(1).reshape(48, 64)
    assert interior.sum() > 100 and torch.equal(nearest[interior], seg[interior])


def test_train_transforms_pad_small_images_and_colour_jitter_only_touches_image():
    image, target, _ = _colour_coded_sample(0)
    out_img, out = train_transforms((100, 100), scale=(1.0, 1.0), hflip=False, color_jitter=0.5)(
        image, target
    )
    assert out_img.shape == (3, 100, 100) and (out["seg"] == 255).sum() == 100 * 100 - 60 * 72
    assert set(out["seg"].unique().tolist()) <= {0, 1, 2, 3, 255}


def test_eval_transforms_is_identity():
    image, target, _ = _colour_coded_sample(0)
    out_img, out = eval_transforms()(image, target)
    assert torch.equal(out_img, image) and torch.equal(out["seg"], target["seg"])


# ---------------------------------------------------------------------------------------------- files


def _write_dataset(root: Path, n: int = 2, size=(8, 12), classes=("a", "b", "c")) -> Path:
    """n RGB images + valid L labels, list.txt and classes.txt under root; returns the list file."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "lab").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / "img" / f"s{i}.png")
        Image.fromarray(rng.integers(0, len(classes), size, dtype=np.uint8)).save(root / "lab" / f"s{i}.png")
        lines.append(f"img/s{i}.png lab/s{i}.png")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root / "list.txt"


def test_list_file_dataset_loads(tmp_path):
    ds = build_dataset(str(_write_dataset(tmp_path)), "ignored", size=(4, 6))
    assert len(ds) == 2 and ds.names == ["s0", "s1"] and ds.info.class_names == ("a", "b", "c")
    image, target = ds[1]
    assert image.shape == (3, 4, 6) and target["seg"].shape == (4, 6) and target["seg"].max() < 3
    assert ds.validate() == []


def test_folders_spec(tmp_path):
    _write_dataset(tmp_path)
    (tmp_path / "lab" / "classes.txt").write_text("a\nb\nc\n")
    ds = build_dataset(f"folders:{tmp_path / 'img'}:{tmp_path / 'lab'}")
    assert len(ds) == 2 and ds.names == ["s0", "s1"]
    (tmp_path / "img" / "extra.png").write_bytes((tmp_path / "img" / "s0.png").read_bytes())
    with pytest.raises(DatasetError, match="extra.png"):
        build_dataset(f"folders:{tmp_path / 'img'}:{tmp_path / 'lab'}")


def test_validation_of_split_less_data_is_said_out_loud(tmp_path):
    """A list file or folder pair has no 'val' split: validating on its training images must not be silent."""
    list_file = str(_write_dataset(tmp_path))
    with pytest.warns(UserWarning, match="--val-data"):
        assert validation_spec(list_file, None) == list_file
    assert validation_spec(list_file, "held-out.txt") == "held-out.txt"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert validation_spec("camvid:/data", None) == "camvid:/data"  # has a val split: no warning
        assert validation_spec("synthetic:8", None) == "synthetic:8"


def _load_error(list_file: Path) -> str:
    with pytest.raises(DatasetError) as info:
        build_dataset(str(list_file))[0]
    return str(info.value)


def test_missing_file(tmp_path):
    list_file = _write_dataset(tmp_path)
    (tmp_path / "lab" / "s1.png").unlink()
    assert "s1.png" in _load_error(list_file)


def test_corrupt_image_reported_lazily_and_by_validate(tmp_path):
    list_file = _write_dataset(tmp_path)
    (tmp_path / "img" / "s1.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    ds = build_dataset(str(list_file))
    ds[0]  # the good sample still loads
    with pytest.raises(DatasetError, match="s1.png.*corrupt"):
        ds[1]
    problems = ds.validate()
    assert len(problems) == 1 and "s1.png" in problems[0]


def test_size_mismatch(tmp_path):
    list_file = _write_dataset(tmp_path)
    Image.fromarray(np.zeros((8, 11), np.uint8)).save(tmp_path / "lab" / "s0.png")
    assert "s0.png" in _load_error(list_file)


def test_out_of_range_values_named_with_pixel_counts(tmp_path):
    list_file = _write_dataset(tmp_path)
    label = np.zeros((8, 12), np.uint8)
    label[:2, :3], label[7, 0] = 7, 255  # 6 bad pixels; 255 is the allowed ignore value
    Image.fromarray(label).save(tmp_path / "lab" / "s0.png")
    message = _load_error(list_file)
    assert "s0.png" in message and "7 (6 px)" in message and "255" in message


def test_colour_coded_label(tmp_path):
    list_file = _write_dataset(tmp_path)
    rgb = np.zeros((8, 12, 3), np.uint8)
    rgb[:4] = (128, 64, 128)
    Image.fromarray(rgb).save(tmp_path / "lab" / "s0.png")
    message = _load_error(list_file)
    assert "s0.png" in message and "colour-coded" in message and "palette" in message


def test_grey_label_saved_as_rgb_is_accepted(tmp_path):
    list_file = _write_dataset(tmp_path)
    Image.fromarray(np.full((8, 12), 2, np.uint8)).convert("RGB").save(tmp_path / "lab" / "s0.png")
    assert (build_dataset(str(list_file))[0][1]["seg"] == 2).all()


@pytest.mark.parametrize(
    ("content", "needle"),
    [("", "list.txt"), ("# only a comment\n", "list.txt"), ("img/s0.png lab/s0.png\nimg/s1.png\n", "list.txt:2"),
     ("img/s0.png ../lab/s0.png\n", "list.txt:1"), ("/etc/passwd lab/s0.png\n", "list.txt:1")],
)  # fmt: skip
def test_bad_list_files(tmp_path, content, needle):
    list_file = _write_dataset(tmp_path)
    list_file.write_text(content)
    assert needle in _load_error(list_file)


def test_missing_classes_file(tmp_path):
    list_file = _write_dataset(tmp_path)
    (tmp_path / "classes.txt").unlink()
    assert "classes.txt" in _load_error(list_file)


def test_unknown_spec():
    with pytest.raises(DatasetError, match="synthetic"):
        build_dataset("no/such/list.txt")


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "P"])
def test_unusual_image_modes_become_rgb_float(tmp_path, mode):
    list_file = _write_dataset(tmp_path)
    if mode == "I;16":
        Image.fromarray(np.full((8, 12), 65535, np.uint16)).save(tmp_path / "img" / "s0.png")
    else:
        Image.new(mode, (12, 8), 255 if mode in ("L", "P") else (255, 255, 255, 0)).save(
            tmp_path / "img" / "s0.png"
        )
    image = build_dataset(str(list_file))[0][0]
    assert (
        image.shape == (3, 8, 12) and image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    )
    if mode != "P":
        assert (image == 1).all()  # full scale, alpha dropped, 16-bit scaled rather than clipped


def test_exif_orientation_applied(tmp_path):
    list_file = _write_dataset(tmp_path)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": a 12x8 stored image is shown as 8x12
    Image.new("RGB", (8, 12)).save(tmp_path / "img" / "s0.jpg", exif=exif)
    list_file.write_text("img/s0.jpg lab/s0.png\n")
    assert build_dataset(str(list_file))[0][0].shape == (3, 8, 12)


def test_dataset_info():
    assert CAMVID_INFO.num_classes == 11 and CAMVID_INFO.palette[3] == (128, 64, 128)
    with pytest.raises(ValueError):
        DatasetInfo("x", ("a", "b"), ((0, 0, 0),))


# ---------------------------------------------------------------------------------------------- CamVid


@pytest.mark.camvid
def test_camvid(camvid_root):
    train, val = (
        build_dataset(f"camvid:{camvid_root}"),
        build_dataset(f"camvid:{camvid_root}", "val", cache=False),
    )
    assert (len(train), len(val)) == (367, 101) and train.info == CAMVID_INFO
    image, target = train[0]
    assert image.shape == (3, 360, 480) and target["seg"].shape == (360, 480)
    values = set(target["seg"].unique().tolist()) | set(val[0][1]["seg"].unique().tolist())
    assert values <= set(range(11)) | {255} and 255 in values  # void (11) became ignore
    small = build_dataset(f"camvid:{camvid_root}", "val", size=(180, 240), length=2)
    image, target = small[1]
    assert len(small) == 2 and image.shape == (3, 180, 240) and target["seg"].shape == (180, 240)
    assert set(target["seg"].unique().tolist()) <= set(range(11)) | {255}


def test_exif_orientation_applied_to_labels_too(tmp_path):
    """A label map carrying the same EXIF rotation as its photo is turned upright like the photo."""
    list_file = _write_dataset(tmp_path)
    exif = Image.Exif()
    exif[0x0112] = 6
    label = np.zeros((12, 8), np.uint8)
    label[0, :] = 2  # top row when stored -> right column when shown
    Image.fromarray(label).save(tmp_path / "lab" / "s0.png", exif=exif)
    seg = build_dataset(str(list_file))[0][1]["seg"]
    assert seg.shape == (8, 12) and (seg[:, -1] == 2).all() and seg[:, :-1].max() == 0


def test_empty_folders_are_named(tmp_path):
    images, labels = tmp_path / "img", tmp_path / "lab"
    images.mkdir()
    labels.mkdir()
    (labels / "classes.txt").write_text("a\nb\n")
    with pytest.raises(DatasetError, match=f"{images}: no images found"):
        build_dataset(f"folders:{images}:{labels}")
    Image.new("RGB", (4, 4)).save(images / "x.png")
    with pytest.raises(DatasetError, match=f"{labels}: no label maps found"):
        build_dataset(f"folders:{images}:{labels}")
