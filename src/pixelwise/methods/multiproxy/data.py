"""Each proxy's own data source (Larsson §4.5: tied copies of the base, each with its own data and input size).

C and J read the pretraining images; V reads frame pairs with optical flow (V-syn: synthetic scenes with exact
flow under a known camera motion; V-cam: Farneback flow between consecutive frames of a video, e.g. CamVid's
15 Hz val clip). :class:`FlowBeside` serves both in one batch, so the training loop stays one loop.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset


class FlowBeside(Dataset):
    """Item i = image i of ``images`` with flow pair i mod len(flows) beside it, as targets 'flow_image' and
    'flow'; ``length`` overrides the length (V alone: the flow pairs' count)."""

    def __init__(self, images: Dataset, flows: Dataset, length: int | None = None) -> None:
        if len(flows) == 0:
            raise ValueError("the flow data holds no frame pairs")
        self.images, self.flows = images, flows
        self.length = len(images) if length is None else length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        image, targets = self.images[index % len(self.images)]
        flow_image, flow_targets = self.flows[index % len(self.flows)]
        return image, {**targets, "flow_image": flow_image, "flow": flow_targets["flow"]}


FLOW_SPECS = "flow-synthetic[:N[:HxW]], flow-camvid:PATH or flow-frames:FOLDER"


def flow_datasets(spec: str, size: tuple[int, int] | None = None) -> tuple[Dataset, Dataset]:
    """(train, val) frame pairs with flow for a ``--flow-data`` spec; video frames are resized to ``size``
    (the images' training size; the flow is rescaled with them). One clip holds out its contiguous last fifth."""
    from torch.utils.data import Subset

    from pixelwise.data.build import parse_synthetic_spec
    from pixelwise.data.flow import FramePairs, SyntheticFlow, camvid_frame_pairs
    from pixelwise.data.validation import DatasetError

    if spec == "flow-synthetic" or spec.startswith("flow-synthetic:"):
        rest = spec[len("flow-synthetic") :]
        count, shape = parse_synthetic_spec("synthetic" + rest, "train")
        val_count, _ = parse_synthetic_spec("synthetic" + rest, "val")
        return SyntheticFlow(count, shape, split="train"), SyntheticFlow(val_count, shape, split="val")
    if spec.startswith(("flow-camvid:", "flow-frames:")):
        path = spec.split(":", 1)[1]
        camvid = spec.startswith("flow-camvid:")
        pairs = camvid_frame_pairs(path, size=size) if camvid else FramePairs(path, size=size)
        cut = max(1, int(0.8 * len(pairs)))
        return Subset(pairs, range(cut)), Subset(pairs, range(cut, len(pairs)))
    raise DatasetError(f"--flow-data {spec!r}: not a flow source; use {FLOW_SPECS}")
