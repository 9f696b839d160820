"""The work behind ``pixelwise correspond`` (its parsers are in :mod:`pixelwise.cli.correspond`): reading files,
checking them, running the library (:mod:`pixelwise.methods.correspondence`) and drawing panels."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pixelwise.cli.options import build_config
from pixelwise.methods.correspondence.config import (
    AlignConfig,
    BoxOptions,
    FrozenBackboneOptions,
    KeypointsConfig,
    TransferConfig,
    VisualiseConfig,
)

if TYPE_CHECKING:
    import numpy as np

    from pixelwise.data.keypoints import KeypointImage
    from pixelwise.methods.correspondence import FeatureGrid, FrozenFeatures
    from pixelwise.methods.correspondence.keypoints import BoxSet

TRUTH, PREDICTED, OTHER = (0, 190, 0), (235, 30, 30), (40, 110, 255)  # panel colours: o truth, x predictions


# ------------------------------------------------------------------------------------------------ shared


def read_image(path: str | Path, size: list[int] | None) -> torch.Tensor:
    """An image file as float [3, H, W] in [0, 1], resized to ``size`` (H, W) when given."""
    from pixelwise.data.validation import load_image

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: image file not found; check the path")
    image = torch.from_numpy(load_image(Path(path)).copy()).permute(2, 0, 1).float() / 255
    if size:
        image = torch.nn.functional.interpolate(
            image[None], size=tuple(size), mode="bilinear", antialias=True
        )[0]
    return image


def _extractor(
    config: FrozenBackboneOptions, stages: dict[str, str | None]
) -> tuple[FrozenFeatures, dict[str, str]]:
    """The frozen backbone tapped at ``stages`` (flag -> stage name; None: the backbone's deepest), and the
    stages resolved; a missing run or a stage the backbone lacks is one line naming the flag."""
    from pixelwise.methods.correspondence import FeatureConfig, feature_extractor

    def build(taps: tuple[str, ...] | None) -> FrozenFeatures:
        try:
            return feature_extractor(config.init_from, taps, FeatureConfig(backbone=config.backbone))
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"--init-from {config.init_from}: {err}; give a run folder or checkpoint file, or leave "
                f"--init-from out for a random backbone"
            ) from None

    named = tuple(dict.fromkeys(s for s in stages.values() if s))
    try:
        extractor = build(None if None in stages.values() else named)
    except ValueError as err:
        if not str(err).startswith("unknown tap"):
            raise
        extractor = build(None)  # only to list the stages it has
    have = extractor.backbone.stage_names
    wrong = [f"{flag} {name}" for flag, name in stages.items() if name and name not in have]
    if wrong:
        raise ValueError(
            f"{', '.join(wrong)}: {config.init_from or config.backbone} has no such stage; choose from "
            f"{', '.join(have)}"
        )
    return extractor, {flag: name or have[-1] for flag, name in stages.items()}


def _json_text(record: dict[str, Any]) -> str:
    """``record`` as strict JSON for people to read: floats to 6 significant digits, NaN and infinities as
    null."""

    def clean(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.6g}") if math.isfinite(value) else None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(record), indent=2)


def _write_json(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_json_text(record) + "\n")


def _finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _unique_stem(path: Path, used: set[str]) -> str:
    stem = path.stem
    while stem in used:
        stem = f"{stem}_{len(used)}"
    used.add(stem)
    return stem


# --------------------------------------------------------------------------------------------- visualise


def _database_files(entries: Sequence[str], queries: Sequence[Path]) -> list[Path]:
    """The --database images: every image file of each folder, and each file; query images left out."""
    from pixelwise.data.validation import IMAGE_EXTENSIONS

    if not entries:
        raise ValueError("--database: give a folder of images or image files to take the neighbours from")
    files: list[Path] = []
    for entry in map(Path, entries):
        if entry.is_dir():
            found = sorted(p for p in entry.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise ValueError(
                    f"--database {entry}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder"
                )
            files += found
        elif entry.is_file():
            files.append(entry)
        else:
            raise FileNotFoundError(f"--database {entry}: no such file or folder; check the path")
    asked = {q.resolve() for q in queries}
    kept = [p for p in dict.fromkeys(files) if p.resolve() not in asked]
    if not kept:
        raise ValueError("--database: every database image is also a query; give other images")
    return kept


def _visualise_query(
    extractor: FrozenFeatures,
    database: Any,
    path: Path,
    name: str,
    config: VisualiseConfig,
    generator: torch.Generator,
) -> dict[str, Any]:
    """Reconstruct one query (NN and uniform-rf), save its panel and return its PSNRs."""
    from pixelwise.methods.correspondence import dense_features, reconstruct
    from pixelwise.metrics.correspondence import psnr
    from pixelwise.report.images import save_panel, to_uint8_image

    image = read_image(path, config.size)
    grid = dense_features(extractor, image[None])[config.stage]
    if 0 in grid.shape:
        raise ValueError(
            f"{path}: a {image.shape[1]}x{image.shape[2]} image has no {config.stage} cell (stride "
            f"{grid.grid.stride}); pass a larger --size"
        )
    nn = reconstruct(grid, database, config.k)
    control = reconstruct(grid, database, config.k, uniform_rf=config.uniform_rf, generator=generator)
    record = {
        "image": str(path),
        "psnr_nn": psnr(nn.image.clamp(0, 1), image, nn.mask),
        "psnr_uniform_rf": psnr(control.image.clamp(0, 1), image, control.mask),
    }
    panel = Path(config.output) / f"panel_{name}.png"
    titles = ["query", f"{config.k}-NN reconstruction", f"uniform-rf control ({config.uniform_rf} px)"]
    save_panel([to_uint8_image(x) for x in (image, nn.image, control.image)], titles, panel)
    return {**record, "panel": panel.name}


def run_visualise(args: argparse.Namespace) -> int:
    from pixelwise.methods.correspondence import build_database, stage_rf_sizes

    config = build_config(VisualiseConfig, args)
    queries = [Path(q) for q in args.queries]
    for query in queries:
        if not query.is_file():
            raise FileNotFoundError(f"{query}: query image not found; check the path")
    files = _database_files(config.database, queries)
    extractor, _ = _extractor(config, {"--stage": config.stage})
    database = build_database(extractor, [read_image(p, config.size) for p in files], config.stage)
    if config.k > len(database.features):
        raise ValueError(
            f"--k {config.k}: the database has only {len(database.features)} {config.stage} cells; lower --k "
            f"or add --database images"
        )
    generator = torch.Generator().manual_seed(config.seed)
    used: set[str] = set()
    rows = [
        _visualise_query(extractor, database, q, _unique_stem(q, used), config, generator) for q in queries
    ]
    record = {
        "stage": config.stage,
        "stride": database.patch,
        "stage_rf": stage_rf_sizes(extractor.backbone)[config.stage],
        "k": config.k,
        "uniform_rf": config.uniform_rf,
        "database": {"images": len(files), "cells": len(database.features)},
        "queries": rows,
        "mean": {
            "psnr_nn": _finite_mean([r["psnr_nn"] for r in rows]),
            "psnr_uniform_rf": _finite_mean([r["psnr_uniform_rf"] for r in rows]),
        },
    }
    record["mean"]["gain_db"] = record["mean"]["psnr_nn"] - record["mean"]["psnr_uniform_rf"]
    out = Path(config.output)
    _write_json(out / "reconstruction.json", record)
    print(_json_text({k: record[k] for k in ("stage", "k", "uniform_rf", "database", "mean")}))
    print(f"wrote {out / 'reconstruction.json'} and {len(rows)} panel(s)")
    return 0


# ------------------------------------------------------------------------------------------------- align


def run_align(args: argparse.Namespace) -> int:
    from pixelwise.methods.correspondence import conv_flow, dense_features
    from pixelwise.methods.correspondence.warp import warp_image
    from pixelwise.metrics.correspondence import psnr
    from pixelwise.report.images import save_panel, to_uint8_image

    config = build_config(AlignConfig, args)
    source, target = read_image(args.source, config.size), read_image(args.target, config.size)
    if source.shape != target.shape:
        raise ValueError(f"{args.source} and {args.target} differ in size; pass --size H W to resize both")
    extractor, _ = _extractor(config, {"--stage": config.stage})
    grid = dense_features(extractor, torch.stack([source, target]))[config.stage]
    flow = conv_flow(grid.image(0), grid.image(1), config.beta, config.radius, config.iterations)
    dense = flow.dense()
    warped = warp_image(target, dense).clamp(0, 1)
    magnitude = dense.norm(dim=0)
    scale = magnitude / magnitude.max().clamp(min=1e-6)
    out = Path(config.output)
    panel = [to_uint8_image(x) for x in (source, target, warped, scale.expand(3, -1, -1))]
    save_panel(panel, ["source", "target", "target warped to source", "|flow|"], out / "panel.png")
    record = {
        "stage": config.stage,
        "beta": config.beta,
        "cells": list(flow.cells.shape[:2]),
        "energy": flow.energy.total if flow.energy else None,
        "mean_displacement_px": float(magnitude.mean()),
        "psnr_warped": float(psnr(warped, source)),
        "psnr_copy": float(psnr(target, source)),
    }
    _write_json(out / "flow.json", record)
    print(_json_text(record))
    print(f"wrote {out / 'panel.png'}")
    return 0


# ------------------------------------------------------------------------- keypoint files and instances


@dataclass(frozen=True)
class _Objects:
    """One category's objects of a keypoint file: ``refs`` (image, object) indices into ``images``, their
    ``boxes`` [N, 4] (pixel edges) and keypoints ``points`` [N, K, 2] / ``visible`` [N, K] in ``names``
    order, in the image files' pixels."""

    images: list[KeypointImage]
    category: str
    names: tuple[str, ...]
    refs: list[tuple[int, int]]
    boxes: torch.Tensor
    points: torch.Tensor
    visible: torch.Tensor

    def __len__(self) -> int:
        return len(self.refs)

    def box_sizes(self) -> torch.Tensor:
        return self.boxes[:, 2:] - self.boxes[:, :2]

    def file(self, index: int) -> Path:
        return self.images[self.refs[index][0]].image

    def crops(self, boxes: torch.Tensor, size: int) -> torch.Tensor:
        """Each object's ``boxes`` [N, 4] region rescaled to [N, 3, size, size], one image file at a time."""
        from pixelwise.methods.correspondence.keypoints import crop_boxes

        crops = torch.zeros(len(self), 3, size, size)
        image_index = torch.tensor([i for i, _ in self.refs])
        for i in image_index.unique().tolist():
            rows = torch.nonzero(image_index == i).flatten()
            image = read_image(self.images[i].image, None)
            crops[rows] = crop_boxes([image], torch.zeros(len(rows), dtype=torch.long), boxes[rows], size)
        return crops


def _category_names(images: Sequence[KeypointImage]) -> dict[str, tuple[str, ...]]:
    """Keypoint names of every category, in the order they first appear."""
    names: dict[str, dict[str, None]] = {}
    for annotated in images:
        for obj in annotated.objects:
            names.setdefault(obj.category, {}).update(dict.fromkeys(obj.keypoints))
    return {category: tuple(found) for category, found in names.items()}


def _objects(images: list[KeypointImage], category: str, names: tuple[str, ...]) -> _Objects:
    refs, boxes, points, visible = [], [], [], []
    for i, annotated in enumerate(images):
        for j, obj in enumerate(annotated.objects):
            if obj.category == category:
                p, v = obj.arrays(names)
                refs.append((i, j))
                boxes.append(torch.tensor(obj.box))
                points.append(p)
                visible.append(v)
    k = len(names)
    return _Objects(
        images,
        category,
        names,
        refs,
        torch.stack(boxes) if boxes else torch.zeros(0, 4),
        torch.stack(points) if points else torch.zeros(0, k, 2),
        torch.stack(visible) if visible else torch.zeros(0, k, dtype=torch.bool),
    )


def _load_pair(train_path: str, queries_path: str) -> tuple[list[KeypointImage], list[KeypointImage]]:
    from pixelwise.data.keypoints import load_keypoints

    train, queries = load_keypoints(train_path), load_keypoints(queries_path)
    if not any(im.objects for im in train):
        raise ValueError(f"{train_path}: holds no object; the training file needs annotated objects")
    if not any(im.objects for im in queries):
        raise ValueError(f"{queries_path}: holds no object; give the query objects' boxes")
    return train, queries


def _pairs(
    train: list[KeypointImage], queries: list[KeypointImage], train_path: str, queries_path: str
) -> tuple[list[tuple[_Objects, _Objects]], list[str]]:
    """(training objects, query objects) per query category that TRAIN has keypoints for, and the
    categories skipped (with why)."""
    train_names, query_names = _category_names(train), _category_names(queries)
    pairs, skipped = [], []
    for category in query_names:
        names = train_names.get(category, ())
        if not names:
            why = "no training object" if category not in train_names else "no training keypoint"
            skipped.append(f"{category}: {why} in {train_path}")
            continue
        pairs.append((_objects(train, category, names), _objects(queries, category, names)))
    if not pairs:
        raise ValueError(
            f"{queries_path}: none of its categories ({', '.join(query_names)}) has keypoints in "
            f"{train_path}; give training objects of the same categories"
        )
    return pairs, skipped


def _same_objects(query: _Objects, train: _Objects) -> torch.Tensor:
    """[Q, M]: query object q is training object m (same image file and box), e.g. one file given twice."""
    ids: dict[Path, int] = {}

    def file_ids(objects: _Objects) -> torch.Tensor:
        return torch.tensor(
            [ids.setdefault(objects.file(n).resolve(), len(ids)) for n in range(len(objects))]
        )

    same_file = file_ids(query)[:, None] == file_ids(train)[None, :]
    same_box = (query.boxes[:, None] - train.boxes[None, :]).abs().amax(dim=-1) < 1e-4
    return same_file & same_box


@dataclass
class _Predicted:
    """One category's predictions: ``methods`` name -> keypoints [Q, K, 2] in image pixels (NaN: none),
    with the query crops [Q, 3, S, S] and their boxes [Q, 4] for the panels."""

    objects: _Objects
    methods: dict[str, torch.Tensor]
    crops: torch.Tensor
    crop_boxes: torch.Tensor
    extra: list[list[tuple[np.ndarray, str]]]  # more panel images per query object


def _predicted_images(queries: list[KeypointImage], results: Sequence[_Predicted], method: str) -> list:
    """The query file's images with each object's keypoints replaced by ``method``'s predictions, moved
    inside the image (a prediction off the image is never right) so that the file reads back."""
    from pixelwise.data.keypoints import Keypoint

    predicted: dict[tuple[int, int], dict[str, Keypoint]] = {}
    for result in results:
        for n, (i, j) in enumerate(result.objects.refs):
            height, width = queries[i].size
            predicted[(i, j)] = {
                name: Keypoint(min(max(row, 0.0), height - 1.0), min(max(col, 0.0), width - 1.0))
                for name, (row, col) in zip(result.objects.names, result.methods[method][n].tolist())
                if not math.isnan(row)
            }
    return [
        replace(
            im,
            objects=tuple(replace(o, keypoints=predicted.get((i, j), {})) for j, o in enumerate(im.objects)),
        )
        for i, im in enumerate(queries)
    ]


def _scores(results: Sequence[_Predicted], alphas: Sequence[float]) -> dict[str, Any] | None:
    """Per method: PCK at each alpha of max(h, w) of the true box (per type, per category, mean over
    categories, §2.2) and the mean pixel error; None when no query keypoint is visible (nothing to score)."""
    from pixelwise.metrics.correspondence import mean_over_categories, pck, pck_thresholds

    scored = [r for r in results if bool(r.objects.visible.any())]
    if not scored:
        return None
    out: dict[str, Any] = {}
    for method in scored[0].methods:
        categories: dict[str, Any] = {}
        for r in scored:
            obj, pred = r.objects, r.methods[method]
            error = (pred - obj.points).norm(dim=-1)[obj.visible]
            entry: dict[str, Any] = {"objects": len(obj), "mean_error_px": float(error.nanmean()), "pck": {}}
            for alpha in alphas:
                s = pck(pred, obj.points, obj.visible, pck_thresholds(obj.box_sizes(), alpha))
                entry["pck"][str(alpha)] = {
                    "mean": s["mean"],
                    "per_type": dict(zip(obj.names, s["per_type"])),
                    "scored": dict(zip(obj.names, s["scored"])),
                }
            categories[obj.category] = entry
        means = {
            str(a): mean_over_categories({c: e["pck"][str(a)] for c, e in categories.items()}) for a in alphas
        }
        out[method] = {"pck": means, "categories": categories}
    return out


def _draw(crop: torch.Tensor, marks: Sequence[tuple[torch.Tensor, tuple[int, int, int], str]]) -> np.ndarray:
    """``crop`` [3, S, S] enlarged to about 192 px with crop-frame points [K, 2] drawn: 'o' circles (truth)
    or 'x' crosses (predictions), each prediction joined to the truth of its type by a thin line."""
    import numpy as np
    from PIL import Image, ImageDraw

    from pixelwise.report.images import to_uint8_image

    size = crop.shape[-1]
    scale = max(1, round(192 / size))
    image = Image.fromarray(to_uint8_image(crop)).resize((size * scale, size * scale), Image.NEAREST)
    draw = ImageDraw.Draw(image)

    def pixel(point: Sequence[float]) -> tuple[float, float]:
        return (point[1] + 0.5) * scale - 0.5, (point[0] + 0.5) * scale - 0.5  # (x, y)

    truth = next((points for points, _, shape in marks if shape == "o"), None)
    for points, colour, shape in marks:
        for k, point in enumerate(points.tolist()):
            if math.isnan(point[0]):
                continue
            x, y = pixel(point)
            if shape == "o":
                draw.ellipse([x - 4, y - 4, x + 4, y + 4], outline=colour, width=2)
                continue
            if truth is not None and not math.isnan(float(truth[k, 0])):
                draw.line([pixel(truth[k].tolist()), (x, y)], fill=colour, width=1)
            draw.line([x - 4, y - 4, x + 4, y + 4], fill=colour, width=2)
            draw.line([x - 4, y + 4, x + 4, y - 4], fill=colour, width=2)
    return np.asarray(image)


def _save_panels(results: Sequence[_Predicted], config: BoxOptions, labels: dict[str, str]) -> int:
    """panel_<image>_<object>.png for the first ``config.panels`` query objects (file order): per method in
    ``labels`` (method -> title) the query crop with truth (o) and prediction (x), then ``extra`` images."""
    from pixelwise.methods.correspondence.keypoints import to_box_frame
    from pixelwise.report.images import save_panel

    jobs = sorted(((ref, n, r) for r in results for n, ref in enumerate(r.objects.refs)), key=lambda j: j[0])
    used: set[str] = set()
    for (i, j), n, r in jobs[: config.panels]:
        size, boxes = r.crops.shape[-1], r.crop_boxes[n : n + 1]
        truth = to_box_frame(r.objects.points[n : n + 1], boxes, size)[0]
        truth[~r.objects.visible[n]] = math.nan
        images, titles = [], []
        for method, title in labels.items():
            pred = to_box_frame(r.methods[method][n : n + 1], boxes, size)[0]
            images.append(_draw(r.crops[n], [(truth, TRUTH, "o"), (pred, PREDICTED, "x")]))
            titles.append(f"{r.objects.category}: {title}")
        images += [image for image, _ in r.extra[n]]
        titles += [title for _, title in r.extra[n]]
        name = _unique_stem(Path(f"{r.objects.images[i].image.stem}_{j}"), used)
        save_panel(images, titles, Path(config.output) / f"panel_{name}.png")
    return min(len(jobs), config.panels)


def _crop_features(
    extractor: FrozenFeatures, crops: torch.Tensor, keep: Sequence[str], batch: int = 32
) -> dict[str, FeatureGrid]:
    """The ``keep`` stages of ``crops`` [N, 3, S, S], computed ``batch`` crops at a time."""
    from pixelwise.methods.correspondence import dense_features

    parts = [dense_features(extractor, crops[s : s + batch]) for s in range(0, len(crops), batch)]
    return {
        stage: replace(parts[0][stage], features=torch.cat([p[stage].features for p in parts]))
        for stage in dict.fromkeys(keep)
    }


def _report(
    out: Path,
    name: str,
    record: dict[str, Any],
    queries: list[KeypointImage],
    results: list[_Predicted],
    method: str,
) -> None:
    from pixelwise.data.keypoints import save_keypoints

    save_keypoints(out / "predictions.json", _predicted_images(queries, results, method))
    _write_json(out / name, record)
    summary = {k: v for k, v in record.items() if k not in ("objects", "scores", "fitted")}
    if "fitted" in record:
        summary["eta"] = {category: fitted["eta"] for category, fitted in record["fitted"].items()}
    if record.get("scores"):
        summary["pck"] = {m: s["pck"] for m, s in record["scores"].items()}
    print(_json_text(summary))
    if record.get("scores") is None:
        print("no query keypoint is visible (or given): predictions written, nothing scored")
    print(f"wrote {out / 'predictions.json'}, {out / name} and {record['panels']} panel(s)")


# ---------------------------------------------------------------------------------------------- transfer


def _neighbour_points(train: _Objects, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Training keypoints in their crop frame [M, K, 2]; NaN where not visible or outside the crop (such a
    neighbour is skipped for that keypoint, §2.2)."""
    from pixelwise.methods.correspondence.keypoints import to_box_frame

    points = to_box_frame(train.points, boxes, size)
    outside = (points < 0).any(-1) | (points > size - 1).any(-1) | ~train.visible
    return points.masked_fill(outside[..., None], math.nan)


@dataclass(frozen=True)
class _Database:
    """The training side of transfer: crop features ``grid`` [M, C, h, w], global ``descriptors`` [M, D]
    and crop-frame keypoints ``points`` [M, K, 2] (NaN: not usable)."""

    grid: FeatureGrid
    descriptors: torch.Tensor
    points: torch.Tensor


def _transfer_one(
    config: TransferConfig,
    query: FeatureGrid,
    train: _Database,
    candidates: torch.Tensor,
    descriptor: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(conv-flow keypoints, NN-transfer keypoints) [K, 2] in the crop frame for one query, and the
    neighbours (training indices) in energy order."""
    from pixelwise.methods.correspondence import cosine_neighbours, nn_transfer, transfer_keypoints

    chosen = candidates[
        cosine_neighbours(descriptor, train.descriptors[candidates], min(config.neighbours, len(candidates)))
    ]
    grids = [train.grid.image(int(m)) for m in chosen]
    points = train.points[chosen]
    result = transfer_keypoints(
        query, grids, points, config.beta, config.radius, config.iterations, config.top, config.order
    )
    return result.keypoints, nn_transfer(points, config.top), [int(chosen[i]) for i in result.order]


def _transfer_category(
    extractor: FrozenFeatures,
    config: TransferConfig,
    stages: dict[str, str],
    train: _Objects,
    query: _Objects,
) -> tuple[_Predicted, list[dict[str, Any]]]:
    """§2.2 keypoint transfer for one category's query objects; also the neighbours of each, for the JSON."""
    from pixelwise.methods.correspondence import global_descriptors
    from pixelwise.methods.correspondence.keypoints import expand_boxes, from_box_frame

    size, stage, descriptor = config.box_size, stages["--stage"], stages["--descriptor-stage"]
    train_boxes, query_boxes = (
        expand_boxes(train.boxes, config.margin),
        expand_boxes(query.boxes, config.margin),
    )
    train_crops, query_crops = train.crops(train_boxes, size), query.crops(query_boxes, size)
    train_grids = _crop_features(extractor, train_crops, (stage, descriptor))
    query_grids = _crop_features(extractor, query_crops, (stage, descriptor))
    database = _Database(
        train_grids[stage],
        global_descriptors(train_grids[descriptor]),
        _neighbour_points(train, train_boxes, size),
    )
    query_descriptors = global_descriptors(query_grids[descriptor])
    same = _same_objects(query, train)
    nan = torch.full((len(train.names), 2), math.nan)
    conv, nn, extra, details = [], [], [], []
    for q in range(len(query)):
        candidates = torch.nonzero(~same[q]).flatten()
        order: list[int] = []
        if len(candidates):
            flow_points, nn_points, order = _transfer_one(
                config, query_grids[stage].image(q), database, candidates, query_descriptors[q]
            )
        else:
            flow_points, nn_points = nan, nan
        conv.append(flow_points)
        nn.append(nn_points)
        extra.append(_neighbour_panel(train_crops, database.points, order))
        details.append(_transfer_detail(query, q, train, order[: config.top]))
    methods = {
        "conv_flow": from_box_frame(torch.stack(conv), query_boxes, size),
        "nn_transfer": from_box_frame(torch.stack(nn), query_boxes, size),
    }
    return _Predicted(query, methods, query_crops, query_boxes, extra), details


def _neighbour_panel(
    crops: torch.Tensor, points: torch.Tensor, order: list[int]
) -> list[tuple[np.ndarray, str]]:
    if not order:
        return []
    return [(_draw(crops[order[0]], [(points[order[0]], OTHER, "o")]), "best neighbour (energy)")]


def _transfer_detail(query: _Objects, q: int, train: _Objects, order: list[int]) -> dict[str, Any]:
    return {
        "image": str(query.file(q)),
        "object": query.refs[q][1],
        "category": query.category,
        "neighbours": [{"image": str(train.file(m)), "object": train.refs[m][1]} for m in order],
    }


def run_transfer(args: argparse.Namespace) -> int:
    config = build_config(TransferConfig, args)
    train, queries = _load_pair(args.train, args.queries)
    pairs, skipped = _pairs(train, queries, args.train, args.queries)
    extractor, stages = _extractor(
        config, {"--stage": config.stage, "--descriptor-stage": config.descriptor_stage}
    )
    results, details = [], []
    for train_objects, query_objects in pairs:
        result, detail = _transfer_category(extractor, config, stages, train_objects, query_objects)
        results.append(result)
        details += detail
    record = {
        "stage": config.stage,
        "descriptor_stage": stages["--descriptor-stage"],
        "beta": config.beta,
        "neighbours": config.neighbours,
        "top": config.top,
        "order": config.order,
        "box_size": config.box_size,
        "categories": {r.objects.category: len(r.objects) for r in results},
        "skipped": skipped,
        "scores": _scores(results, config.alphas),
        "panels": _save_panels(results, config, {"conv_flow": "conv flow", "nn_transfer": "NN transfer"}),
        "objects": details,
    }
    _report(Path(config.output), "transfer.json", record, queries, results, "conv_flow")
    return 0


# --------------------------------------------------------------------------------------------- keypoints


def _box_set(
    extractor: FrozenFeatures, config: KeypointsConfig, stages: dict[str, str], objects: _Objects
) -> tuple[BoxSet, torch.Tensor]:
    """§2.4's instances: crops of the boxes (plus --margin) at S, block features, descriptors; and the crops."""
    from pixelwise.methods.correspondence.keypoints import box_set, expand_boxes, to_box_frame

    boxes = expand_boxes(objects.boxes, config.margin)
    crops = objects.crops(boxes, config.box_size)
    points = to_box_frame(objects.points, boxes, config.box_size)
    data = box_set(
        extractor,
        crops,
        points,
        objects.visible,
        stages["--stage"],
        stages["--descriptor-stage"],
        config.block,
        boxes,
    )
    return data, crops


def _learnable(train: _Objects, query: _Objects) -> tuple[_Objects, _Objects, list[str]]:
    """Both sides restricted to the keypoint types visible on some training object (a detector needs
    positives), and the names dropped."""
    keep = train.visible.any(dim=0)
    dropped = [n for n, k in zip(train.names, keep.tolist()) if not k]

    def restrict(objects: _Objects) -> _Objects:
        names = tuple(n for n, k in zip(objects.names, keep.tolist()) if k)
        return replace(objects, names=names, points=objects.points[:, keep], visible=objects.visible[:, keep])

    return restrict(train), restrict(query), dropped


def _keypoints_category(
    extractor: FrozenFeatures,
    config: KeypointsConfig,
    stages: dict[str, str],
    train: _Objects,
    query: _Objects,
    train_path: str,
) -> tuple[_Predicted, dict[str, Any]]:
    """§2.4 for one category: fit the predictor on TRAIN, predict the query boxes with and without the prior."""
    from pixelwise.methods.correspondence.keypoints import (
        DetectorConfig,
        argmax_cells,
        combine,
        fit_predictor,
        from_box_frame,
    )

    if config.eta is None and len(train) < config.folds:
        raise ValueError(
            f"{train_path}: category {train.category!r} has {len(train)} training object(s), fewer than "
            f"--folds {config.folds}; lower --folds (>= 2) or give --eta"
        )
    train_set, _ = _box_set(extractor, config, stages, train)
    query_set, query_crops = _box_set(extractor, config, stages, query)
    detector = DetectorConfig(
        c=config.c,
        positives=config.positives,
        negative_distance=config.negative_distance,
        rounds=config.rounds,
    )
    try:
        predictor, chosen = fit_predictor(
            train_set, detector, eta=config.eta, folds=config.folds, sigma=config.sigma
        )
    except ValueError as err:  # e.g. a cross-validation fold whose other folds never show a keypoint type
        hint = "; give --eta or fewer --folds" if config.eta is None else ""
        raise ValueError(f"{train_path}: category {train.category!r}: {err}{hint}") from None
    same = _same_objects(query, train)  # a query never gets its own keypoints as the prior
    exclude = torch.where(same.any(dim=1), same.float().argmax(dim=1), torch.tensor(-1))
    log_s, log_p = predictor.log_maps(query_set, exclude)
    centres = query_set.centres()
    methods = {
        name: from_box_frame(
            argmax_cells(combine(log_s, log_p, eta), centres), query_set.boxes, config.box_size
        )
        for name, eta in (("detector", 0.0), ("detector_prior", predictor.eta))
    }
    detail = {"eta": predictor.eta, "sigma": predictor.sigma, "eta_cv": chosen.scores if chosen else None}
    return _Predicted(query, methods, query_crops, query_set.boxes, [[] for _ in range(len(query))]), detail


def run_keypoints(args: argparse.Namespace) -> int:
    config = build_config(KeypointsConfig, args)
    if config.block % 2 == 0:
        raise ValueError(f"--block {config.block}: must be odd, so that each block is centred on its cell")
    train, queries = _load_pair(args.train, args.queries)
    pairs, skipped = _pairs(train, queries, args.train, args.queries)
    extractor, stages = _extractor(
        config, {"--stage": config.stage, "--descriptor-stage": config.descriptor_stage}
    )
    results, fitted = [], {}
    for train_objects, query_objects in pairs:
        train_objects, query_objects, dropped = _learnable(train_objects, query_objects)
        if dropped:
            skipped.append(
                f"{train_objects.category} keypoint(s) {', '.join(dropped)}: visible on no training object"
            )
        if not train_objects.names:
            continue
        result, detail = _keypoints_category(
            extractor, config, stages, train_objects, query_objects, args.train
        )
        results.append(result)
        fitted[train_objects.category] = detail
    if not results:
        raise ValueError(
            f"{args.train}: no keypoint type is visible on any training object; nothing to learn"
        )
    record = {
        "stage": config.stage,
        "descriptor_stage": stages["--descriptor-stage"],
        "block": config.block,
        "box_size": config.box_size,
        "c": config.c,
        "categories": {r.objects.category: len(r.objects) for r in results},
        "fitted": fitted,
        "skipped": skipped,
        "scores": _scores(results, config.alphas),
        "panels": _save_panels(
            results, config, {"detector": "detector only", "detector_prior": "detector + prior"}
        ),
    }
    _report(Path(config.output), "keypoints.json", record, queries, results, "detector_prior")
    return 0
