"""RegionNet: object segment proposals from a pairwise network (Long thesis §4.3.3-4.3.4, Fig. 4.2b, Table 4.1).

One :class:`PathwayHead` per backbone tap (the natural feature pyramid: ResNet stage ends conv1 / layer1 / layer2 /
layer3 / layer4 are exactly "just before each downsampling", strides 2-32), all trained jointly on images at their
natural resolution. A pathway on a stride-s grid:

1. optional 1x1 reduction of the features (DeepMask's footnote; a CPU deviation);
2. a k x k conv from C channels to |R| = W^2 channels: single-convolution regions p(x, Delta) (§4.3.1);
3. the **transpose** p^T(x, Delta) = p(x + Delta, -Delta) (:func:`~.pairwise.transpose`);
4. every region's |R|-vector times **one shared |R| x |R| matrix** (a 1x1 conv across the Delta channels; no
   feature dimension is left, so it is cheap);
5. region logits on R, upsampled bilinearly by s to a full-resolution window mask (:mod:`.regions`).

Steps 3 and 4 are switched by ``transpose`` / ``shared_matrix``: the four arms of the thesis' central ablation
(Fig. 4.4). A scoring pathway (Table 4.3: "simple", trained jointly) is a 1x1 conv on the pathway's features: one
objectness logit per centre, used to rank proposals (NMS order, AR@k).

``model(images in [0, 1])`` -> ``{"regions": [N, W^2, h, w] per pathway, "scores": [N, 1, h, w] per pathway}``,
pathways in ``config.pathways`` order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pixelwise.methods.proposals.config import DEFAULT_KERNELS, DEFAULT_PATHWAYS, DEFAULT_WINDOWS
from pixelwise.methods.proposals.pairwise import transpose
from pixelwise.models.backbones import create_backbone
from pixelwise.models.inputs import InputNormalizer
from pixelwise.models.receptive_field import Grid
from pixelwise.models.stored import StoredConfig
from pixelwise.models.taps import FeatureTaps


@dataclass(frozen=True)
class RegionNetConfig(StoredConfig):
    """Everything needed to rebuild the model; stored in its checkpoints."""

    KIND: ClassVar[str] = "region-proposals"

    backbone: str = "resnet18"
    in_channels: int = 3
    pathways: tuple[str, ...] = DEFAULT_PATHWAYS
    windows: tuple[int, ...] = DEFAULT_WINDOWS
    kernels: tuple[int, ...] = DEFAULT_KERNELS
    reduce: int = 64  # 1x1 reduction width before the k x k conv (0: none)
    transpose: bool = True
    shared_matrix: bool = True

    def __post_init__(self) -> None:
        # JSON stores tuples as lists: keep the config hashable and comparable.
        for name in ("pathways", "windows", "kernels"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not len(self.pathways) == len(self.windows) == len(self.kernels):
            raise ValueError(
                f"{len(self.pathways)} pathways need as many windows and kernels, got {len(self.windows)} "
                f"and {len(self.kernels)}"
            )
        for window, kernel in zip(self.windows, self.kernels):
            if window % 2 == 0 or kernel % 2 == 0:
                raise ValueError(
                    f"windows and kernels must be odd (R = -R, centred convs), got {window}, {kernel}"
                )


class PathwayHead(nn.Module):
    """One pathway: features [N, C, h, w] -> (region logits [N, W^2, h, w], objectness logits [N, 1, h, w])."""

    def __init__(
        self, channels: int, window: int, kernel: int, reduce: int, use_transpose: bool, shared_matrix: bool
    ) -> None:
        super().__init__()
        self.window, self.use_transpose = window, use_transpose
        width = reduce or channels
        self.reduce = (
            nn.Sequential(nn.Conv2d(channels, reduce, 1), nn.BatchNorm2d(reduce), nn.ReLU(inplace=True))
            if reduce
            else nn.Identity()
        )
        self.regions = nn.Conv2d(width, window * window, kernel, padding=kernel // 2)
        self.shared = nn.Conv2d(window * window, window * window, 1) if shared_matrix else None
        if self.shared is not None:  # start as the identity: the arm begins where "no matrix" begins
            nn.init.eye_(self.shared.weight.view(window * window, window * window))
            nn.init.zeros_(self.shared.bias)
        self.score = nn.Conv2d(width, 1, 1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.reduce(features)
        p = self.regions(x)
        if self.use_transpose:
            p = transpose(p)
        if self.shared is not None:
            p = self.shared(p)
        return p, self.score(x)


class RegionNet(nn.Module):
    """``model(images)`` -> ``{"regions": [...], "scores": [...]}``, one entry per pathway (see module doc)."""

    def __init__(self, config: RegionNetConfig) -> None:
        super().__init__()
        self.config = config
        backbone = create_backbone(config.backbone, config.in_channels)
        self.taps = FeatureTaps(backbone, config.pathways)
        self.inputs = InputNormalizer(config.in_channels, backbone.output_stride)
        self.heads = nn.ModuleList(
            PathwayHead(
                backbone.channels[name], window, kernel, config.reduce, config.transpose, config.shared_matrix
            )
            for name, window, kernel in zip(config.pathways, config.windows, config.kernels)
        )

    @property
    def backbone(self) -> nn.Module:
        return self.taps.backbone

    @property
    def grids(self) -> list[Grid]:
        """Each pathway's grid of region centres (cell i at pixel grid.position(i))."""
        grids = self.taps.grids
        return [grids[name] for name in self.config.pathways]

    def forward(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        taps = self.taps(self.inputs(images))
        regions, scores = [], []
        for name, head in zip(self.config.pathways, self.heads):
            p, s = head(taps[name])
            regions.append(p)
            scores.append(s)
        return {"regions": regions, "scores": scores}


class FlatRegionOutputs(nn.Module):
    """``RegionNet`` with its outputs as one flat tuple (regions of each pathway, then scores of each), the form
    an ONNX graph returns; names: :func:`output_names`."""

    def __init__(self, model: RegionNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(images)
        return (*out["regions"], *out["scores"])

    def output_names(self) -> list[str]:
        names = self.model.config.pathways
        return [f"regions_{n}" for n in names] + [f"scores_{n}" for n in names]
