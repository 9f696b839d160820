"""Optical-flow data for the relative-motion proxy (Larsson thesis §4.7.1 "Video"; spec "V-syn" and "V-cam").

The thesis computes Farnebäck flow on Hollywood2 clips and associates it with a single frame. Offline
substitutes (spec "Testing it here", part B):

- :class:`FramePairs` (V-cam): consecutive frames of a video, e.g. CamVid's val frames, which are one 15 Hz
  clip (the train frames are 1 s apart, too far for flow); Farnebäck flow from each frame to the next.
- :class:`SyntheticFlow` (V-syn): the procedural road scenes (:mod:`pixelwise.data.scene`) with the **exact**
  flow of their static world under a random camera motion, from depth and the pinhole camera.

Items are ``(image float32 [3,H,W] in [0,1], {"flow": float32 [2,H,W]})``: the first frame and its flow
(dx, dy) in pixels to the next frame, so that frame1(y, x) ~ frame2(y + dy, x + dx) (OpenCV's convention).
Flow is NaN where it is unknown (a point that ends up behind the camera); consumers must not sample there.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from pixelwise.data.scene import EgoMotion, Scene, ego_flow, render_scene_full, render_second_frame
from pixelwise.data.synthetic import scene_generator, split_key
from pixelwise.data.validation import IMAGE_EXTENSIONS, DatasetError, load_image, parse_list_file

# OpenCV's documented example values (the thesis and Farnebäck 2003 give none for this use): a 3-level pyramid
# halving each level, 15 px averaging window, 3 iterations per level, polynomial expansion over 5 px
# neighbourhoods with sigma 1.2. The coarse levels let the 15 px window follow motions of tens of pixels, which
# is what 15 Hz driving video at 360x480 shows near the image edges (CamVid test: 99% of pixels < 16 px).
FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2}

Frame = np.ndarray | torch.Tensor


def _grey_uint8(frame: Frame, what: str) -> np.ndarray:
    """Grey uint8 [H,W] from a torch [3 or 1,H,W] / [H,W] tensor or a numpy [H,W,3] / [H,W] array; floats are
    read as [0,1], integers as 0..255 (Farnebäck runs on 8-bit grey images)."""
    array = frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if isinstance(frame, torch.Tensor) and array.ndim == 3:
        array = array.transpose(1, 2, 0)  # torch images are channels-first, numpy/OpenCV ones channels-last
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(
            f"{what}: expected an RGB or grey image (torch [3,H,W] or numpy [H,W,3], or [H,W]), "
            f"got shape {tuple(frame.shape)}"
        )
    if np.issubdtype(array.dtype, np.floating):
        array = np.rint(np.clip(np.nan_to_num(array), 0, 1) * 255)
    array = np.ascontiguousarray(np.clip(array, 0, 255).astype(np.uint8))
    return cv2.cvtColor(array, cv2.COLOR_RGB2GRAY) if array.ndim == 3 else array


def farneback_flow(frame1: Frame, frame2: Frame, params: Mapping[str, float] | None = None) -> torch.Tensor:
    """Farnebäck optical flow float32 [2,H,W] = (dx, dy) from ``frame1`` to ``frame2`` (their grey versions).

    ``params`` override :data:`FARNEBACK` (keys of ``cv2.calcOpticalFlowFarneback``).
    """
    grey1, grey2 = _grey_uint8(frame1, "frame1"), _grey_uint8(frame2, "frame2")
    if grey1.shape != grey2.shape:
        raise ValueError(f"farneback_flow: frames differ in size, {grey1.shape} vs {grey2.shape}; resize one")
    options = {**FARNEBACK, **(params or {})}
    flow = cv2.calcOpticalFlowFarneback(grey1, grey2, None, flags=0, **options)  # [H,W,2]
    return torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32))


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Flow [2,H,W] resampled to ``size`` (bilinear, antialiased, like the images), rescaled to its pixels."""
    height, width = flow.shape[-2:]
    if (height, width) == tuple(size):
        return flow
    resized = F.resize_image(flow, list(size), InterpolationMode.BILINEAR, antialias=True)
    scale = torch.tensor([size[1] / width, size[0] / height], dtype=flow.dtype).view(2, 1, 1)
    return resized * scale


def hflip_flow(flow: torch.Tensor) -> torch.Tensor:
    """The flow of the mirrored frames: mirrored, and dx negated (an augmentation must flip both together)."""
    flipped = flow.flip(-1)
    return torch.cat([-flipped[..., :1, :, :], flipped[..., 1:, :, :]], dim=-3)


