"""Digits that need no download, and the MNIST-variations recipe on top of them (Larsson thesis §1.2.9, Fig. 1.1).

There is no MNIST offline (torchvision, keras and the ``mnist`` packages fetch it at run time), so
(docs: specs/mixture-models.md, "Testing it here, offline"):

- :func:`sklearn_digits`: scikit-learn's bundled ``load_digits`` (1,797 real handwritten digits, 8x8, 17 grey
  levels; the CSV ships inside the wheel). Upsampled x3 (bilinear) to 24x24 and zero-padded to 28x28, the MNIST
  layout, so that 6x6 parts and 4x4 pooling fit. Upsampling adds no detail: edges come out blocky.
- :func:`font_digits`: 0-9 rendered from the TrueType fonts matplotlib ships (DejaVu Sans / Serif / Mono in four
  styles, STIX, Computer Modern), each with a random affine map (scale, shear, +-15 degrees), a random stroke
  width (dilation / erosion) and an elastic distortion: as many samples as asked for.
- :func:`make_variation`: the variations of Larochelle et al. (2007) that the thesis evaluates on. Digits are white
  ink on black in [0, 1]; a variation first rotates the digit (rot, bg-img-rot: uniform angle in [0, 360), bilinear,
  about the image centre), then composes it with a background as **max(digit, background)** (bg-rand: i.i.d.
  uniform noise in [0, 1] per pixel; bg-img: a random 28x28 grey crop of a CamVid train frame at half resolution).
  The thesis does not state the compositing; the maximum keeps the ink fully visible, as in the benchmark images.
- :func:`image_folder`: your own images, one sub-folder per class.

Every function returns ``(images [N, 1, 28, 28] float32 in [0, 1], labels [N] int64)`` and is deterministic by its
seed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

VARIANTS = ("basic", "rot", "bg-rand", "bg-img", "bg-img-rot")
SIZE = 28
# matplotlib's bundled fonts with the ten digits at their ASCII code points (the Computer Modern math fonts,
# cmmi/cmsy/cmex, and the STIX size / non-Unicode variants hold other glyphs there).
FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmti10.ttf",
)  # fmt: skip


def sklearn_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 bundled handwritten digits as 28x28 images (x3 bilinear to 24x24, zero padding 2).

    Needs scikit-learn (``pip install scikit-learn``; in the ``dev`` extra); nothing is downloaded.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # an optional dependency: say how to get it
        raise ImportError(
            "the scikit-learn digits need scikit-learn: pip install scikit-learn (it is in the dev extra)"
        ) from err
    bunch = load_digits()
    small = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]  # 17 grey levels -> [0, 1]
    large = F.interpolate(small, scale_factor=3, mode="bilinear", align_corners=False).clamp(0, 1)
    pad = (SIZE - large.shape[-1]) // 2
    return F.pad(large, (pad, pad, pad, pad)), torch.from_numpy(bunch.target.astype(np.int64))


def font_paths() -> list[Path]:
    """The bundled matplotlib fonts :func:`font_digits` renders (those present in this installation)."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return [folder / name for name in FONT_FILES if (folder / name).is_file()]


