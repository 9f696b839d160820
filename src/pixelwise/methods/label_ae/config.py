"""``pixelwise label-ae``'s options (torch-free, so its ``--help`` answers without importing torch)."""

from __future__ import annotations

from dataclasses import dataclass

from pixelwise.engine.config import option


@dataclass
class NeighboursConfig:
    checkpoint: str = option(
        "", "label-autoencoder checkpoint or run folder (`pixelwise pretrain --method label-ae`)"
    )
    data: str = option("", "dataset spec: 'synthetic', 'camvid:PATH', a list file, 'folders:IMAGES:LABELS'")
    query_split: str = option("val", "split whose label maps are the queries")
    database_split: str = option("train", "split searched for neighbours")
    queries: int = option(6, "query label maps, evenly spaced over the query split", minimum=1)
    k: int = option(3, "neighbours shown per query", minimum=1)
    size: list[int] | None = option(
        None,
        "resize label maps to H W at load (all maps must share one size; default: as stored)",
        length=2,
        minimum=1,
    )
    output: str = option("neighbours", "folder for neighbours.png, one panel per query and neighbours.json")
    device: str = option("auto", "'auto', 'cpu', 'cuda', ...")