# --- V-cam: Farnebäck flow between consecutive video frames ------------------------------------------------

_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def _frame_key(path: Path) -> tuple[str, int | None]:
    """(clip prefix, frame number) from a file stem such as '0016E5_07959'; (stem, None) when unnumbered."""
    match = _NUMBERED.match(path.stem)
    return (match.group(1), int(match.group(2))) if match else (path.stem, None)


def _natural_key(path: Path) -> tuple[str, int, str]:
    prefix, number = _frame_key(path)
    return prefix, -1 if number is None else number, path.name


def consecutive_pairs(frames: Sequence[Path], step: int | None = None) -> list[tuple[Path, Path]]:
    """Neighbouring frames that are consecutive: same name prefix and frame numbers ``step`` apart.

    ``step`` None: the most common positive difference between neighbours of one clip (CamVid's val clip
    numbers every second frame of the 30 Hz camera, so its step is 2). A gap in the numbering splits the
    sequence; unnumbered names are taken as consecutive in the given order.
    """
    keys = [_frame_key(path) for path in frames]
    differences = [
        b[1] - a[1]
        for a, b in zip(keys, keys[1:])
        if a[1] is not None and b[1] is not None and a[0] == b[0] and b[1] > a[1]
    ]
    if step is None and differences:
        step = Counter(differences).most_common(1)[0][0]
    pairs = []
    for (a, b), first, second in zip(zip(keys, keys[1:]), frames, frames[1:]):
        unnumbered = a[1] is None and b[1] is None
        if unnumbered or (a[1] is not None and b[1] is not None and a[0] == b[0] and b[1] - a[1] == step):
            pairs.append((first, second))
    return pairs


def list_frames(folder: str | Path) -> list[Path]:
    """The image files of ``folder`` in natural order (by clip prefix, then frame number)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: frame folder not found; pass a folder of consecutive video frames")
    frames = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(frames, key=_natural_key)


class FramePairs(Dataset):
    """Consecutive video frames with the Farnebäck flow from each to the next (spec "V-cam").

    ``frames``: a folder (its images in natural order) or a list of frame paths in temporal order. Pairs are
    :func:`consecutive_pairs` (a gap in the numbering is not paired). Flow is computed at the frames' own
    resolution, then, with ``size`` = (H, W), resized with the image and rescaled to the new pixels. Item i:
    ``(frame float32 [3,H,W] in [0,1], {"flow": float32 [2,H,W]})``, cached per instance with ``cache``.
    ``length`` keeps the first ``length`` pairs.
    """

    def __init__(
        self,
        frames: str | Path | Sequence[str | Path],
        *,
        size: tuple[int, int] | None = None,
        step: int | None = None,
        length: int | None = None,
        cache: bool = True,
        params: Mapping[str, float] | None = None,
    ) -> None:
        source = str(frames) if isinstance(frames, (str, Path)) else f"the list of {len(frames)} frames"
        paths = list_frames(frames) if isinstance(frames, (str, Path)) else [Path(p) for p in frames]
        self.pairs = consecutive_pairs(paths, step)[:length]
        if not self.pairs:
            raise DatasetError(
                f"{source}: {len(paths)} frame(s) but no consecutive pair; FramePairs needs at least two "
                f"frames of one clip with frame numbers one step apart (e.g. name_0001.png, name_0002.png)"
            )
        self.size = tuple(size) if size is not None else None
        self.params = dict(params or {})
        self.cache = cache
        self._cache: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image, flow = self.load(index)
        return image.float() / 255, {"flow": flow.clone()}

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(first frame uint8 [3,H,W], flow float32 [2,H,W]) of pair ``index``, from the cache if present."""
        cached = self._cache[index]
        if cached is not None:
            return cached
        first, second = (load_image(path) for path in self.pairs[index])  # uint8 [H,W,3]
        if first.shape != second.shape:
            raise DatasetError(
                f"{self.pairs[index][1]}: frame is {second.shape[1]}x{second.shape[0]} but the previous "
                f"frame {self.pairs[index][0]} is {first.shape[1]}x{first.shape[0]}; give a clip one size"
            )
        flow = farneback_flow(first, second, self.params)
        image = torch.from_numpy(np.ascontiguousarray(first.transpose(2, 0, 1)))
        if self.size is not None:
            image = F.resize_image(image, list(self.size), InterpolationMode.BILINEAR, antialias=True)
            flow = resize_flow(flow, self.size)
        item = (image.contiguous(), flow.contiguous())
        if self.cache:
            self._cache[index] = item
        return item


