"""Algorithm 2 of the paper (section 5.2): nested square crops whose person counts cannot increase.

Coordinates: pixel (row i, column j) covers [j, j+1) x [i, i+1), so an image of width W and height
H spans [0, W] x [0, H] and its centre is (W/2, H/2). A box is (x0, y0, x1, y1), half-open.

Everything here is deterministic maths on numbers the caller passes in (the generator included),
so any crop set can be replayed from its stored seed and checked without touching pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import RankgenError

# Below this a patch carries too little signal to be worth a training example, whatever --size is.
MIN_PATCH = 8


def validate(k: int, s: float, r: float, size: int) -> None:
    """Raise RankgenError naming the argument when a crop parameter is out of range."""
    if not (isinstance(k, (int, np.integer)) and k >= 2):
        raise RankgenError(f"--k must be an integer >= 2 (patches per crop set), got {k!r}")
    if not (0.0 < s < 1.0):
        raise RankgenError(f"--s must satisfy 0 < s < 1 (each patch's side is s times the previous one), got {s!r}")
    if not (r >= 1.0):
        raise RankgenError(f"--r must be >= 1 (the anchor region's sides are W/r and H/r), got {r!r}")
    if not (isinstance(size, (int, np.integer)) and size >= MIN_PATCH):
        raise RankgenError(f"--size must be an integer >= {MIN_PATCH} (patch side in pixels after resizing), got {size!r}")


def anchor_region(width: float, height: float, r: float) -> tuple[float, float, float, float]:
    """The box of sides W/r and H/r centred on the image: r divides the sides, not the area."""
    cx, cy = width / 2.0, height / 2.0
    hw, hh = width / (2.0 * r), height / (2.0 * r)
    return (cx - hw, cy - hh, cx + hw, cy + hh)


def draw_anchor(width: float, height: float, r: float, rng: np.random.Generator) -> tuple[float, float]:
    x0, y0, x1, y1 = anchor_region(width, height, r)
    return float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1))


def square_boxes(width: float, height: float, anchor: tuple[float, float], k: int, s: float) -> np.ndarray:
    """(k, 4) float boxes: the largest square centred at the anchor inside the image, then k-1 more,
    each side s times the previous one, same centre."""
    ax, ay = anchor
    half = min(ax, width - ax, ay, height - ay)
    halves = half * s ** np.arange(k, dtype=np.float64)
    return np.stack([ax - halves, ay - halves, ax + halves, ay + halves], axis=1)


def pixel_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(k, 4) int64 square boxes actually cut: each float box rounded to whole pixels, then clamped
    into its parent, so the integer boxes are nested too (every edge stays within 0.75 px of the
    float box: the rounding error of a side plus that of a position).

    Rounding each box on its own is not enough: two boxes whose edges are close can round apart
    and the smaller one would stick out of the larger by a pixel, breaking the count order.
    """
    out = np.empty((len(boxes), 4), dtype=np.int64)
    lo_x, lo_y, hi_x, hi_y = 0, 0, int(width), int(height)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        n = int(np.floor(x1 - x0 + 0.5))
        n = max(0, min(n, hi_x - lo_x, hi_y - lo_y))
        ix = min(max(int(np.floor(x0 + (x1 - x0 - n) / 2 + 0.5)), lo_x), hi_x - n)
        iy = min(max(int(np.floor(y0 + (y1 - y0 - n) / 2 + 0.5)), lo_y), hi_y - n)
        out[i] = (ix, iy, ix + n, iy + n)
        lo_x, lo_y, hi_x, hi_y = ix, iy, ix + n, iy + n
    return out


@dataclass(frozen=True)
class CropSet:
    anchor: tuple[float, float]
    boxes: np.ndarray    # (k, 4) float64, largest first
    iboxes: np.ndarray   # (k, 4) int64, the pixels cut, nested, largest first

    @property
    def smallest_side(self) -> int:
        return int(self.iboxes[-1, 2] - self.iboxes[-1, 0])


def crop_set(width: int, height: int, k: int, s: float, r: float, rng: np.random.Generator) -> CropSet:
    anchor = draw_anchor(width, height, r, rng)
    boxes = square_boxes(width, height, anchor, k, s)
    return CropSet(anchor, boxes, pixel_boxes(boxes, width, height))


def best_smallest_side(width: int, height: int, k: int, s: float) -> float:
    """The smallest patch's side when the anchor is the image centre (the most any anchor allows)."""
    return min(width, height) * s ** (k - 1)


def worst_smallest_side(width: int, height: int, k: int, s: float, r: float) -> float:
    """The smallest patch's side for the anchor at a corner of the anchor region (the least)."""
    return min(width, height) * (1.0 - 1.0 / r) * s ** (k - 1)


def cut(image: np.ndarray, ibox, size: int) -> np.ndarray:
    """The pixels of an integer box resized to size x size: INTER_AREA when shrinking (it averages,
    so no aliasing), INTER_LINEAR when enlarging (no overshoot or ringing, unlike cubic)."""
    x0, y0, x1, y1 = (int(v) for v in ibox)
    patch = image[y0:y1, x0:x1]
    n = x1 - x0
    if n == size:
        return np.ascontiguousarray(patch)
    interpolation = cv2.INTER_AREA if n > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interpolation)


def points_in_boxes(points: np.ndarray, iboxes: np.ndarray) -> np.ndarray:
    """(k,) how many (x, y) points fall in each half-open box: the true count of every patch."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(iboxes, dtype=np.float64)[:, None, :]
    x, y = pts[None, :, 0], pts[None, :, 1]
    inside = (x >= b[..., 0]) & (x < b[..., 2]) & (y >= b[..., 1]) & (y < b[..., 3])
    return inside.sum(axis=1).astype(np.int64)
