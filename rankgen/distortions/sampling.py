"""Sparse sampling and reconstruction (TID2013 #24)."""

from __future__ import annotations

import cv2
import numpy as np

from .base import DISTORTIONS, from_255, require

# Gaussian width of the reconstruction, in units of the mean sample spacing 1 / sqrt(share).
SPREAD = 0.6


def _gaussian(values: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(values, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _reflect(index: np.ndarray, length: int) -> np.ndarray:
    """OpenCV's BORDER_REFLECT (fedcba|abcdef|fedcba) for any offset: periodic with period 2 length."""
    index = np.mod(index, 2 * length)
    return np.where(index < length, index, 2 * length - 1 - index)


def _gaussian_at(values: np.ndarray, sigma: float, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """_gaussian(values, sigma) at the pixels (ys, xs) alone: the same taps and border, in float64."""
    # OpenCV's kernel size for a float image and sigma alone.
    ksize = int(round(sigma * 8 + 1)) | 1
    taps = cv2.getGaussianKernel(ksize, sigma, cv2.CV_64F).ravel()
    offsets = np.arange(ksize) - ksize // 2
    rows = _reflect(ys[:, None] + offsets, values.shape[0])
    cols = _reflect(xs[:, None] + offsets, values.shape[1])
    window = values[rows[:, :, None], cols[:, None, :]].astype(np.float64)
    return np.einsum("pij...,i,j->p...", window, taps, taps)


@DISTORTIONS.register("sparse_sampling", aliases=("tid24",), tid=24, family="compression", metric="psnr", random=True,
                      kernel=3)
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
    den = _gaussian(weights, sigma)
    rebuilt = cv2.divide(_gaussian(values, sigma), cv2.merge([den, den, den]))
    # About 1 pixel in 10^4 has no sample within reach, whatever the share. The wide Gaussian is
    # computed at those pixels alone (kernel 3; before, over the whole image: half the time at the
    # smaller shares), in float64 instead of float32, so their bytes may differ on a rounding tie.
    ys, xs = np.nonzero((den < 1e-3) & ~kept)
    if ys.size:
        wide_den = _gaussian_at(weights, 4 * sigma, ys, xs)
        wide_num = _gaussian_at(values, 4 * sigma, ys, xs)
        reached = wide_den >= 1e-3
        mean = np.array(cv2.sumElems(image)[:3]) / (image.shape[0] * image.shape[1])
        rebuilt[ys, xs] = np.where(reached[:, None], wide_num / np.where(reached, wide_den, 1)[:, None], mean)
    out = from_255(rebuilt)
    cv2.copyTo(image, kept_mask, out)
    return out
