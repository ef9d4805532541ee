"""Head points -> crowd density maps that sum to the count (paper, section 5.1).

Points are (x, y) in the pixel convention of rankgen.crowd.crops: pixel (i, j) covers [j, j+1) x [i, i+1).
Each head gets a Gaussian sampled at pixel centres, cut at 3 sigma and at the image border, then
renormalised to sum to 1: a head near the border keeps its whole mass inside the image, so the map
of any image sums to its count.
"""

from __future__ import annotations

import cv2
import numpy as np

SIGMA = 15.0          # the paper's fixed kernel (px)
ADAPTIVE_BETA = 0.3   # geometry-adaptive kernels: sigma = beta * mean distance to the 3 nearest heads
ADAPTIVE_K = 3
ADAPTIVE_MIN = 1.0    # duplicated points would otherwise give a zero-width kernel
ADAPTIVE_MAX = 4 * SIGMA  # an isolated head would otherwise spread over the whole image
TRUNCATE = 3.0


def clean_points(points, width: int, height: int) -> tuple[np.ndarray, int]:
    """(points inside [0, W) x [0, H) as float64 (N, 2), number dropped): annotation tools
    sometimes put a click just outside the frame, and such a head belongs to no pixel."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    ok = np.isfinite(pts).all(axis=1) & (pts[:, 0] >= 0) & (pts[:, 0] < width) & (pts[:, 1] >= 0) & (pts[:, 1] < height)
    return pts[ok], int((~ok).sum())


def adaptive_sigmas(points: np.ndarray, fallback: float = SIGMA) -> np.ndarray:
    """Per-head sigma = beta * mean distance to the k=3 nearest other heads, clipped to
    [ADAPTIVE_MIN, ADAPTIVE_MAX]; a lone head gets `fallback`."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    n = len(pts)
    if n < 2:
        return np.full(n, float(fallback))
    from scipy.spatial import cKDTree

    k = min(ADAPTIVE_K, n - 1)
    dist, _ = cKDTree(pts).query(pts, k=k + 1)
    sig = ADAPTIVE_BETA * dist[:, 1:].mean(axis=1)
    return np.clip(sig, ADAPTIVE_MIN, ADAPTIVE_MAX)


def _kernel_1d(center: float, sigma: float, n: int) -> tuple[int, np.ndarray]:
    radius = int(np.ceil(TRUNCATE * sigma))
    c = int(np.floor(center))
    lo, hi = max(0, c - radius), min(n, c + radius + 1)
    x = np.arange(lo, hi, dtype=np.float64) + 0.5 - center
    return lo, np.exp(-0.5 * (x / sigma) ** 2)


def density_map(points, height: int, width: int, sigma: float | str = SIGMA) -> np.ndarray:
    """(H, W) float32 map; sigma is a number of pixels or "adaptive". Sums to len(points) (points
    must lie in the image: see clean_points)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    sigmas = adaptive_sigmas(pts) if sigma == "adaptive" else np.full(len(pts), float(sigma))
    out = np.zeros((height, width), dtype=np.float64)
    for (x, y), sg in zip(pts, sigmas):
        # The 2-D Gaussian is separable, so normalising each 1-D factor normalises the product.
        x0, gx = _kernel_1d(x, sg, width)
        y0, gy = _kernel_1d(y, sg, height)
        out[y0 : y0 + len(gy), x0 : x0 + len(gx)] += np.outer(gy / gy.sum(), gx / gx.sum())
    return out.astype(np.float32)


def sum_pool(density: np.ndarray, stride: int) -> np.ndarray:
    """Sum over stride x stride blocks (the last row/column of blocks may be partial), so the total is
    preserved; shape (ceil(H/stride), ceil(W/stride))."""
    if stride == 1:
        return density
    h, w = density.shape
    hp, wp = -(-h // stride) * stride, -(-w // stride) * stride
    padded = np.zeros((hp, wp), dtype=np.float64)
    padded[:h, :w] = density
    pooled = padded.reshape(hp // stride, stride, wp // stride, stride).sum(axis=(1, 3))
    return pooled.astype(density.dtype)


def fit_max_side(image: np.ndarray, points: np.ndarray, max_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Shrink an image whose longer side exceeds max_side (the paper does this for UCF-QNRF),
    scaling the points by the exact per-axis factors of the resized image."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, points
    scale = max_side / max(h, w)
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2) * np.array([nw / w, nh / h])
    # x < w must stay x < nw after rounding of the product, or the head would leave the image.
    return resized, np.minimum(pts, np.nextafter(np.array([nw, nh], dtype=np.float64), 0))