def camvid_frame_pairs(
    root: str | Path, *, size: tuple[int, int] | None = None, length: int | None = None, cache: bool = True
) -> FramePairs:
    """V-cam on CamVid: the val frames (``root/val.txt``'s images; labels are never read), one 15 Hz clip,
    paired frame to next frame: 100 pairs from the 101 frames."""
    list_file = Path(root) / "val.txt"
    if not list_file.is_file():
        raise DatasetError(
            f"{list_file}: CamVid list file not found; pass the CamVid folder (SegNet layout, with val.txt)"
        )
    frames = sorted((image for image, _ in parse_list_file(list_file)), key=_natural_key)
    return FramePairs(frames, size=size, length=length, cache=cache)


# --- V-syn: synthetic scenes with exact flow under ego-motion ----------------------------------------------

_MOTION_KEY = 0x4D4F56  # separates the motion's generator from the scene's, so scenes stay SyntheticScenes'


class SyntheticFlow(Dataset):
    """Procedural road scenes with the exact flow of a random camera motion (spec "V-syn").

    Sample i is scene i of ``SyntheticScenes(seed=seed, split=split)`` (the same image) and an
    :class:`~pixelwise.data.scene.EgoMotion` drawn from its own generator: forward ``U(forward)`` m, right
    ``U(-sideways, sideways)`` m, yaw ``U(-yaw, yaw)`` degrees (ours: about one 15 Hz frame of a car at 3-15
    m/s that turns gently; the thesis's Hollywood2 has no such parameters). The flow follows from the depth
    map and the camera (:func:`~pixelwise.data.scene.ego_flow`). Everything depends only on (seed, split, i).

    Items: ``(image float32 [3,H,W], {"flow": float32 [2,H,W]})``, plus ``"next"`` (the rendered second frame,
    float32 [3,H,W]) with ``with_next``.
    """

    def __init__(
        self,
        length: int,
        size: tuple[int, int] = (120, 160),
        seed: int = 0,
        split: str = "train",
        *,
        forward: tuple[float, float] = (0.2, 1.0),
        sideways: float = 0.2,
        yaw: float = 1.0,
        with_next: bool = False,
        cache: bool = True,
    ) -> None:
        if length < 0 or seed < 0:
            raise ValueError(f"length and seed must be >= 0, got length={length}, seed={seed}")
        self.length, self.size, self.seed, self.split = length, tuple(size), seed, split
        self.forward, self.sideways, self.yaw = tuple(forward), sideways, yaw
        self.with_next, self.cache = with_next, cache
        self._cache: list[tuple[torch.Tensor, ...] | None] = [None] * length

    def __len__(self) -> int:
        return self.length

    def _index(self, index: int) -> int:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} synthetic flow samples")
        return index % self.length

    def motion(self, index: int) -> EgoMotion:
        """Sample ``index``'s camera motion."""
        rng = np.random.default_rng([self.seed, split_key(self.split), self._index(index), _MOTION_KEY])
        forward = rng.uniform(*self.forward)
        right = rng.uniform(-self.sideways, self.sideways)
        return EgoMotion(
            forward=forward, right=right, yaw=float(np.radians(rng.uniform(-self.yaw, self.yaw)))
        )

    def scene(self, index: int) -> Scene:
        """Sample ``index``'s first frame and its description (camera, surfaces)."""
        return render_scene_full(scene_generator(self.seed, self.split, self._index(index)), *self.size)

    def load(self, index: int) -> tuple[torch.Tensor, ...]:
        """(image uint8 [3,H,W], flow float32 [2,H,W][, next frame uint8 [3,H,W]]), cached if ``cache``."""
        index = self._index(index)
        cached = self._cache[index]
        if cached is not None:
            return cached
        scene, motion = self.scene(index), self.motion(index)
        frames = [scene.image]
        if self.with_next:
            frames.append(render_second_frame(scene, motion)[0])
        images = [torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1))) for f in frames]
        flow = torch.from_numpy(ego_flow(scene.depth, scene.camera, motion))
        item = (images[0], flow, *images[1:])
        if self.cache:
            self._cache[index] = item
        return item

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image, flow, *rest = self.load(index)
        target = {"flow": flow.clone()}
        if rest:
            target["next"] = rest[0].float() / 255
        return image.float() / 255, target
