"""RNG capture and restore for bit-exact --resume: every rank's own stream (each draws its own augmentations)."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from pixelwise.engine.distributed import DistInfo


def capture_rng(device: torch.device, dist_info: DistInfo) -> dict[str, torch.Tensor]:
    """This process's RNG states; under torchrun every rank's, as ``torch.rank1`` etc. (a collective)."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    if dist_info.enabled:  # each rank draws its own augmentations: a resume must give each its own stream
        ranks: list[Any] = [None] * dist_info.world_size
        dist.all_gather_object(ranks, {k: v.cpu() for k, v in state.items()})
        state |= {f"{k}.rank{r}": v for r, states in enumerate(ranks) for k, v in states.items()}
    return state


def restore_rng(state: dict[str, torch.Tensor], device: torch.device, dist_info: DistInfo) -> None:
    """Restore this rank's RNG states from :func:`capture_rng`'s output."""
    rank = dist_info.rank
    mine = {k: state.get(f"{k}.rank{rank}", state.get(k)) for k in ("torch", "cuda")}
    if mine["torch"] is not None:
        torch.set_rng_state(mine["torch"])
    if mine["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(mine["cuda"], device)
