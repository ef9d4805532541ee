"""Synthetic crowd scenes with every head point known: a labeled counting set that needs no download.

The scene is a ground plane seen in perspective: people stand uniformly on the ground (with some
groups), so in the image they get smaller and denser towards the horizon, as in real crowd photos.
Each person is a body ellipse and a head disc with hair; clutter (poles, trees, boxes and round
head-like distractors) and uneven illumination make counting harder than finding discs.
Everything is drawn from the generator passed in, so a scene is a pure function of its seed.
"""

from __future__ import annotations

import cv2
import numpy as np

SHIFT = 4            # cv2 sub-pixel drawing: coordinates are multiplied by 2**SHIFT
MIN_HEIGHT = 16.0    # shorter people (heads under 2 px) are not drawn: nothing invisible is counted
SKIN = np.array([[255, 219, 172], [241, 194, 125], [224, 172, 105], [198, 134, 66], [141, 85, 36], [100, 60, 30]], float)
HAIR = np.array([[20, 15, 10], [60, 40, 20], [110, 80, 40], [200, 170, 110], [90, 90, 90], [140, 40, 20]], float)
TEXTURES = ("grass", "gravel", "brick")
PHOTOS = ("coffee", "chelsea", "rocket", "astronaut")


def _p(v) -> int:
    return int(round(float(v) * (1 << SHIFT)))


