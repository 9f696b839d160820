"""Procedural road scenes: geometry from a pinhole camera over a ground plane, vectorised numpy.

The camera sits ``CAMERA_HEIGHT`` m above flat ground with focal length ``W`` pixels, so an object at depth
Z stands on image row ``horizon + f * CAMERA_HEIGHT / Z`` and is ``f / Z`` pixels per metre: objects lower in
the image are nearer and larger, and the depth map is consistent with the layout.

Coordinates: continuous pixel coordinates, pixel (i, j) spanning [i, i+1) x [j, j+1) with its centre at
(i + 0.5, j + 0.5); camera axes x right, y down, z forward (metres), so a point (X, Y, Z) projects to
(row, col) = (horizon + f Y / Z, vx + f X / Z).

Second frame (relative-motion proxy, Larsson §4.7.1; spec "V-syn"). :func:`render_scene_full` also returns the
scene's description (:class:`Scene`: the camera and every painted surface), from which
:func:`render_second_frame` renders the same static world seen after an :class:`EgoMotion` and
:func:`ego_flow` gives the exact optical flow of every first-frame pixel. Textures are anchored to the world:
a surface point carries the texture the first frame shows at its first-frame projection, so the two frames
differ only by the motion (and by what it occludes or reveals). Depths >= ``FAR`` (the sky and the ground
beyond it) are treated as infinitely far: they move with the camera's rotation only.

Instances and keypoints (spec correspondence-keypoints.md P4; region-proposals.md data A). Painting also
writes ``Scene.instances`` [h,w] (int32): object ``k`` of ``Scene.objects`` (painting order) has id
``k + 1``, 0 is the sky and the ground; painting far to near makes the map occlusion-correct.
:func:`object_keypoints` gives each vehicle and person its analytic keypoints (:data:`KEYPOINT_NAMES`),
visible where the instance map holds the object's id. Neither draws a random number: every other output is
bit-identical to the renderer's before.

The harder world (``variant="hard"``; spec depth-joint.md "two harder variants"). In the default world depth
is almost a function of the label layout: one camera height, so ground depth = f h / (row - horizon) with a
known h, and textures sized in pixels, so RGB carries no texture-gradient cue. The hard variant draws a camera
height per scene (``HARD_CAMERA_HEIGHT``) and a wider horizon range, and anchors the luminance texture to the
world (cells of ``HARD_TEXTURE_CELL`` metres on every surface: finer with distance). It draws its own random
numbers, so the default world's output is bit-identical to before; the second frame and the flow
(:func:`render_second_frame`) are defined for the default world only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SKY, BUILDING, ROAD, VEGETATION, VEHICLE, PERSON = range(6)
FAR = 80.0  # metres; sky and the ground near the horizon
CAMERA_HEIGHT = 1.5  # metres
MIN_DEPTH = 0.1  # metres; nearer than this (or behind the camera) after the motion: no flow (NaN)
HARD_CAMERA_HEIGHT = (0.8, 3.0)  # metres: a car's bonnet to a van's roof
HARD_HORIZON = (0.2, 0.65)  # fraction of the image height (default world: 0.3-0.55)
HARD_TEXTURE_CELL = 0.5  # metres per texture cell on every surface (hard variant)
HARD_TEXTURE_GRID = 97  # cells per side of the periodic world texture (prime: no visible repeat)
VARIANTS = ("default", "hard")

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
    instances: np.ndarray | None = None  # int32 object ids (0 = none); None where no instance map is kept

    def paint(
        self, region: Region, mask: np.ndarray, cls: int, depth, lum, rng: np.random.Generator
    ) -> tuple[float, float]:
        """Paint ``mask`` (shaped like ``region``); array-valued ``depth``/``lum`` are also region-shaped.

        Returns the (hue, chroma) drawn for this surface, so that a second frame can repaint it.
        """
        hue, chroma = _HUE[cls] + rng.uniform(-0.15, 0.15), _CHROMA[cls] * rng.uniform(0.8, 1.2)
        self.seg[region][mask] = cls
        self.depth[region][mask] = depth if np.isscalar(depth) else depth[mask]
        self.lum[region][mask] = lum if np.isscalar(lum) else lum[mask]
        self.hue[region][mask] = hue
        self.chroma[region][mask] = chroma
        return hue, chroma


@dataclass(frozen=True)
class _Object:
    """An upright object standing on the ground at depth ``z`` and lateral offset ``x`` (metres)."""

    cls: int
    z: float
    x: float
    width: float
    height: float


@dataclass(frozen=True)
class Camera:
    """The renderer's pinhole camera: no pitch or roll, ``height`` m above the ground (``CAMERA_HEIGHT``
    except in the hard variant)."""

    horizon: float  # row of the horizon
    vx: float  # column of the vanishing point
    f: float  # focal length, pixels
    height: float = CAMERA_HEIGHT  # metres

    def row(self, z: float) -> float:
        return self.horizon + self.f * self.height / z

    def col(self, x: float, z: float) -> float:
        return self.vx + x * self.f / z


_Camera = Camera  # the name before the camera became public


@dataclass(frozen=True)
class EgoMotion:
    """Where the second frame's camera is, relative to the first's: ``right``, ``up`` and ``forward`` in
    metres along the first camera's axes, then a turn of ``yaw`` radians about the vertical axis (positive: to
    the right). The world is static; a camera moving forward sees it expand from the vanishing point."""

    forward: float = 0.0
    right: float = 0.0
    up: float = 0.0
    yaw: float = 0.0

    def __post_init__(self) -> None:
        values = (self.forward, self.right, self.up, self.yaw)
        # Past these the ground or the image edge would be behind the camera: the renderer has no answer.
        if not all(math.isfinite(v) for v in values) or abs(self.yaw) >= 0.5 or abs(self.up) >= CAMERA_HEIGHT:
            raise ValueError(
                f"EgoMotion{values}: needs finite values, |yaw| < 0.5 rad and |up| < {CAMERA_HEIGHT} m "
                f"(the camera height)"
            )

    @property
    def centre(self) -> tuple[float, float, float]:
        """The second camera's centre in first-camera coordinates (x right, y down, z forward)."""
        return self.right, -self.up, self.forward