def _render_glyph(font_path: Path, digit: int, canvas: int = 64) -> np.ndarray:
    """One digit, white on black, centred by its ink's bounding box, about 40 px tall on a 64x64 canvas."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path), size=44)
    image = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=font)
    draw.text(
        ((canvas - (right - left)) / 2 - left, (canvas - (bottom - top)) / 2 - top), str(digit), 255, font
    )
    return np.asarray(image, dtype=np.float32) / 255.0


def _affine_grids(count: int, rng: np.random.Generator, max_angle: float) -> torch.Tensor:
    """Random scale (0.8-1.05 of the canvas' digit), shear (+-0.25) and rotation (+-max_angle degrees) grids."""
    angle = np.deg2rad(rng.uniform(-max_angle, max_angle, count))
    scale = rng.uniform(0.8, 1.05, count)
    shear = rng.uniform(-0.25, 0.25, count)
    cos, sin = np.cos(angle), np.sin(angle)
    # Output -> input coordinates (grid_sample samples the input): inverse rotation, shear, 1/scale.
    theta = np.zeros((count, 2, 3), np.float32)
    theta[:, 0, 0], theta[:, 0, 1] = cos / scale, (sin + shear) / scale
    theta[:, 1, 0], theta[:, 1, 1] = -sin / scale, cos / scale
    theta[:, :, 2] = rng.uniform(-0.06, 0.06, (count, 2))  # up to ~2 px of translation at 28 px
    return torch.from_numpy(theta)


def _elastic(
    images: torch.Tensor, rng: np.random.Generator, alpha: float = 0.05, sigma: float = 4.0
) -> torch.Tensor:
    """Simard-style elastic distortion: a random displacement field, Gaussian-smoothed, of ~alpha of the width."""
    count, _, height, width = images.shape
    noise = torch.from_numpy(rng.uniform(-1, 1, (count, 2, height, width)).astype(np.float32))
    radius = int(2 * sigma)
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    taps = taps / taps.sum()
    field = F.conv2d(
        F.pad(noise, (radius,) * 4, mode="reflect"), taps.view(1, 1, 1, -1).expand(2, 1, 1, -1), groups=2
    )
    field = F.conv2d(field, taps.view(1, 1, -1, 1).expand(2, 1, -1, 1), groups=2)
    field = field / field.flatten(1).abs().amax(dim=1).clamp(min=1e-6).view(-1, 1, 1, 1) * alpha * 2
    base = F.affine_grid(torch.eye(2, 3).expand(count, 2, 3), list(images.shape), align_corners=False)
    return F.grid_sample(images, base + field.permute(0, 2, 3, 1), align_corners=False, padding_mode="zeros")


def font_digits(count: int, seed: int = 0, max_angle: float = 15.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` synthetic digits (balanced classes) from matplotlib's fonts, each randomly deformed.

    Per sample: a random font, a random affine map (scale, shear, rotation within +-``max_angle``), a random
    stroke width (3x3 dilation or erosion at the 64 px canvas, or neither) and an elastic distortion; rendered at
    64x64 and reduced to 28x28 with antialiasing (the digit ~20 px tall, as in MNIST).
    """
    if count < 1:
        raise ValueError(f"font_digits needs count >= 1, got {count}")
    fonts = font_paths()
    if not fonts:
        raise FileNotFoundError(
            "no bundled matplotlib TrueType fonts found (matplotlib's mpl-data/fonts/ttf)"
        )
    rng = np.random.default_rng(seed)
    labels = torch.arange(count) % 10
    glyphs = {(f, d): _render_glyph(fonts[f], d) for f in range(len(fonts)) for d in range(10)}
    which = rng.integers(0, len(fonts), count)
    canvas = torch.from_numpy(np.stack([glyphs[(int(f), int(d))] for f, d in zip(which, labels)]))[:, None]
    stroke = rng.integers(-1, 2, count)  # -1 erode, 0 keep, +1 dilate
    dilated, eroded = F.max_pool2d(canvas, 3, 1, 1), -F.max_pool2d(-canvas, 3, 1, 1)
    canvas = torch.where(torch.from_numpy(stroke == 1).view(-1, 1, 1, 1), dilated, canvas)
    # Erode only where the strokes survive it (a thin font would vanish): most of the ink must remain.
    keeps = eroded.flatten(1).sum(dim=1) > 0.6 * canvas.flatten(1).sum(dim=1)
    erode = torch.from_numpy(stroke == -1) & keeps
    canvas = torch.where(erode.view(-1, 1, 1, 1), eroded, canvas)
    grid = F.affine_grid(_affine_grids(count, rng, max_angle), list(canvas.shape), align_corners=False)
    canvas = _elastic(F.grid_sample(canvas, grid, align_corners=False), rng)
    images = F.interpolate(canvas, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
    # Full contrast per digit: thin strokes reduced to 28 px come out grey.
    images = images / images.flatten(1).amax(dim=1).clamp(min=1e-6).view(-1, 1, 1, 1)
    order = torch.from_numpy(rng.permutation(count))
    return images.clamp(0, 1)[order].contiguous(), labels[order].contiguous()


def rotate(images: torch.Tensor, angles: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """Rotate each image [N, C, H, W] by its angle (radians) about the image centre, bilinear.

    The content turns by +angle in (column, row) coordinates: the point at offset (dx, dy) from the centre moves
    to (dx cos a - dy sin a, dx sin a + dy cos a), i.e. clockwise on screen, rows pointing down. The edge
    features (:mod:`pixelwise.methods.mixtures.edges`) number their 8 directions in the same sense, so a
    rotation by 45 k degrees moves edge feature j to j + k.
    """
    angles = angles.to(images.dtype).reshape(-1)
    if angles.numel() == 1 and images.shape[0] != 1:
        angles = angles.expand(images.shape[0])
    cos, sin = torch.cos(angles), torch.sin(angles)
    height, width = images.shape[-2:]
    # grid_sample reads output pixel q from the input at Rot(-a) q, in pixel units (normalised per axis).
    theta = torch.zeros(images.shape[0], 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0], theta[:, 0, 1] = cos, sin * height / width
    theta[:, 1, 0], theta[:, 1, 1] = -sin * width / height, cos
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def camvid_backgrounds(root: str | Path | None, limit: int = 60) -> torch.Tensor | None:
    """Grey CamVid train frames at half resolution [K, 1, 180, 240] for bg-img, or None when ``root`` is absent.

    ``root`` is the CamVid folder (``train/*.png``); only the images are read, never the labels.
    """
    if root is None:
        return None
    folder = Path(root) / "train"
    files = sorted(folder.glob("*.png"))[:limit] if folder.is_dir() else []
    if not files:
        return None
    from PIL import Image

    frames = []
    for path in files:
        with Image.open(path) as image:
            grey = image.convert("L")
            grey = grey.resize((grey.width // 2, grey.height // 2), Image.Resampling.BILINEAR)
            frames.append(np.asarray(grey, dtype=np.float32) / 255.0)
    return torch.from_numpy(np.stack(frames))[:, None]


def _crops(frames: torch.Tensor, count: int, rng: np.random.Generator) -> torch.Tensor:
    which = rng.integers(0, frames.shape[0], count)
    rows = rng.integers(0, frames.shape[-2] - SIZE + 1, count)
    cols = rng.integers(0, frames.shape[-1] - SIZE + 1, count)
    return torch.stack([frames[w, :, r : r + SIZE, c : c + SIZE] for w, r, c in zip(which, rows, cols)])


def make_variation(
    images: torch.Tensor,
    variant: str,
    seed: int = 0,
    backgrounds: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(varied images, the rotation applied to each in radians; 0 where none) for one of :data:`VARIANTS`.

    rot / bg-img-rot rotate each digit by a uniform angle in [0, 2 pi) first; bg-rand / bg-img / bg-img-rot then
    compose ``max(digit, background)``. bg-img needs ``backgrounds`` (:func:`camvid_backgrounds`) and raises a
    ValueError naming the fix when it is None.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown digit variation {variant!r}; choose from {', '.join(VARIANTS)}")
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"digit images must be [N, 1, H, W] grey, got {list(images.shape)}")
    rng = np.random.default_rng(seed)
    count = images.shape[0]
    angles = torch.zeros(count)
    if variant in ("rot", "bg-img-rot"):
        angles = torch.from_numpy(rng.uniform(0, 2 * math.pi, count).astype(np.float32))
        images = rotate(images, angles).clamp(0, 1)
    if variant == "bg-rand":
        background = torch.from_numpy(rng.uniform(0, 1, images.shape).astype(np.float32))
        images = torch.maximum(images, background)
    elif variant in ("bg-img", "bg-img-rot"):
        if backgrounds is None:
            raise ValueError(
                f"--variant {variant} needs background frames: pass --backgrounds PATH to a CamVid folder "
                "(with train/*.png), or choose basic, rot or bg-rand"
            )
        if backgrounds.shape[-2] < images.shape[-2] or backgrounds.shape[-1] < images.shape[-1]:
            raise ValueError(f"background frames {list(backgrounds.shape[-2:])} are smaller than the digits")
        images = torch.maximum(images, _crops(backgrounds, count, rng))
    return images.contiguous(), angles


def image_folder(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images [N, C, H, W] in [0, 1], labels, class names) from ``path/<class>/*.png|jpg``, sorted by name.

    All images must share one size and mode; C is 1 for grey files and 3 for colour ones.
    """
    from PIL import Image

    root = Path(path)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise ValueError(f"{root}: expected one sub-folder of images per class (e.g. {root}/0/*.png)")
    arrays, labels, shapes = [], [], set()
    for index, name in enumerate(classes):
        for file in sorted((root / name).iterdir()):
            if file.suffix.lower() not in (".png", ".jpg", ".jpeg"):
                continue
            with Image.open(file) as image:
                array = np.asarray(image.convert("RGB" if image.mode in ("RGB", "RGBA", "P") else "L"))
            shapes.add(array.shape)
            arrays.append(array.astype(np.float32) / 255.0)
            labels.append(index)
    if not arrays:
        raise ValueError(f"{root}: no .png/.jpg images in its class folders")
    if len(shapes) > 1:
        raise ValueError(
            f"{root}: images of several sizes/modes {sorted(shapes)}; resize them to one size first"
        )
    stacked = np.stack(arrays)
    images = torch.from_numpy(stacked[:, None] if stacked.ndim == 3 else stacked.transpose(0, 3, 1, 2))
    return images.contiguous(), torch.tensor(labels), classes


def load_digit_data(
    spec: str, variant: str = "basic", backgrounds: str | Path | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, list[str], torch.Tensor]:
    """(images, labels, class names, applied rotation in radians) of a data spec, with ``variant`` applied.

    ``spec``: ``digits`` (scikit-learn's bundled digits), ``fonts`` or ``fonts:N`` (N rendered font digits,
    default 3,000) or ``folder:PATH`` (:func:`image_folder`; variations need grey images of any one size).
    """
    if spec == "digits":
        images, labels = sklearn_digits()
        classes = [str(i) for i in range(10)]
    elif spec == "fonts" or spec.startswith("fonts:"):
        count = spec.partition(":")[2] or "3000"
        if not count.isdigit() or int(count) < 10:
            raise ValueError(f"--data {spec}: give fonts:N with a whole number N >= 10, e.g. fonts:3000")
        images, labels = font_digits(int(count), seed=seed)
        classes = [str(i) for i in range(10)]
    elif spec.startswith("folder:"):
        images, labels, classes = image_folder(spec.partition(":")[2])
    else:
        raise ValueError(f"--data {spec}: use digits, fonts[:N] or folder:PATH")
    angles = torch.zeros(len(images))
    if variant != "basic":
        frames = camvid_backgrounds(backgrounds) if variant in ("bg-img", "bg-img-rot") else None
        images, angles = make_variation(images, variant, seed=seed, backgrounds=frames)
    return images, labels, classes, angles


def stratified_split(
    labels: torch.Tensor, test_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) indices: ``test_fraction`` of every class held out at random (seeded); ``train`` is ordered
    by rank within class (rank 0 of every class, then rank 1, ...), so its first L C are L labels per class."""
    generator = torch.Generator().manual_seed(seed)
    train, test = [], []
    for value in sorted(set(labels.tolist())):
        members = torch.nonzero(labels == value).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        cut = len(members) - max(1, round(test_fraction * len(members)))
        train.append(members[:cut])
        test.append(members[cut:])
    width = max(len(t) for t in train)
    ranked = [t[rank] for rank in range(width) for t in train if rank < len(t)]
    return torch.stack(ranked), torch.cat(test)


def per_class_subset(train: torch.Tensor, labels: torch.Tensor, per_class: int) -> torch.Tensor:
    """The first ``per_class`` indices of every class in ``train`` (0: all of them)."""
    if per_class <= 0:
        return train
    seen: dict[int, int] = {}
    kept = []
    for index in train.tolist():
        value = int(labels[index])
        if seen.get(value, 0) < per_class:
            seen[value] = seen.get(value, 0) + 1
            kept.append(index)
    return torch.tensor(kept)
