"""Label-model introspection (Mostajabi et al. 2018, §4.3, Fig. 7): nearest neighbours in the code space.

The paper queries with the bottleneck features of a *region* of a label map and finds the closest regions of
other label maps, which share "the same object class types" and "similar shapes". Here the query is a whole
validation label map: its code (the encoder's bottleneck, flattened, so layout counts) is compared by Euclidean
distance with the codes of every training label map, and the k nearest are drawn next to it.
``pixelwise label-ae neighbours`` writes one panel per query and ``neighbours.png`` (all rows stacked).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from pixelwise.data import build_dataset, eval_transforms
from pixelwise.methods.label_ae.config import NeighboursConfig
from pixelwise.methods.label_ae.model import LabelAutoencoder, load_label_autoencoder
from pixelwise.report.images import colorize_labels, save_panel


@torch.no_grad()
def encode_label_maps(
    model: LabelAutoencoder, labels: list[torch.Tensor], device: torch.device, batch: int = 16
) -> torch.Tensor:
    """Flattened codes [N, C*h*w] of label maps [H, W] (all one size): the space searched in §4.3."""
    model.eval()
    codes = []
    for start in range(0, len(labels), batch):
        chunk = torch.stack(labels[start : start + batch]).to(device)
        codes.append(model.encode(chunk).flatten(1).float().cpu())
    return torch.cat(codes)


def nearest_neighbours(
    queries: torch.Tensor, database: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances, indices) [Q, k] of the ``k`` database codes closest to each query code (Euclidean)."""
    distances = torch.cdist(queries.double(), database.double())
    values, indices = distances.topk(min(k, database.shape[0]), dim=1, largest=False)
    return values.float(), indices


def load_labels(
    spec: str, split: str, size: tuple[int, int] | None
) -> tuple[list[torch.Tensor], list[str], Any]:
    """Every label map of a split (as loaded, or resized to ``size``) with the sample names and dataset info."""
    dataset = build_dataset(spec, split, size=size, transform=eval_transforms())
    labels = [dataset[i][1]["seg"].as_subclass(torch.Tensor) for i in tqdm(range(len(dataset)), desc=split)]
    shapes = {tuple(label.shape) for label in labels}
    if len(shapes) > 1:
        raise ValueError(
            f"{spec} {split}: label maps of several sizes {sorted(shapes)[:3]}...; pass --size H W"
        )
    return labels, list(dataset.names), dataset.info


def save_neighbour_grid(
    queries: list[torch.Tensor],
    neighbours: list[list[torch.Tensor]],
    titles: list[list[str]],
    palette: Any,
    ignore_index: int,
    folder: Path,
) -> Path:
    """One panel PNG per query (query | neighbour 1 ... k) and ``neighbours.png`` with the rows stacked."""
    rows = []
    for index, (query, found, row_titles) in enumerate(zip(queries, neighbours, titles)):
        panels = [colorize_labels(label, palette, ignore_index) for label in (query, *found)]
        rows.append(save_panel(panels, row_titles, folder / f"query_{index:02d}.png"))
    images = [np.asarray(Image.open(path).convert("RGB")) for path in rows]
    width = max(image.shape[1] for image in images)
    grid = np.full((sum(image.shape[0] for image in images), width, 3), 255, dtype=np.uint8)
    top = 0
    for image in images:
        grid[top : top + image.shape[0], : image.shape[1]] = image
        top += image.shape[0]
    path = folder / "neighbours.png"
    Image.fromarray(grid).save(path, format="PNG")
    return path


def retrieve_neighbours(config: NeighboursConfig) -> dict[str, Any]:
    """Encode both splits, find each query's k nearest database maps, write the PNGs and neighbours.json."""
    from pixelwise.engine.distributed import resolve_device

    if not config.checkpoint or not config.data:
        raise ValueError("pass --checkpoint (a label autoencoder) and --data")
    device = resolve_device(config.device)
    model, meta = load_label_autoencoder(config.checkpoint)
    model.to(device)
    size = tuple(config.size) if config.size else None
    database, database_names, info = load_labels(config.data, config.database_split, size)
    labels, query_names, _ = load_labels(config.data, config.query_split, size)
    if database[0].shape != labels[0].shape:
        raise ValueError(
            f"query maps {tuple(labels[0].shape)} and database maps {tuple(database[0].shape)} differ; pass --size H W"
        )
    picks = sorted(
        set(torch.linspace(0, len(labels) - 1, min(config.queries, len(labels))).round().long().tolist())
    )
    database_codes = encode_label_maps(model, database, device)
    query_codes = encode_label_maps(model, [labels[i] for i in picks], device)
    distances, indices = nearest_neighbours(query_codes, database_codes, config.k)
    folder = Path(config.output)
    titles = [
        [f"query {config.query_split} {query_names[q]}"]
        + [
            f"{rank + 1}: {database_names[j]} d={d:.1f}"
            for rank, (j, d) in enumerate(zip(row.tolist(), dist.tolist()))
        ]
        for q, row, dist in zip(picks, indices, distances)
    ]
    grid = save_neighbour_grid(
        [labels[q] for q in picks],
        [[database[j] for j in row.tolist()] for row in indices],
        titles,
        info.palette,
        info.ignore_index,
        folder,
    )
    record = {
        "checkpoint": str(config.checkpoint),
        "label_ae": meta.get("model", {}),
        "queries": [
            {
                "query": query_names[q],
                "neighbours": [database_names[j] for j in row.tolist()],
                "distances": [round(float(d), 4) for d in dist],
            }
            for q, row, dist in zip(picks, indices, distances)
        ],
        "grid": str(grid),
    }
    (folder / "neighbours.json").write_text(json.dumps(record, indent=2))
    return record
