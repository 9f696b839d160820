"""Procedural road scenes: geometry from a pinhole camera over a ground plane, vectorised numpy.

The camera sits ``CAMERA_HEIGHT`` m above flat ground with focal length ``W`` pixels, so an object at depth
Z stands on image row ``horizon + f * CAMERA_HEIGHT / Z`` and is ``f / Z`` pixels per metre: objects lower in
the image are nearer and larger, and the depth map is consistent with the layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SKY, BUILDING, ROAD, VEGETATION, VEHICLE, PERSON = range(6)
FAR = 80.0  # metres; sky and the ground near the horizon
CAMERA_HEIGHT = 1.5  # metres

# Per class: hue angle in the CbCr plane (degrees), chroma, and the per-instance luminance range. Luminance
# ranges overlap widely so that grey level alone does not reveal the class (colour must come from context).
_HUE = np.radians([340.0, 160.0, 45.0, 235.0, 100.0, 300.0])
_CHROMA = np.array([0.16, 0.12, 0.06, 0.15, 0.20, 0.15])
_LUM = np.array([[0.45, 0.8], [0.2, 0.8], [0.2, 0.6], [0.15, 0.6], [0.15, 0.85], [0.15, 0.8]])


Region = tuple[slice, slice]
FULL: Region = (slice(None), slice(None))


@dataclass
class _Canvas:
    """Per-pixel layers that are painted far-to-near, then turned into colour."""

    seg: np.ndarray  # uint8 class ids
    depth: np.ndarray  # float32 metres
    lum: np.ndarray  # base luminance before illumination and texture
    hue: np.ndarray  # radians in the CbCr plane
    chroma: np.ndarray

    def paint(self, region: Region, mask: np.ndarray, cls: int, depth, lum, rng: np.random.Generator) -> None:
        """Paint ``mask`` (shaped like ``region``); array-valued ``depth``/``lum`` are also region-shaped."""
        hue, chroma = _HUE[cls] + rng.uniform(-0.15, 0.15), _CHROMA[cls] * rng.uniform(0.8, 1.2)
        self.seg[region][mask] = cls
        self.depth[region][mask] = depth if np.isscalar(depth) else depth[mask]
        self.lum[region][mask] = lum if np.isscalar(lum) else lum[mask]
        self.hue[region][mask] = hue
        self.chroma[region][mask] = chroma


@dataclass(frozen=True)
class _Object:
    """An upright object standing on the ground at depth ``z`` and lateral offset ``x`` (metres)."""

    cls: int
    z: float
    x: float
    width: float
    height: float


@dataclass(frozen=True)
class _Camera:
    horizon: float  # row of the horizon
    vx: float  # column of the vanishing point
    f: float  # focal length, pixels

    def row(self, z: float) -> float:
        return self.horizon + self.f * CAMERA_HEIGHT / z

    def col(self, x: float, z: float) -> float:
        return self.vx + x * self.f / z


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Bilinearly upsampled Gaussian grid: blotchy low-frequency texture, unit-ish variance."""
    grid = rng.standard_normal((int(h / cell) + 2, int(w / cell) + 2))
    y, x = (np.arange(h) + 0.5) / cell, (np.arange(w) + 0.5) / cell
    y0, x0 = y.astype(int), x.astype(int)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def render_scene(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: (RGB uint8 [h,w,3], class ids uint8 [h,w], depth float32 [h,w] in metres)."""
    cam = _Camera(horizon=rng.uniform(0.3, 0.55) * h, vx=rng.uniform(0.35, 0.65) * w, f=float(w))
    road_half, road_offset = rng.uniform(3.0, 8.0), rng.uniform(-3.0, 3.0)
    objects = _buildings(rng, cam, w) + _trees(rng, road_half) + _vehicles(rng, road_half, road_offset)
    objects += _people(rng, road_half, road_offset)
    illumination = rng.uniform(0.7, 1.25)

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    noise = smooth_noise(rng, h, w, cell=max(2.0, w / 20))
    canvas = _ground(rng, cam, yy, xx, road_half, road_offset)
    for obj in sorted(objects, key=lambda o: -o.z):  # painter's algorithm: far first
        _paint_object(canvas, obj, cam, yy, xx, noise, rng)
    fine = rng.standard_normal((h, w))
    return _colour(canvas, illumination, noise, fine), canvas.seg, canvas.depth


def _ground(rng, cam: _Camera, yy, xx, road_half: float, road_offset: float) -> _Canvas:
    h, w = yy.shape
    below = yy - cam.horizon
    ground_depth = np.where(below > 0, cam.f * CAMERA_HEIGHT / np.maximum(below, 1e-3), FAR).clip(max=FAR)
    sky_lum = rng.uniform(*_LUM[SKY]) * (0.85 + 0.25 * np.clip(yy / cam.horizon, 0, 1))  # brighter at horizon
    canvas = _Canvas(
        seg=np.full((h, w), SKY, np.uint8),
        depth=np.full((h, w), FAR, np.float32),
        lum=np.zeros((h, w), np.float32),
        hue=np.zeros((h, w), np.float32),
        chroma=np.zeros((h, w), np.float32),
    )
    canvas.paint(FULL, np.ones((h, w), bool), SKY, FAR, sky_lum, rng)
    canvas.paint(
        FULL, below > 0, VEGETATION, ground_depth, rng.uniform(*_LUM[VEGETATION]), rng
    )  # grass verge
    scale = np.maximum(below, 0) / CAMERA_HEIGHT  # pixels per metre on the ground at this row
    road = (below > 0) & (np.abs(xx - cam.vx - road_offset * scale) <= road_half * scale)
    canvas.paint(FULL, road, ROAD, ground_depth, rng.uniform(*_LUM[ROAD]), rng)
    return canvas


def _buildings(rng, cam: _Camera, w: int) -> list[_Object]:
    out = []
    for _ in range(rng.integers(2, 7)):
        z = rng.uniform(20.0, 70.0)
        x = (rng.uniform(0, w) - cam.vx) * z / cam.f  # uniform over the image width at that depth
        out.append(_Object(BUILDING, z, x, width=rng.uniform(8, 25), height=rng.uniform(6, 30)))
    return out


def _trees(rng, road_half: float) -> list[_Object]:
    out = []
    for _ in range(rng.integers(1, 6)):
        side = rng.choice([-1.0, 1.0])
        x = side * (road_half + rng.uniform(1.0, 15.0))
        out.append(
            _Object(VEGETATION, rng.uniform(8, 60), x, width=rng.uniform(3, 8), height=rng.uniform(4, 10))
        )
    return out


def _vehicles(rng, road_half: float, road_offset: float) -> list[_Object]:
    out = []
    for _ in range(rng.integers(0, 5)):
        x = road_offset + rng.uniform(-road_half + 1.0, road_half - 1.0)
        out.append(
            _Object(VEHICLE, rng.uniform(5, 50), x, width=rng.uniform(1.7, 2.3), height=rng.uniform(1.3, 2.4))
        )
    return out


def _people(rng, road_half: float, road_offset: float) -> list[_Object]:
    out = []
    for _ in range(rng.integers(0, 6)):
        x = road_offset + rng.choice([-1.0, 1.0]) * (road_half + rng.uniform(-0.5, 6.0))
        out.append(
            _Object(
                PERSON, rng.uniform(4, 40), x, width=rng.uniform(0.45, 0.65), height=rng.uniform(1.5, 1.95)
            )
        )
    return out


def _paint_object(canvas: _Canvas, obj: _Object, cam: _Camera, yy, xx, noise, rng) -> None:
    z, cls = obj.z, obj.cls
    base, xc = cam.row(z), cam.col(obj.x, z)
    half_w, hgt = obj.width * cam.f / z / 2, obj.height * cam.f / z
    # Work inside the object's bounding box (with margin for tree-crown noise): most objects are small.
    h, w = yy.shape
    top, bottom = int(max(0, base - 1.2 * hgt - 1)), int(min(h, base + 2))
    left, right = int(max(0, xc - 1.5 * half_w - 1)), int(min(w, xc + 1.5 * half_w + 2))
    region = (slice(top, max(top, bottom)), slice(left, max(left, right)))
    yy, xx, noise = yy[region], xx[region], noise[region]
    dx, dy = (xx - xc) / max(half_w, 0.5), (yy - (base - hgt / 2)) / max(hgt / 2, 0.5)
    lum = rng.uniform(*_LUM[cls])
    if cls == BUILDING:
        mask = (np.abs(dx) <= 1) & (np.abs(dy) <= 1)
        period = max(2.0, 1.5 * cam.f / z)  # ~1.5 m window grid
        windows = ((xx % period) < period / 2) & ((yy % period) < period / 2)
        lum = lum * np.where(windows, rng.uniform(0.6, 0.85), 1.0)
    elif cls == VEGETATION:
        crown = (dx**2 + ((yy - (base - 0.6 * hgt)) / max(0.4 * hgt, 0.5)) ** 2 + 0.35 * noise) <= 1
        trunk = (np.abs(dx) <= 0.12) & (yy <= base) & (yy >= base - 0.5 * hgt)
        mask = crown | trunk
    elif cls == VEHICLE:
        mask = (dx**4 + dy**4) <= 1  # superellipse: a rounded box
        lum = lum * np.where((dy < -0.2) & (np.abs(dx) < 0.8), 0.55, 1.0)  # darker windows
    else:
        body = (dx**2 + ((yy - (base - 0.42 * hgt)) / (0.42 * hgt + 0.5)) ** 2) <= 1
        head = (xx - xc) ** 2 + (yy - (base - 0.91 * hgt)) ** 2 <= (0.09 * hgt + 0.5) ** 2
        mask = body | head
    canvas.paint(region, mask, cls, np.float32(z), lum, rng)


def _colour(canvas: _Canvas, illumination: float, noise: np.ndarray, fine: np.ndarray) -> np.ndarray:
    """Luminance varies with instance, texture and illumination; hue/chroma stay characteristic of the class."""
    y = np.clip(canvas.lum * illumination * (1 + 0.12 * noise + 0.04 * fine), 0.02, 0.98)
    chroma = canvas.chroma * 4 * y * (1 - y)  # desaturate towards black and white, as real cameras do
    cb, cr = chroma * np.cos(canvas.hue), chroma * np.sin(canvas.hue)
    rgb = np.stack([y + 1.402 * cr, y - 0.344 * cb - 0.714 * cr, y + 1.772 * cb], axis=-1)
    return np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
