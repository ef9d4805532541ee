"""Sparse sampling and reconstruction (TID2013 #24)."""

from __future__ import annotations

import cv2
import numpy as np

from .base import DISTORTIONS, from_255, require

# Gaussian width of the reconstruction, in units of the mean sample spacing 1 / sqrt(share).
SPREAD = 0.6


def _gaussian(values: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(values, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


WINDOW_BATCH = 64
# Gathered windows cost as much as OpenCV's separable pass over a 512x384 image when pixels x ksize
# x 45 is its pixel count (measured: 34 ms against 33 at share 0.04, 16 against 30 at 0.05, 58
# against 38 at 0.03).
WINDOW_COST = 45


def _reflect(index: np.ndarray, length: int) -> np.ndarray:
    """OpenCV's BORDER_REFLECT (fedcba|abcdef|fedcba) for any offset: periodic with period 2 length."""
    index = np.mod(index, 2 * length)
    return np.where(index < length, index, 2 * length - 1 - index)


def _ksize(sigma: float) -> int:
    """OpenCV's Gaussian kernel size for a float image and sigma alone."""
    return int(round(sigma * 8 + 1)) | 1


def _gaussian_at(values: np.ndarray, sigma: float, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """_gaussian(values, sigma) at the pixels (ys, xs) alone: the same taps and border, in float64."""
    ksize = _ksize(sigma)
    taps = cv2.getGaussianKernel(ksize, sigma, cv2.CV_32F).ravel().astype(np.float64)
    offsets = np.arange(ksize) - ksize // 2
    sums = []
    # WINDOW_BATCH pixels at a time: their ksize^2 x 3 windows in float64 are 10 MB at ksize 79 (share 0.06).
    for start in range(0, ys.size, WINDOW_BATCH):
        rows = _reflect(ys[start : start + WINDOW_BATCH, None] + offsets, values.shape[0])
        cols = _reflect(xs[start : start + WINDOW_BATCH, None] + offsets, values.shape[1])
        window = values[rows[:, :, None], cols[:, None, :]].astype(np.float64)
        sums.append(np.einsum("pij...,i,j->p...", window, taps, taps))
    return np.concatenate(sums)


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
    # Few pixels have no sample within reach (15 of 512x384 at the recipes' smallest share, 0.06). The
    # wide Gaussian is summed at those pixels alone (kernel 3; before, over the whole image, which
    # doubled the time), in float64 instead of float32, so their bytes may differ on a rounding tie.
    # Windows of ksize^2 taps, gathered by numpy, cost more than OpenCV's separable pass over the image
    # once pixels x ksize x WINDOW_COST pass its pixel count (shares below about 0.04 at 512x384, under
    # the recipes' 0.06): then the whole image is filtered, as in kernel 1.
    ys, xs = np.nonzero((den < 1e-3) & ~kept)
    if ys.size:
        wide = 4 * sigma
        if ys.size * _ksize(wide) * WINDOW_COST <= image.shape[0] * image.shape[1]:
            wide_den, wide_num = _gaussian_at(weights, wide, ys, xs), _gaussian_at(values, wide, ys, xs)
        else:
            wide_den, wide_num = _gaussian(weights, wide)[ys, xs], _gaussian(values, wide)[ys, xs]
        reached = wide_den >= 1e-3
        mean = np.array(cv2.sumElems(image)[:3]) / (image.shape[0] * image.shape[1])
        rebuilt[ys, xs] = np.where(reached[:, None], wide_num / np.where(reached, wide_den, 1)[:, None], mean)
    out = from_255(rebuilt)
    cv2.copyTo(image, kept_mask, out)
    return out
