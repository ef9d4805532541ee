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
    kept = rng.random(image.shape[:2]) < param
    # One-channel masks for OpenCV's masked copies: numpy's broadcast over 3 channels costs 10x more.
    kept_mask = kept.view(np.uint8)
    weights = kept.astype(np.float32)
    values = cv2.bitwise_and(image, image, mask=kept_mask).astype(np.float32)
    sigma = SPREAD / np.sqrt(param)
    rebuilt = None
    missing = np.ones(image.shape[:2], dtype=bool)
    for scale in (1, 4):
        den = _gaussian(weights, scale * sigma)
        num = _gaussian(values, scale * sigma)
        fill = missing & (den >= 1e-3)
        # The same IEEE division everywhere; pixels it does not fill are overwritten below.
        quotient = cv2.divide(num, cv2.merge([den, den, den]))
        if rebuilt is None:
            rebuilt = quotient
        else:
            cv2.copyTo(quotient, fill.view(np.uint8), rebuilt)
        missing &= ~fill
        if not missing.any():
            break
    else:
        rebuilt[missing] = np.array(cv2.sumElems(image)[:3]) / (image.shape[0] * image.shape[1])
    out = from_255(rebuilt)
    cv2.copyTo(image, kept_mask, out)
    return out
