"""The superpixel zoom-out classifier (Mostajabi thesis §3.3-3.4): a superpixel is described by features at every
zoom level around it, and an MLP labels it.

Levels, from a backbone's stages (§3.3.1.1, Fig. 3.4): each stage's map upsampled to the image and averaged over the
superpixel (local -> distant, as the stages' receptive fields grow); the **sub-scene**, the bounding box of the
superpixels within graph radius 3; the **scene**, the whole image. **Mirror-max** (§3.4.1.4): the descriptor of the
left-right mirrored image (superpixels mirrored too) is computed as well and the two are combined by an elementwise
max. Classifier (§3.4.3): two hidden layers of 1024 units with ReLU and dropout (69.9 on VOC12 val vs 68.4 with one).

CPU-scale deviations, both for cost: the sub-scene and scene levels average the deepest stage of the one forward
pass over the box / the image, where the thesis warps each box (and the image) to 256x256 and runs the network again
(~500 extra forward passes per image); and a BatchNorm without affine parameters standardises the descriptor, whose
levels differ in scale by orders of magnitude.

``model(images)`` computes SLIC itself and returns dense logits ``{"seg": [N, C, H, W]}`` (every pixel gets its
superpixel's scores), so evaluation and prediction treat it like any segmentation model; ``model(descriptors)``
([B, D], computed once by :meth:`SuperpixelZoomOut.descriptors`) classifies fixed features during training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pixelwise.methods.zoomout.pooling import pool_boxes, pool_superpixels, superpixel_pooling_matrix
from pixelwise.methods.zoomout.superpixels import region_boxes, slic_superpixels
from pixelwise.models.backbones import create_backbone
from pixelwise.models.inputs import InputNormalizer
from pixelwise.models.stored import StoredConfig
from pixelwise.models.taps import FeatureTaps


@dataclass(frozen=True)
class SuperpixelZoomOutConfig(StoredConfig):
    """Everything needed to rebuild the model; stored in its checkpoints."""

    KIND: ClassVar[str] = "zoomout-superpixel"

    backbone: str = "resnet18"
    num_classes: int = 11
    in_channels: int = 3
    superpixels: int = 500  # SLIC regions per image (§3.4.1)
    compactness: float = 15.0  # SLIC's m (§3.4.1)
    subscene_radius: int = 3  # graph radius of the sub-scene box (§3.4.1.4)
    mirror_max: bool = True
    hidden: int = 1024
    dropout: float = 0.5


class SuperpixelZoomOut(nn.Module):
    """``model(images in [0, 1], superpixels=None) -> {"seg", "superpixel_logits", "superpixels"}``."""

    def __init__(self, config: SuperpixelZoomOutConfig) -> None:
        super().__init__()
        self.config = config
        backbone = create_backbone(config.backbone, config.in_channels)
        self.taps = FeatureTaps(backbone, backbone.stage_names)  # every stage is a zoom-out level
        self.inputs = InputNormalizer(config.in_channels, backbone.output_stride)
        deepest = self.taps.channels[self.taps.names[0]]
        width = sum(self.taps.channels.values()) + 2 * deepest  # + sub-scene + scene
        self.classifier = nn.Sequential(
            nn.BatchNorm1d(width, affine=False),
            nn.Linear(width, config.hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.num_classes),
        )

    @property
    def backbone(self) -> nn.Module:
        return self.taps.backbone

    def superpixels_of(self, images: torch.Tensor) -> torch.Tensor:
        """SLIC ids [N, H, W] of every image (on the CPU; ~60 ms for 180x240)."""
        config = self.config
        return torch.stack([slic_superpixels(i, config.superpixels, config.compactness) for i in images])

    def describe(self, taps: dict[str, torch.Tensor], index: int, segments: torch.Tensor) -> torch.Tensor:
        """Zoom-out descriptors [K, D] of image ``index``'s superpixels: every stage, sub-scene, scene."""
        grids = self.taps.grids
        matrices: dict[tuple, torch.Tensor] = {}
        levels = []
        for name in reversed(self.taps.names):  # local (finest) to distant
            feature = taps[name][index]
            key = (grids[name], *feature.shape[-2:])
            if key not in matrices:
                matrices[key] = superpixel_pooling_matrix(segments, feature.shape[-2:], grids[name])
            levels.append(pool_superpixels(feature, matrices[key]))
        deepest = taps[self.taps.names[0]][index]
        boxes = region_boxes(segments, self.config.subscene_radius)
        levels.append(pool_boxes(deepest, boxes, grids[self.taps.names[0]]))
        levels.append(deepest.mean(dim=(1, 2))[None].expand(boxes.shape[0], -1))
        return torch.cat(levels, dim=1)

    def descriptors(
        self, images: torch.Tensor, superpixels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(descriptors [sum K_i, D] of every image's superpixels in order, superpixel ids [N, H, W])."""
        if superpixels is None:
            superpixels = self.superpixels_of(images.cpu()).to(images.device)
        count = len(images)
        batch = torch.cat([images, images.flip(-1)]) if self.config.mirror_max else images
        taps = self.taps(self.inputs(batch))
        descriptors = []
        for index in range(count):
            segments = superpixels[index]
            descriptor = self.describe(taps, index, segments)
            # §3.4.1.4 mirror-max: the mirrored image with mirrored superpixels, elementwise max.
            if self.config.mirror_max:
                descriptor = torch.maximum(descriptor, self.describe(taps, count + index, segments.flip(-1)))
            descriptors.append(descriptor)
        return torch.cat(descriptors), superpixels

    def forward(
        self, images: torch.Tensor, superpixels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        # A batch of precomputed descriptors [B, D] (training on fixed features): classify them.
        if images.dim() == 2:
            return {"superpixel_logits": self.classifier(images)}
        descriptors, superpixels = self.descriptors(images, superpixels)
        logits = self.classifier(descriptors)
        counts = (superpixels.flatten(1).amax(dim=1) + 1).tolist()
        dense = [
            scores[segments].permute(2, 0, 1) for scores, segments in zip(logits.split(counts), superpixels)
        ]
        return {"seg": torch.stack(dense), "superpixel_logits": logits, "superpixels": superpixels}
