"""Sparse sampling and reconstruction (TID2013 #24)."""

from __future__ import annotations

import cv2
import numpy as np

from .base import DISTORTIONS, from_255, require

# Gaussian width of the reconstruction, in units of the mean sample spacing 1 / sqrt(share).
SPREAD = 0.6


def _gaussian(values: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(values, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


@DISTORTIONS.register("sparse_sampling", aliases=("tid24",), tid=24, family="compression", metric="psnr", random=True)
def sparse_sampling(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Keep a random share `param` of the pixels, rebuild the rest by normalised convolution.

    out = G * (m x) / G * m on missing pixels, kept pixels exact; G is a Gaussian of sigma
    0.6 / sqrt(param), the sample spacing. Where no sample lies within reach (den < 1e-3) a
    Gaussian four times wider fills in.
    """
    require(0 < param < 1, "sparse_sampling", f"share of kept pixels must be in (0, 1), got {param}")
    kept = (rng.random(image.shape[:2]) < param).astype(np.float32)
    values = image.astype(np.float32) * kept[:, :, None]
    sigma = SPREAD / np.sqrt(param)
    rebuilt = np.empty_like(values)
    missing = np.ones(image.shape[:2], dtype=bool)
    for scale in (1, 4):
        den = _gaussian(kept, scale * sigma)
        num = _gaussian(values, scale * sigma)
        fill = missing & (den >= 1e-3)
        # Element-wise the same division as on the filled pixels alone, without gathering them.
        np.divide(num, den[:, :, None], out=rebuilt, where=fill[:, :, None])
        missing &= ~fill
        if not missing.any():
            break
    else:
        rebuilt[missing] = np.array(cv2.sumElems(image)[:3]) / (image.shape[0] * image.shape[1])
    out = from_255(rebuilt)
    np.copyto(out, image, where=kept[:, :, None] > 0)
    return out