@dataclass(frozen=True)
class _Surface:
    """One painted surface's colour: base luminance and the drawn hue and chroma."""

    lum: float
    hue: float
    chroma: float


@dataclass(frozen=True)
class _Painted:
    """An object as it was painted: its geometry, colour and (buildings) window darkening."""

    obj: _Object
    surface: _Surface
    window: float


@dataclass(frozen=True)
class Scene:
    """A rendered scene (``image`` uint8 [h,w,3], ``seg`` uint8 [h,w], ``depth`` float32 [h,w] metres) and the
    description it was painted from, enough to render the same world from another camera pose."""

    image: np.ndarray
    seg: np.ndarray
    depth: np.ndarray
    camera: Camera
    road_half: float
    road_offset: float
    illumination: float
    noise_grid: np.ndarray  # the coarse Gaussian grid behind ``smooth_noise``
    noise_cell: float
    fine: np.ndarray  # per-pixel white noise [h,w]
    sky: _Surface
    verge: _Surface
    road: _Surface
    objects: tuple[_Painted, ...]  # in painting order (far first)
    # int32 [h,w]: objects[k] has id k + 1, 0 = sky / ground (last and defaulted: older callers still work)
    instances: np.ndarray | None = None
    variant: str = "default"  # "hard": per-scene camera height, world-anchored texture (module docstring)

    @property
    def size(self) -> tuple[int, int]:
        return self.seg.shape[0], self.seg.shape[1]

    def keypoints(self, classes: tuple[int, ...] = (VEHICLE, PERSON)) -> list[ObjectKeypoints]:
        """The analytic keypoints of every object of ``classes`` (:func:`object_keypoints`)."""
        return object_keypoints(self, classes)


