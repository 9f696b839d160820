"""Issue 24: VOC, Cityscapes, ADE20K and label-id maps read by path, with their own classes, palettes and ids.

Every fixture is written here, in each dataset's real layout (32x48 images, the real palettes and id tables), and
every refusal is one line naming the file and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.cli.main import main
from pixelwise.data import DatasetError, build_dataset
from pixelwise.data.ade20k import ADE20K_INFO
from pixelwise.data.cityscapes import CITYSCAPES_INFO, LABEL_ID_TO_TRAIN_ID
from pixelwise.data.info import read_classes_file
from pixelwise.data.label_maps import read_label_map
from pixelwise.data.palettes import voc_palette
from pixelwise.data.voc import VOC_INFO

H, W = 32, 48
RNG = np.random.default_rng(0)


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)


def _label(path: Path, top: int, bottom: int, palette: bool = False) -> None:
    """A label map with ``top`` in the upper half and ``bottom`` in the lower; palette-mode with VOC's colours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    label = np.full((H, W), bottom, np.uint8)
    label[: H // 2] = top
    img = Image.fromarray(label, mode="L")
    if palette:
        img = img.convert("P")
        img.putpalette([v for colour in voc_palette() for v in colour])
    img.save(path)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------------- VOC


def _voc(root: Path, aug: bool = False) -> Path:
    voc = root / "VOCdevkit" / "VOC2012"
    ids = {"train": ["2007_000032", "2007_000039"], "val": ["2007_000063"]}
    for split, stems in ids.items():
        for stem in stems:
            _image(voc / "JPEGImages" / f"{stem}.jpg")
            _label(voc / "SegmentationClass" / f"{stem}.png", 15, 0, palette=True)  # person over background
        lists = voc / "ImageSets" / "Segmentation"
        lists.mkdir(parents=True, exist_ok=True)
        (lists / f"{split}.txt").write_text("\n".join(stems) + "\n")
    if aug:
        for stem in ids["train"]:
            _label(voc / "SegmentationClassAug" / f"{stem}.png", 1, 255)  # aeroplane over void, mode L
        lines = [f"/JPEGImages/{s}.jpg /SegmentationClassAug/{s}.png" for s in ids["train"]]
        (voc / "ImageSets" / "Segmentation" / "train_aug.txt").write_text("\n".join(lines) + "\n")
    return root / "VOCdevkit"


def test_voc_reads_palette_pngs_as_indices_with_voc_names_and_palette(tmp_path: Path) -> None:
    root = _voc(tmp_path)
    train, val = build_dataset(f"voc:{root}", "train"), build_dataset(f"voc:{root}", "val")
    assert len(train) == 2 and len(val) == 1 and train.names == ["2007_000032", "2007_000039"]
    label = train[0][1]["seg"]
    assert label[0, 0] == 15 and label[-1, 0] == 0  # indices, not colours
    assert train.info == VOC_INFO and VOC_INFO.class_names[15] == "person"
    assert (
        VOC_INFO.palette[0] == (0, 0, 0)
        and VOC_INFO.palette[1] == (128, 0, 0)
        and len(VOC_INFO.palette) == 21
    )


def test_voc_aug_split_reads_segmentation_class_aug(tmp_path: Path) -> None:
    root = _voc(tmp_path, aug=True)
    for split in ("aug", "train"):  # present, the SBD labels are the training set
        aug = build_dataset(f"voc:{root}", split)
        assert len(aug) == 2 and set(aug[0][1]["seg"].unique().tolist()) == {1, 255}
    plain = build_dataset(f"voc:{root}", "voc-train")
    assert set(plain[0][1]["seg"].unique().tolist()) == {0, 15}
    noaug = build_dataset(f"voc-noaug:{root}", "train")  # what `train --data voc-noaug:PATH` reads
    assert [pair[1].parent.name for pair in noaug.pairs] == ["SegmentationClass"] * len(noaug)
    assert len(build_dataset(f"voc-noaug:{root}", "val")) == len(build_dataset(f"voc:{root}", "val"))
    with pytest.raises(DatasetError, match="SegmentationClassAug"):
        build_dataset(f"voc:{_voc(tmp_path / 'plain')}", "aug")


def test_voc_split_file_naming_a_missing_image_is_refused(tmp_path: Path) -> None:
    root = _voc(tmp_path)
    (root / "VOC2012" / "JPEGImages" / "2007_000039.jpg").unlink()
    with pytest.raises(DatasetError) as exc:
        build_dataset(f"voc:{root}", "train")
    message = _one_line(exc)
    assert (
        "train.txt:2" in message and "2007_000039.jpg is missing" in message and "remove the line" in message
    )


def test_rgb_converted_voc_label_is_explained_with_vocs_real_palette(tmp_path: Path) -> None:
    images, labels = tmp_path / "img", tmp_path / "lab"
    _image(images / "a.png")
    rgb = np.zeros((H, W, 3), np.uint8)  # background black, aeroplane (128,0,0), void band, one stray colour
    rgb[:8] = (128, 0, 0)
    rgb[8:10] = (224, 224, 192)
    rgb[-2:] = (1, 2, 3)
    labels.mkdir()
    Image.fromarray(rgb).save(labels / "a.png")
    (labels / "classes.txt").write_text("\n".join(VOC_INFO.class_names) + "\n")  # names only: no palette
    dataset = build_dataset(f"folders:{images}:{labels}")
    with pytest.raises(DatasetError) as exc:
        dataset.load_uint8(0)
    message = _one_line(exc)
    assert "a.png" in message and "colour-coded" in message and "PASCAL VOC palette" in message
    assert "(0, 0, 0)->0" in message and "(128, 0, 0)->1" in message and "(224, 224, 192)->255" in message
    assert "colours not in it" in message and "(1, 2, 3)" in message


def test_mixed_label_sizes_are_refused(tmp_path: Path) -> None:
    root = _voc(tmp_path)
    label = root / "VOC2012" / "SegmentationClass" / "2007_000039.png"
    Image.open(label).resize((W // 2, H // 2), Image.NEAREST).save(label)
    dataset = build_dataset(f"voc:{root}", "train")
    with pytest.raises(DatasetError) as exc:
        dataset.preload(progress=False)
    message = _one_line(exc)
    assert "2007_000039.png" in message and "24x16" in message and "nearest neighbour" in message


def test_datasets_validate_prints_pixel_counts_and_flags_absent_classes(tmp_path: Path, capsys) -> None:
    root = _voc(tmp_path)
    assert main(["datasets", "--data", f"voc:{root}", "--validate"]) == 0
    out = capsys.readouterr().out
    half = 2 * H * W // 2
    assert f"person: {half:>12d} px" in out and f"background: {half:>12d} px" in out
    assert "aeroplane:            0 px" in out and "NEVER OCCURS" in out
    assert "19 class(es) never occur" in out


# ------------------------------------------------------------------------------------------------ Cityscapes


def _cityscapes(root: Path, train_ids: bool = False) -> Path:
    for i, city in enumerate(("aachen", "bochum")):
        stem = f"{city}_000000_00001{i}"
        _image(root / "leftImg8bit" / "train" / city / f"{stem}_leftImg8bit.png")
        gt = root / "gtFine" / "train" / city
        _label(gt / f"{stem}_gtFine_labelIds.png", 26, 7)  # car over road
        _label(gt / f"{stem}_gtFine_color.png", 3, 3)  # the other gtFine files must be ignored
        if train_ids:
            _label(gt / f"{stem}_gtFine_labelTrainIds.png", 13, 0)
    return root


def test_cityscapes_maps_label_ids_to_train_ids_with_cityscapes_names(tmp_path: Path) -> None:
    dataset = build_dataset(f"cityscapes:{_cityscapes(tmp_path)}", "train")
    assert len(dataset) == 2 and dataset.info == CITYSCAPES_INFO
    label = dataset[0][1]["seg"]
    assert label[0, 0] == 13 and label[-1, 0] == 0  # car (id 26) -> 13, road (id 7) -> 0
    assert CITYSCAPES_INFO.class_names[13] == "car" and CITYSCAPES_INFO.palette[0] == (128, 64, 128)
    assert CITYSCAPES_INFO.source_ids[13] == 26 and len(CITYSCAPES_INFO.class_names) == 19
    assert LABEL_ID_TO_TRAIN_ID[1] == 255 and LABEL_ID_TO_TRAIN_ID[33] == 18


def test_cityscapes_uses_label_train_ids_when_present(tmp_path: Path) -> None:
    dataset = build_dataset(f"cityscapes:{_cityscapes(tmp_path, train_ids=True)}", "train")
    assert all("labelTrainIds" in label.name for _, label in dataset.pairs)
    assert dataset[1][1]["seg"][0, 0] == 13 and not dataset.label_map


def _cityscapes_folders(root: Path) -> tuple[Path, Path]:
    _cityscapes(root)
    labels = root / "gtFine" / "train"
    (labels / "classes.txt").write_text("\n".join(CITYSCAPES_INFO.class_names) + "\n")
    return root / "leftImg8bit" / "train", labels


def test_cityscapes_label_ids_with_19_classes_and_no_map_are_refused(tmp_path: Path) -> None:
    images, labels = _cityscapes_folders(tmp_path)
    spec = f"folders:{images}:{labels}"
    with pytest.raises(DatasetError) as exc:
        build_dataset(spec, label_suffix="_gtFine_labelIds", image_suffix="_leftImg8bit")
    message = _one_line(exc)
    assert "labelIds" in message and "cityscapes:ROOT" in message and "--label-map" in message
    # Renamed to plain stems, the file name no longer tells: the ids themselves do (26 is no trainId).
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    (renamed / "classes.txt").write_text((labels / "classes.txt").read_text())
    (renamed / "aachen_000000_000010_leftImg8bit.png").write_bytes(
        (labels / "aachen" / "aachen_000000_000010_gtFine_labelIds.png").read_bytes()
    )
    dataset = build_dataset(f"folders:{images / 'aachen'}:{renamed}")
    with pytest.raises(DatasetError) as exc:
        dataset.preload(progress=False)
    message = _one_line(exc)
    assert "26 (" in message and "Cityscapes labelIds" in message and "cityscapes:ROOT" in message


def test_folders_pair_by_stem_without_suffixes_in_subfolders_through_a_label_map(tmp_path: Path) -> None:
    images, labels = _cityscapes_folders(tmp_path)
    label_map = tmp_path / "cityscapes.yaml"
    label_map.write_text("".join(f"{k}: {v}\n" for k, v in LABEL_ID_TO_TRAIN_ID.items()))
    dataset = build_dataset(
        f"folders:{images}:{labels}",
        label_map=label_map,
        label_suffix="_gtFine_labelIds",
        image_suffix="_leftImg8bit",
    )
    assert [lab.name for _, lab in dataset.pairs] == [
        "aachen_000000_000010_gtFine_labelIds.png",
        "bochum_000000_000011_gtFine_labelIds.png",
    ]
    label = dataset[0][1]["seg"]
    assert label[0, 0] == 13 and label[-1, 0] == 0
    assert dataset.info.source_ids == CITYSCAPES_INFO.source_ids  # for writing predictions back as labelIds


# ---------------------------------------------------------------------------------------------------- ADE20K


def test_ade20k_reduces_zero_label(tmp_path: Path) -> None:
    root = tmp_path / "ADEChallengeData2016"
    for split, prefix in (("training", "ADE_train"), ("validation", "ADE_val")):
        _image(root / "images" / split / f"{prefix}_00000001.jpg")
        _label(root / "annotations" / split / f"{prefix}_00000001.png", 0, 3)  # other over sky
    train, val = build_dataset(f"ade20k:{tmp_path}", "train"), build_dataset(f"ade20k:{root}", "val")
    assert len(train) == len(val) == 1 and train.info == ADE20K_INFO
    label = train[0][1]["seg"]
    assert label[0, 0] == 255 and label[-1, 0] == 2 and ADE20K_INFO.class_names[2] == "sky"
    assert len(ADE20K_INFO.class_names) == len(ADE20K_INFO.palette) == 150
    assert ADE20K_INFO.source_ids[:3] == (1, 2, 3)
    (root / "annotations" / "training" / "ADE_train_00000001.png").unlink()
    with pytest.raises(DatasetError, match="ADE_train_00000001.png: annotation not found"):
        build_dataset(f"ade20k:{root}", "train")


# ------------------------------------------------------------------------------------- label maps, palettes


def test_classes_txt_with_colours_is_the_palette(tmp_path: Path) -> None:
    path = tmp_path / "classes.txt"
    path.write_text("road 128 64 128\ntraffic light 250 170 30\n")
    info = read_classes_file(path, "mine")
    assert info.class_names == ("road", "traffic light") and info.palette == ((128, 64, 128), (250, 170, 30))
    path.write_text("road 128 64 128\nsky\n")
    with pytest.raises(DatasetError, match="classes.txt:2: some lines give a colour"):
        read_classes_file(path, "mine")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("dup.yaml", "7: 0\n7: 1\n", "source id 7 is given twice"),
        ("spelled.yaml", "7: 0\n'7': 1\n", "source id 7 is given twice"),
        ("dup.json", '{"7": 0, "7": 1}', "the ids collide"),
        ("range.yaml", "7: 5\n", "maps to 5, but there are 2 classes"),
        ("word.yaml", "road: 0\n", "not a whole number"),
        ("list.yaml", "- 1\n", "must be a mapping"),
    ],
)
def test_bad_label_maps_are_refused(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DatasetError) as exc:
        read_label_map(path, 2)
    message = _one_line(exc)
    assert name in message and expected in message


def test_label_ids_missing_from_the_map_are_refused(tmp_path: Path) -> None:
    images, labels = tmp_path / "img", tmp_path / "lab"
    _image(images / "a.png")
    _label(labels / "a.png", 40, 10)
    (labels / "classes.txt").write_text("bg 0 0 0\nfg 255 255 255\n")
    (tmp_path / "map.json").write_text(json.dumps({"10": 0, "20": 1}))
    dataset = build_dataset(f"folders:{images}:{labels}", label_map=tmp_path / "map.json")
    with pytest.raises(DatasetError) as exc:
        dataset.load_uint8(0)
    message = _one_line(exc)
    assert "a.png" in message and "40 (" in message and "map.json" in message and "255 to ignore" in message
    with pytest.raises(DatasetError, match="drop --label-map"):
        build_dataset(f"voc:{tmp_path}", label_map=tmp_path / "map.json")


# --------------------------------------------------------------------------------- predict: palette and ids


def test_predict_paints_in_the_dataset_palette_and_writes_its_own_ids(tmp_path: Path, monkeypatch) -> None:
    from pixelwise.cli import predict
    from pixelwise.engine.checkpoint import save_checkpoint
    from pixelwise.methods.segmentation import SegmentationTask, TrainConfig
    from pixelwise.models import ModelConfig, SegmentationModel

    dataset = build_dataset(f"cityscapes:{_cityscapes(tmp_path / 'cs')}", "train")
    task = SegmentationTask(TrainConfig(data=f"cityscapes:{tmp_path / 'cs'}"))
    task.info = dataset.info
    model = SegmentationModel(ModelConfig("fcn32s", "resnet18", 19))
    run = save_checkpoint(tmp_path / "best.safetensors", model.state_dict(),
                          {"model": model.config.to_dict(), **task.metadata()})  # fmt: skip

    def car_over_road(model, batch, scales, flip, window):  # the network's output is not what is tested here
        probs = torch.zeros(1, 19, *batch.shape[-2:])
        probs[:, 13, : batch.shape[-2] // 2] = 1
        probs[:, 0, batch.shape[-2] // 2 :] = 1
        return probs

    monkeypatch.setattr(predict, "predict_probabilities", car_over_road)
    image = tmp_path / "street.png"
    _image(image)
    out = tmp_path / "pred"
    assert (
        main(["predict", "--checkpoint", str(run), "--output", str(out), "--device", "cpu", str(image)]) == 0
    )
    ids = np.asarray(Image.open(out / "street_ids.png"))
    assert ids[0, 0] == 26 and ids[-1, 0] == 7  # labelIds (car, road), not trainIds
    colours = np.asarray(Image.open(out / "street_labels.png").convert("RGB"))
    assert tuple(colours[0, 0]) == (0, 0, 142) and tuple(colours[H - 1, 0]) == (128, 64, 128)


def test_pipeline_reads_folders_through_suffixes_and_a_label_map(tmp_path: Path) -> None:
    """Every pipeline stage reads labels the way `train` does: suffix pairing and the label map reach them all."""
    images, labels = _cityscapes_folders(tmp_path)
    label_map = tmp_path / "cityscapes.yaml"
    label_map.write_text("".join(f"{k}: {v}\n" for k, v in LABEL_ID_TO_TRAIN_ID.items()))
    out = tmp_path / "pipe"
    spec = f"folders:{images}:{labels}"
    flags = ["--data", spec, "--val-data", spec, "--label-map", str(label_map)]
    flags += ["--label-suffix", "_gtFine_labelIds", "--image-suffix", "_leftImg8bit", "--output", str(out)]
    flags += [
        "--pretrain-epochs",
        "0",
        "--mixmatch-epochs",
        "0",
        "--label-ae-epochs",
        "0",
        "--train-epochs",
        "1",
    ]
    flags += ["--crop", "32", "48", "--base-size", "32", "48", "--batch-size", "2", "--device", "cpu"]
    assert main(["pipeline", *flags]) == 0
    stored = (out / "4-segmentation" / "config.yaml").read_text()
    assert "_gtFine_labelIds" in stored and str(label_map) in stored
    assert json.loads((out / "4-segmentation" / "metrics.json").read_text())
