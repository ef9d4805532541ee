"""Full-reference measures f(reference, distorted) -> float, higher = closer to the reference.

Each distortion names the one in which its quality strictly decreases with its parameter; tests
and previews check the levels of a corpus against it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import RankgenError
from .base import to_unit
from .colourspace import rgb_to_ycbcr


def psnr(reference: np.ndarray, distorted: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over all samples (inf for identical images)."""
    mse = np.mean((reference.astype(np.float64) - distorted.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def mean_abs_shift(reference: np.ndarray, distorted: np.ndarray) -> float:
    """Minus the change of mean intensity, in grey levels: a brightness shift moves only the mean."""
    return -abs(float(distorted.astype(np.float64).mean() - reference.astype(np.float64).mean()))


def saturation(reference: np.ndarray, distorted: np.ndarray) -> float:
    """Minus the mean Cb/Cr distance to the reference, in grey levels: luma changes are ignored.

    A chroma gain of k moves each pixel's chroma by |1 - k| times its distance from neutral, so this
    falls with every step of the official series 0.4, 0, -0.4, -0.8 even where saturation itself
    (|k| = 0.4, 0, 0.4, 0.8) does not.
    """
    chroma_r = rgb_to_ycbcr(to_unit(reference))[:, :, 1:]
    chroma_d = rgb_to_ycbcr(to_unit(distorted))[:, :, 1:]
    return -255 * float(np.mean(np.linalg.norm(chroma_d - chroma_r, axis=2)))


def intact_area(reference: np.ndarray, distorted: np.ndarray) -> float:
    """The share of pixels left exactly as they were: the measure of local, patch-wise distortions."""
    return float(np.mean(np.all(reference == distorted, axis=2)))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "psnr": psnr,
    "mean_abs_shift": mean_abs_shift,
    "saturation": saturation,
    "intact_area": intact_area,
}


def metric(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    if name not in METRICS:
        raise RankgenError(f"unknown quality measure {name!r}; known: {', '.join(sorted(METRICS))}")
    return METRICS[name]