def _noise_grid(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    return rng.standard_normal((int(h / cell) + 2, int(w / cell) + 2))


def _upsample_grid(grid: np.ndarray, h: int, w: int, cell: float) -> np.ndarray:
    y, x = (np.arange(h) + 0.5) / cell, (np.arange(w) + 0.5) / cell
    y0, x0 = y.astype(int), x.astype(int)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _noise_at(grid: np.ndarray, cell: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """``_upsample_grid``'s field at arbitrary points (the same arithmetic: equal values at pixel centres);
    beyond the grid it clamps to the edge cells."""
    y, x = yy.astype(np.float64) / cell, xx.astype(np.float64) / cell
    y0 = np.clip(np.floor(y), 0, grid.shape[0] - 2).astype(int)
    x0 = np.clip(np.floor(x), 0, grid.shape[1] - 2).astype(int)
    fy, fx = np.clip(y - y0, 0, 1), np.clip(x - x0, 0, 1)
    top = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
    bottom = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Bilinearly upsampled Gaussian grid: blotchy low-frequency texture, unit-ish variance."""
    return _upsample_grid(_noise_grid(rng, h, w, cell), h, w, cell)


def render_scene(
    rng: np.random.Generator, h: int, w: int, variant: str = "default"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: (RGB uint8 [h,w,3], class ids uint8 [h,w], depth float32 [h,w] in metres)."""
    scene = render_scene_full(rng, h, w, variant)
    return scene.image, scene.seg, scene.depth


def _hard_camera(rng: np.random.Generator, h: int, w: int) -> Camera:
    """The hard variant's camera: the horizon over a wider range and a random height (metres)."""
    horizon, vx = rng.uniform(*HARD_HORIZON) * h, rng.uniform(0.35, 0.65) * w
    return Camera(horizon=horizon, vx=vx, f=float(w), height=float(rng.uniform(*HARD_CAMERA_HEIGHT)))


def world_texture(rng: np.random.Generator, cam: Camera, depth: np.ndarray, yy, xx) -> np.ndarray:
    """Luminance texture anchored to the world: the point (X, Y, Z) each pixel sees (from ``depth``) indexes a
    periodic Gaussian grid by (X, Y + Z) / ``HARD_TEXTURE_CELL``: on the ground (Y constant) that is (X, Z), on
    an upright object (Z constant) (X, Y), so cells keep their size in metres and shrink with distance."""
    grid = rng.standard_normal((HARD_TEXTURE_GRID, HARD_TEXTURE_GRID))
    z = depth.astype(np.float64)
    u = (xx - cam.vx) * z / cam.f / HARD_TEXTURE_CELL
    v = ((yy - cam.horizon) * z / cam.f + z) / HARD_TEXTURE_CELL
    u0, v0 = np.floor(u), np.floor(v)
    fu, fv = u - u0, v - v0
    i0, j0 = v0.astype(np.int64) % HARD_TEXTURE_GRID, u0.astype(np.int64) % HARD_TEXTURE_GRID
    i1, j1 = (i0 + 1) % HARD_TEXTURE_GRID, (j0 + 1) % HARD_TEXTURE_GRID
    top = grid[i0, j0] * (1 - fu) + grid[i0, j1] * fu
    bottom = grid[i1, j0] * (1 - fu) + grid[i1, j1] * fu
    return top * (1 - fv) + bottom * fv


def render_scene_full(rng: np.random.Generator, h: int, w: int, variant: str = "default") -> Scene:
    """:func:`render_scene` with the scene's description (camera, surfaces): same draws, same arrays."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown synthetic variant {variant!r}; choose from {', '.join(VARIANTS)}")
    hard = variant == "hard"
    if hard:
        cam = _hard_camera(rng, h, w)
    else:
        cam = Camera(horizon=rng.uniform(0.3, 0.55) * h, vx=rng.uniform(0.35, 0.65) * w, f=float(w))
    road_half, road_offset = rng.uniform(3.0, 8.0), rng.uniform(-3.0, 3.0)
    objects = _buildings(rng, cam, w) + _trees(rng, road_half) + _vehicles(rng, road_half, road_offset)
    objects += _people(rng, road_half, road_offset)
    illumination = rng.uniform(0.7, 1.25)

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    cell = max(2.0, w / 20)
    grid = _noise_grid(rng, h, w, cell)
    noise = _upsample_grid(grid, h, w, cell)
    canvas, (sky, verge, road) = _ground(rng, cam, yy, xx, road_half, road_offset)
    painted = tuple(
        _paint_object(canvas, obj, cam, yy, xx, noise, rng, instance)
        for instance, obj in enumerate(sorted(objects, key=lambda o: -o.z), start=1)  # painter's: far first
    )
    fine = rng.standard_normal((h, w))
    # The hard variant's texture is drawn last, after every draw the default world makes.
    texture = world_texture(rng, cam, canvas.depth, yy, xx) if hard else noise
    image = _colour(canvas, illumination, texture, fine)
    return Scene(
        image, canvas.seg, canvas.depth, cam, road_half, road_offset, illumination, grid, cell, fine,
        sky, verge, road, painted, canvas.instances, variant,
    )  # fmt: skip


def _sky_lum(base: float, cam: Camera, yy: np.ndarray) -> np.ndarray:
    return base * (0.85 + 0.25 * np.clip(yy / cam.horizon, 0, 1))  # brighter at the horizon


def _road_mask(cam: Camera, yy, xx, road_half: float, road_offset: float) -> np.ndarray:
    below = yy - cam.horizon
    scale = np.maximum(below, 0) / cam.height  # pixels per metre on the ground at this row
    return (below > 0) & (np.abs(xx - cam.vx - road_offset * scale) <= road_half * scale)


def _ground(
    rng, cam: Camera, yy, xx, road_half: float, road_offset: float
) -> tuple[_Canvas, tuple[_Surface, _Surface, _Surface]]:
    h, w = yy.shape
    below = yy - cam.horizon
    ground_depth = np.where(below > 0, cam.f * cam.height / np.maximum(below, 1e-3), FAR).clip(max=FAR)
    sky_base = rng.uniform(*_LUM[SKY])
    canvas = _Canvas(
        seg=np.full((h, w), SKY, np.uint8),
        depth=np.full((h, w), FAR, np.float32),
        lum=np.zeros((h, w), np.float32),
        hue=np.zeros((h, w), np.float32),
        chroma=np.zeros((h, w), np.float32),
        instances=np.zeros((h, w), np.int32),
    )
    sky = _Surface(
        sky_base, *canvas.paint(FULL, np.ones((h, w), bool), SKY, FAR, _sky_lum(sky_base, cam, yy), rng)
    )
    verge_lum = rng.uniform(*_LUM[VEGETATION])
    verge = _Surface(verge_lum, *canvas.paint(FULL, below > 0, VEGETATION, ground_depth, verge_lum, rng))
    road = _road_mask(cam, yy, xx, road_half, road_offset)
    road_lum = rng.uniform(*_LUM[ROAD])
    road_surface = _Surface(road_lum, *canvas.paint(FULL, road, ROAD, ground_depth, road_lum, rng))
    return canvas, (sky, verge, road_surface)


def _buildings(rng, cam: Camera, w: int) -> list[_Object]:
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


def _object_box(obj: _Object, cam: Camera) -> tuple[float, float, float, float]:
    """(top, bottom, left, right) image bounds around the object, with margin for the tree crown's noise: the
    shapes stay inside, so the box only saves work."""
    base, xc = cam.row(obj.z), cam.col(obj.x, obj.z)
    half_w, hgt = obj.width * cam.f / obj.z / 2, obj.height * cam.f / obj.z
    return base - 1.2 * hgt - 1, base + 2, xc - 1.5 * half_w - 1, xc + 1.5 * half_w + 2


def _object_shape(obj: _Object, cam: Camera, yy, xx, noise, lum: float, window: float):
    """(mask, luminance) of ``obj`` at image points ``yy``, ``xx`` (any shape; ``noise`` sampled there)."""
    z, cls = obj.z, obj.cls
    base, xc = cam.row(z), cam.col(obj.x, z)
    half_w, hgt = obj.width * cam.f / z / 2, obj.height * cam.f / z
    dx, dy = (xx - xc) / max(half_w, 0.5), (yy - (base - hgt / 2)) / max(hgt / 2, 0.5)
    if cls == BUILDING:
        mask = (np.abs(dx) <= 1) & (np.abs(dy) <= 1)
        period = max(2.0, 1.5 * cam.f / z)  # ~1.5 m window grid
        windows = ((xx % period) < period / 2) & ((yy % period) < period / 2)
        lum = lum * np.where(windows, window, 1.0)
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
    return mask, lum


def _paint_object(
    canvas: _Canvas, obj: _Object, cam: Camera, yy, xx, noise, rng, instance: int = 0
) -> _Painted:
    # Work inside the object's bounding box (with margin for tree-crown noise): most objects are small.
    h, w = yy.shape
    box_top, box_bottom, box_left, box_right = _object_box(obj, cam)
    top, bottom = int(max(0, box_top)), int(min(h, box_bottom))
    left, right = int(max(0, box_left)), int(min(w, box_right))
    region = (slice(top, max(top, bottom)), slice(left, max(left, right)))
    lum = rng.uniform(*_LUM[obj.cls])
    window = rng.uniform(0.6, 0.85) if obj.cls == BUILDING else 1.0  # windows darker than the wall
    mask, lum_map = _object_shape(obj, cam, yy[region], xx[region], noise[region], lum, window)
    hue, chroma = canvas.paint(region, mask, obj.cls, np.float32(obj.z), lum_map, rng)
    if canvas.instances is not None:  # no random draw: the image, labels and depth stay bit-identical
        canvas.instances[region][mask] = instance
    return _Painted(obj, _Surface(lum, hue, chroma), window)


def _colour(canvas: _Canvas, illumination: float, noise: np.ndarray, fine: np.ndarray) -> np.ndarray:
    """Luminance varies with instance, texture and illumination; hue/chroma stay characteristic of the class."""
    y = np.clip(canvas.lum * illumination * (1 + 0.12 * noise + 0.04 * fine), 0.02, 0.98)
    chroma = canvas.chroma * 4 * y * (1 - y)  # desaturate towards black and white, as real cameras do
    cb, cr = chroma * np.cos(canvas.hue), chroma * np.sin(canvas.hue)
    rgb = np.stack([y + 1.402 * cr, y - 0.344 * cb - 0.714 * cr, y + 1.772 * cb], axis=-1)
    return np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8)


# --- Analytic keypoints of vehicles and people (spec correspondence-keypoints.md P4) ------------------------

PERSON_KEYPOINTS = ("head_top", "head_centre", "feet", "body_left", "body_right")
VEHICLE_KEYPOINTS = ("left", "right", "roof", "bottom_left", "bottom_right")
KEYPOINT_NAMES: dict[int, tuple[str, ...]] = {PERSON: PERSON_KEYPOINTS, VEHICLE: VEHICLE_KEYPOINTS}
# A silhouette's extreme points lie on its outline, where the pixel holding them is as often outside the mask
# as inside: each is moved this far (px) towards its part's centre (at most half way), so that an unoccluded
# keypoint falls on a pixel its own object painted.
KEYPOINT_INSET = 1.0
_CORNER = 2.0**-0.25  # the superellipse dx^4 + dy^4 = 1 at 45 degrees: the rounded box's corners


@dataclass(frozen=True)
class ObjectKeypoints:
    """One vehicle's or person's keypoints in a rendered scene.

    ``points`` float32 [K, 2] are (row, col) in pixel-index coordinates (pixel p's centre is p, the convention
    of :mod:`pixelwise.methods.correspondence`), one per name of ``names`` (:data:`KEYPOINT_NAMES`), and may
    lie outside the image. ``visible`` [K] says the point is inside the image and the instance map holds
    ``instance`` at the pixel containing it (occluded and off-image points are not, nor, on objects under about
    8 px, points that fall between the pixel centres the silhouette covers). ``box`` is
    the analytic silhouette's extent (top, left, bottom, right) in the same coordinates, pixel edges rather
    than centres (a one-pixel object spans 1 px), unclipped; ``truncated`` says it crosses the image border.
    ``pixels`` counts the pixels the object shows in the instance map.
    """

    instance: int
    cls: int
    names: tuple[str, ...]
    points: np.ndarray
    visible: np.ndarray
    box: tuple[float, float, float, float]
    depth: float
    pixels: int
    truncated: bool

    @property
    def box_size(self) -> tuple[float, float]:
        """(height, width) of ``box`` in pixels (PCK's max(h, w), thesis §2.2)."""
        top, left, bottom, right = self.box
        return bottom - top, right - left


def _person_points(obj: _Object, cam: Camera):
    """(outline points [K, 2], their parts' centres [K, 2], box) of ``_object_shape``'s person, in the
    renderer's continuous coordinates."""
    base, xc = cam.row(obj.z), cam.col(obj.x, obj.z)
    half_w, hgt = max(obj.width * cam.f / obj.z / 2, 0.5), obj.height * cam.f / obj.z
    body_row, body_half = base - 0.42 * hgt, 0.42 * hgt + 0.5  # body ellipse: centre row, vertical semi-axis
    head_row, head_radius = base - 0.91 * hgt, 0.09 * hgt + 0.5
    points = [
        (head_row - head_radius, xc),  # head top
        (head_row, xc),  # head centre
        (body_row + body_half, xc),  # feet: the body's lowest point
        (body_row, xc - half_w),  # body left / right at the body's mid-height (its widest row)
        (body_row, xc + half_w),
    ]
    centres = [(head_row, xc), (head_row, xc), (body_row, xc), (body_row, xc), (body_row, xc)]
    reach = max(half_w, head_radius)
    box = (min(head_row - head_radius, body_row - body_half), xc - reach, body_row + body_half, xc + reach)
    return np.array(points), np.array(centres), box


def _vehicle_points(obj: _Object, cam: Camera):
    """(outline points [K, 2], their parts' centres [K, 2], box) of ``_object_shape``'s vehicle."""
    base, xc = cam.row(obj.z), cam.col(obj.x, obj.z)
    half_w, hgt = obj.width * cam.f / obj.z / 2, obj.height * cam.f / obj.z
    a, b, row = max(half_w, 0.5), max(hgt / 2, 0.5), base - hgt / 2  # semi-axes and centre row, as the mask's
    points = [
        (row, xc - a),  # left / right extremes
        (row, xc + a),
        (row - b, xc),  # roof
        (row + _CORNER * b, xc - _CORNER * a),  # the two lower corners, where the body meets the ground
        (row + _CORNER * b, xc + _CORNER * a),
    ]
    return np.array(points), np.full((5, 2), (row, xc)), (row - b, xc - a, row + b, xc + a)


def _inset(points: np.ndarray, centres: np.ndarray, inset: float) -> np.ndarray:
    """``points`` moved ``inset`` px towards ``centres``, at most half way (a centre itself stays put)."""
    step = centres - points
    length = np.linalg.norm(step, axis=1, keepdims=True)
    move = np.minimum(inset, 0.5 * length) / np.maximum(length, 1e-12)
    return points + step * move


def _keypoints_of(painted: _Painted, instance: int, scene: Scene) -> ObjectKeypoints:
    obj, cam, (h, w) = painted.obj, scene.camera, scene.size
    outline, centres, box = (_person_points if obj.cls == PERSON else _vehicle_points)(obj, cam)
    continuous = _inset(outline, centres, KEYPOINT_INSET)
    # Pixel (i, j) spans [i, i+1) x [j, j+1) in the renderer's continuous coordinates: floor finds it.
    rows, cols = np.floor(continuous[:, 0]).astype(int), np.floor(continuous[:, 1]).astype(int)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    ids = np.zeros(len(rows), np.int64)
    ids[inside] = scene.instances[rows[inside], cols[inside]]
    top, left, bottom, right = box
    return ObjectKeypoints(
        instance=instance,
        cls=obj.cls,
        names=KEYPOINT_NAMES[obj.cls],
        points=(continuous - 0.5).astype(np.float32),  # continuous -> pixel-index coordinates
        visible=ids == instance,
        box=(top - 0.5, left - 0.5, bottom - 0.5, right - 0.5),
        depth=obj.z,
        pixels=int((scene.instances == instance).sum()),
        truncated=top < 0 or left < 0 or bottom > h or right > w,
    )


def object_keypoints(scene: Scene, classes: tuple[int, ...] = (VEHICLE, PERSON)) -> list[ObjectKeypoints]:
    """Analytic keypoints (spec P4) of every object of ``classes`` in ``scene``, in painting order.

    Person: head top, head centre, feet, body left / right at mid-height; vehicle: left / right extremes, roof
    and the two lower (ground-contact) corners. Points come from the shapes ``_object_shape`` paints, moved
    ``KEYPOINT_INSET`` px inwards; visibility is read from ``scene.instances``, so occlusion is exact.
    """
    unknown = sorted(set(classes) - set(KEYPOINT_NAMES))
    if unknown:
        raise ValueError(
            f"no keypoints are defined for classes {unknown}; choose from {sorted(KEYPOINT_NAMES)}"
        )
    if scene.instances is None:
        raise ValueError("this Scene has no instance map; render it with render_scene_full")
    return [
        _keypoints_of(painted, instance, scene)
        for instance, painted in enumerate(scene.objects, start=1)
        if painted.obj.cls in classes
    ]


# --- A second frame after an ego-motion, and the exact flow between the two ---------------------------------


def _pixel_centres(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return yy + 0.5, xx + 0.5


def ego_project(
    depth: np.ndarray, camera: Camera, motion: EgoMotion
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each pixel's static scene point appears after ``motion``: (row, col, depth) in the second camera,
    float64 [h,w]. Pixels with depth >= ``FAR`` are directions at infinity (their depth stays ``inf``)."""
    yy, xx = _pixel_centres(*depth.shape)
    ray_x, ray_y = (xx - camera.vx) / camera.f, (yy - camera.horizon) / camera.f
    z = depth.astype(np.float64)
    finite = z < FAR
    cx, cy, cz = motion.centre
    # First-camera point minus the second camera's centre (a direction, unscaled, at infinity) ...
    px = np.where(finite, z * ray_x - cx, ray_x)
    py = np.where(finite, z * ray_y - cy, ray_y)
    pz = np.where(finite, z - cz, 1.0)
    # ... turned into the second camera's axes: R^T p, R = yaw about the y axis (camera z -> (sin, 0, cos)).
    cos, sin = math.cos(motion.yaw), math.sin(motion.yaw)
    qx, qz = cos * px - sin * pz, sin * px + cos * pz
    with np.errstate(divide="ignore", invalid="ignore"):
        row, col = camera.horizon + camera.f * py / qz, camera.vx + camera.f * qx / qz
    return row, col, np.where(finite, qz, np.inf)


def ego_flow(depth: np.ndarray, camera: Camera, motion: EgoMotion) -> np.ndarray:
    """Exact optical flow float32 [2,h,w] = (dx, dy) in pixels, from the frame with ``depth`` (metres, [h,w])
    to the frame after the camera's ``motion``, for a static scene seen by ``camera``.

    The flow of a point is where it projects in the second camera minus where it is; the points that end up
    behind (or nearer than ``MIN_DEPTH`` to) the second camera have no image and get NaN. Points that leave
    the image or become occluded keep their (geometric) flow.
    """
    row, col, z2 = ego_project(depth, camera, motion)
    yy, xx = _pixel_centres(*depth.shape)
    flow = np.stack([col - xx, row - yy]).astype(np.float32)
    flow[:, ~(z2 > MIN_DEPTH)] = np.nan
    return flow


def render_second_frame(scene: Scene, motion: EgoMotion) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scene's static world after the camera's ``motion``: (RGB uint8 [h,w,3], class ids uint8 [h,w],
    depth float32 [h,w] metres, in the second camera), consistent with :func:`ego_flow` of the first frame.

    Ray casting from the second camera: each pixel's ray meets the ground plane, the sky at infinity, and the
    plane of every object (a billboard facing the first camera); the nearest object whose shape covers the hit
    point wins, over the ground or sky (the first frame's painter's order, per pixel). The hit point's
    first-frame projection gives its texture coordinates, so each surface keeps its texture (the first
    frame's, and the same rules beyond its borders). With no motion this repaints the first frame exactly.
    """
    if scene.variant != "default":
        raise ValueError("render_second_frame is defined for the default synthetic world only")
    h, w = scene.size
    cam = scene.camera
    yy, xx = _pixel_centres(h, w)
    cos, sin = math.cos(motion.yaw), math.sin(motion.yaw)
    dx2, dy2 = (xx - cam.vx) / cam.f, (yy - cam.horizon) / cam.f
    # The ray (second-camera direction (dx2, dy2, 1)) in first-camera axes: R d.
    rx, ry, rz = cos * dx2 + sin, dy2, cos - sin * dx2
    cx, cy, cz = motion.centre

    # Backdrop: the ground plane y = CAMERA_HEIGHT where the ray goes down, else the sky at infinity.
    with np.errstate(divide="ignore"):
        t = np.where(ry > 0, (CAMERA_HEIGHT - cy) / ry, np.inf)
    near = t < FAR  # ground beyond FAR is drawn at infinity, like the first frame's clipped ground
    gx, gy, gz = cx + t * rx, cy + t * ry, cz + t * rz
    with np.errstate(divide="ignore", invalid="ignore"):
        src_y = np.where(near, cam.horizon + cam.f * gy / gz, cam.horizon + cam.f * ry / rz)
        src_x = np.where(near, cam.vx + cam.f * gx / gz, cam.vx + cam.f * rx / rz)
    src_y, src_x = src_y.astype(np.float32), src_x.astype(np.float32)  # the first frame's precision
    depth = np.where(near, t, FAR).astype(np.float32)
    seg, lum, hue, chroma = _backdrop(scene, src_y, src_x)

    nearest = np.full((h, w), np.inf)
    for painted in scene.objects:  # far first, so that ties go to the later one, as painting does
        obj = painted.obj
        with np.errstate(divide="ignore"):
            t_obj = np.where(rz > 0, (obj.z - cz) / rz, -1.0)  # the ray meets the plane z = obj.z
        oy = (cam.horizon + cam.f * (cy + t_obj * ry) / obj.z).astype(np.float32)
        ox = (cam.vx + cam.f * (cx + t_obj * rx) / obj.z).astype(np.float32)
        top, bottom, left, right = _object_box(obj, cam)
        in_box = (oy >= top) & (oy < bottom) & (ox >= left) & (ox < right)
        cand = (t_obj > MIN_DEPTH) & (t_obj <= nearest) & in_box
        if not cand.any():
            continue
        sy, sx = oy[cand], ox[cand]
        noise = _noise_at(scene.noise_grid, scene.noise_cell, sy, sx)
        mask, obj_lum = _object_shape(obj, cam, sy, sx, noise, painted.surface.lum, painted.window)
        hit = np.zeros((h, w), bool)
        hit[cand] = mask
        seg[hit], depth[hit], nearest[hit] = obj.cls, t_obj[hit], t_obj[hit]
        lum[hit] = obj_lum if np.isscalar(obj_lum) else obj_lum[mask]
        hue[hit], chroma[hit] = painted.surface.hue, painted.surface.chroma
        src_y[hit], src_x[hit] = oy[hit], ox[hit]

    noise = _noise_at(scene.noise_grid, scene.noise_cell, src_y, src_x)
    rows = np.clip(np.floor(src_y), 0, h - 1).astype(int)
    cols = np.clip(np.floor(src_x), 0, w - 1).astype(int)
    fine = scene.fine[rows, cols]  # white noise: the nearest first-frame pixel's draw
    canvas = _Canvas(seg, depth, lum, hue, chroma)
    return _colour(canvas, scene.illumination, noise, fine), seg, depth


def _backdrop(scene: Scene, src_y: np.ndarray, src_x: np.ndarray):
    """(seg, lum, hue, chroma) of the sky / verge / road at first-frame points, by the first frame's rules."""
    cam = scene.camera
    ground = (src_y - cam.horizon) > 0
    road = _road_mask(cam, src_y, src_x, scene.road_half, scene.road_offset)
    seg = np.where(road, ROAD, np.where(ground, VEGETATION, SKY)).astype(np.uint8)
    lum = np.where(ground, scene.verge.lum, _sky_lum(scene.sky.lum, cam, src_y)).astype(np.float32)
    lum[road] = scene.road.lum
    hue = np.zeros(src_y.shape, np.float32)
    chroma = np.zeros(src_y.shape, np.float32)
    for cls, surface in ((SKY, scene.sky), (VEGETATION, scene.verge), (ROAD, scene.road)):
        hue[seg == cls], chroma[seg == cls] = surface.hue, surface.chroma
    return seg, lum, hue, chroma