def _hsv_colour(rng, sat=(0.3, 0.9), val=(0.25, 0.95)) -> tuple[float, float, float]:
    hsv = np.uint8([[[rng.integers(0, 180), int(255 * rng.uniform(*sat)), int(255 * rng.uniform(*val))]]])
    return tuple(float(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def _texture(rng, name: str, height: int, width: int) -> np.ndarray:
    import skimage.data

    tex = getattr(skimage.data, name)().astype(np.float32) / 255.0
    reps = (-(-height // tex.shape[0]), -(-width // tex.shape[1]))
    tex = np.tile(tex, reps)[:height, :width]
    return tex[..., None] * np.array(_hsv_colour(rng, (0.1, 0.5), (0.5, 1.0)), np.float32)[None, None]


def _photo(rng, height: int, width: int) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, PHOTOS[rng.integers(len(PHOTOS))])()[..., :3]
    scale = max(height / img.shape[0], width / img.shape[1])
    img = cv2.resize(img, (int(np.ceil(img.shape[1] * scale)), int(np.ceil(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    y0 = rng.integers(0, img.shape[0] - height + 1)
    x0 = rng.integers(0, img.shape[1] - width + 1)
    return cv2.GaussianBlur(img[y0 : y0 + height, x0 : x0 + width].astype(np.float32), (0, 0), 2.0)


def _background(rng, height: int, width: int, horizon: float) -> np.ndarray:
    """Sky (or a blurred photo as a far backdrop) above the horizon, a textured ground below."""
    rows = np.arange(height, dtype=np.float32)[:, None, None]
    if rng.random() < 0.5:
        top, bottom = np.array(_hsv_colour(rng, (0.2, 0.6), (0.6, 1.0)), np.float32), np.array(_hsv_colour(rng, (0.0, 0.3), (0.7, 1.0)), np.float32)
        t = np.clip(rows / max(horizon, 1.0), 0, 1)
        far = np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).copy()
    else:
        far = _photo(rng, height, width)
    ground = _texture(rng, TEXTURES[rng.integers(len(TEXTURES))], height, width)
    ground *= np.float32(rng.uniform(0.5, 1.0))
    blend = np.clip((rows - horizon) / 6.0, 0, 1)
    return far * (1 - blend) + ground * blend


def _clutter(rng, img: np.ndarray, horizon: float, scale_at, n: int) -> None:
    h, w = img.shape[:2]
    for _ in range(n):
        foot = rng.uniform(max(horizon, 0) + 2, h * 1.1)
        size = scale_at(foot)
        if size < MIN_HEIGHT:
            continue
        x = rng.uniform(-0.05 * w, 1.05 * w)
        colour = _hsv_colour(rng, (0.0, 0.8), (0.1, 0.9))
        kind = rng.integers(4)
        if kind == 0:  # pole or lamp post, taller than people
            tall = size * rng.uniform(1.5, 3.0)
            cv2.rectangle(img, (_p(x - 0.03 * size), _p(foot - tall)), (_p(x + 0.03 * size), _p(foot)), colour, -1, cv2.LINE_AA, SHIFT)
        elif kind == 1:  # tree: trunk and a round crown
            cv2.rectangle(img, (_p(x - 0.05 * size), _p(foot - size)), (_p(x + 0.05 * size), _p(foot)), (80, 55, 30), -1, cv2.LINE_AA, SHIFT)
            cv2.circle(img, (_p(x), _p(foot - 1.3 * size)), _p(0.5 * size), _hsv_colour(rng, (0.4, 0.9), (0.2, 0.6)), -1, cv2.LINE_AA, SHIFT)
        elif kind == 2:  # box, bench or car-like block
            bw, bh = size * rng.uniform(0.5, 2.0), size * rng.uniform(0.2, 0.6)
            cv2.rectangle(img, (_p(x - bw / 2), _p(foot - bh)), (_p(x + bw / 2), _p(foot)), colour, -1, cv2.LINE_AA, SHIFT)
        else:  # balloon or ball: a head-sized disc that is not a head
            cv2.circle(img, (_p(x), _p(foot - size * rng.uniform(0.3, 1.5))), _p(0.07 * size), colour, -1, cv2.LINE_AA, SHIFT)


def _person(rng, img: np.ndarray, x: float, foot: float, height: float) -> tuple[float, float]:
    head_r = 0.065 * height
    head_y = foot - height + head_r
    body = _hsv_colour(rng)
    cv2.ellipse(img, (_p(x), _p(foot - 0.42 * height)), (_p(0.13 * height), _p(0.42 * height)), 0, 0, 360, body, -1, cv2.LINE_AA, SHIFT)
    skin = tuple(float(c) for c in SKIN[rng.integers(len(SKIN))] * rng.uniform(0.8, 1.05))
    cv2.circle(img, (_p(x), _p(head_y)), _p(head_r), skin, -1, cv2.LINE_AA, SHIFT)
    if rng.random() < 0.85:  # hair or a hat covers the top of most heads
        hair = tuple(float(c) for c in HAIR[rng.integers(len(HAIR))])
        cv2.ellipse(img, (_p(x), _p(head_y)), (_p(head_r * 1.05), _p(head_r * 1.05)), 0, 180, 360, hair, -1, cv2.LINE_AA, SHIFT)
    return x, head_y


def _illumination(rng, img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xx / w - 0.5, yy / h - 0.5
    gain = rng.uniform(0.6, 1.2) * (1 + rng.uniform(-0.5, 0.5) * u + rng.uniform(-0.5, 0.5) * v)
    gain *= 1 - rng.uniform(0.0, 0.6) * (u**2 + v**2)  # vignetting
    if rng.random() < 0.5:  # a soft diagonal shadow across part of the scene
        a = rng.uniform(0, 2 * np.pi)
        edge = np.cos(a) * u + np.sin(a) * v - rng.uniform(-0.3, 0.3)
        gain *= 1 - rng.uniform(0.2, 0.5) * (1 / (1 + np.exp(-edge * 40)))
    out = img * gain[..., None] * np.array(rng.uniform(0.85, 1.15, 3), np.float32)  # colour cast
    out = 255.0 * (np.clip(out, 0, 255) / 255.0) ** rng.uniform(0.8, 1.25)
    out += rng.normal(0, rng.uniform(1, 4), out.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def render_scene(rng: np.random.Generator, height: int = 384, width: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(H x W x 3 uint8 image, (N, 2) float64 head centres (x, y) inside the image)."""
    horizon = rng.uniform(-0.2, 0.3) * height
    tallest = rng.uniform(0.25, 0.55) * height  # a person whose feet are at the bottom row
    slope = tallest / (height - horizon)

    def scale_at(foot):
        return slope * (foot - horizon)

    img = _background(rng, height, width, horizon).astype(np.float32)
    _clutter(rng, img, horizon, scale_at, int(rng.integers(3, 15)))

    # Uniform on the ground plane means an image density proportional to 1 / height**2, i.e.
    # pdf(d) ~ d**-2 for the distance d below the horizon: inverse-CDF sampling below.
    d0, d1 = MIN_HEIGHT / slope, height * 1.15 - horizon
    n = int(np.exp(rng.uniform(np.log(30), np.log(1000))))
    d = 1.0 / (1.0 / d0 - rng.random(n) * (1.0 / d0 - 1.0 / d1))
    x = rng.uniform(-0.05 * width, 1.05 * width, n)
    n_groups = int(rng.integers(0, 6))
    if n_groups:  # people cluster: move a share of them next to a few group centres
        members = rng.random(n) < rng.uniform(0.2, 0.6)
        g = rng.integers(n_groups, size=n)
        gd, gx = d[rng.integers(n, size=n_groups)], rng.uniform(0, width, n_groups)
        spread = slope * gd[g]
        x = np.where(members, gx[g] + rng.normal(0, 1.0, n) * spread, x)
        d = np.where(members, np.clip(gd[g] + rng.normal(0, 0.15, n) * gd[g], d0, d1), d)
    foot = horizon + d

    heads = []
    for i in np.argsort(foot, kind="stable"):  # far to near: near people occlude far ones
        heads.append(_person(rng, img, x[i], foot[i], scale_at(foot[i])))
    _clutter(rng, img, horizon, scale_at, int(rng.integers(0, 4)))

    # cv2 puts pixel centres at integers; rankgen at half-integers (pixel j covers [j, j+1)).
    heads = np.array(heads, dtype=np.float64).reshape(-1, 2) + 0.5
    inside = (heads[:, 0] >= 0) & (heads[:, 0] < width) & (heads[:, 1] >= 0) & (heads[:, 1] < height)
    return _illumination(rng, img), heads[inside]
