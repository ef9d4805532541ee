"""Additive, impulse and multiplicative noise (TID2013 #01, #02, #05, #06, #19).

Variances follow MATLAB's imnoise: they are on images scaled to [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np
import scipy.fft

from .base import DISTORTIONS, add_rounded, normal, require
from .colourspace import ycbcr_noise_in_rgb

# The official high-pass radius is 10 frequency samples on TID2013's 512-pixel-wide images; as a
# frequency in cycles per pixel the filter has the same shape at every image size.
HIGH_PASS_CUTOFF = 10 / 512


@DISTORTIONS.register(
    "gaussian_noise", aliases=("tid01",), tid=1, family="noise", metric="psnr", random=True, kernel=4
)
def gaussian_noise(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """imnoise(img, 'gaussian', 0, param): white noise of variance `param`, independent per channel."""
    require(param > 0, "gaussian_noise", f"variance must be > 0, got {param}")
    # Noise in grey levels: x + 255 n is 255 (x / 255 + n), the [0, 1] formula, in one rounding.
    return add_rounded(image, normal(rng, image.shape, 255 * np.sqrt(param)))


@DISTORTIONS.register(
    "color_noise", aliases=("tid02",), tid=2, family="noise", metric="psnr", random=True, kernel=4
)
def color_noise(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """White noise of variance `param` added to Y, Cb and Cr, then back to RGB."""
    require(param > 0, "color_noise", f"variance must be > 0, got {param}")
    return add_rounded(image, ycbcr_noise_in_rgb(normal(rng, image.shape, 255 * np.sqrt(param))))


def _high_pass(shape: tuple[int, int]) -> np.ndarray:
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    return (1.0 - np.exp(-(fy**2 + fx**2) / (2 * HIGH_PASS_CUTOFF**2))).astype(np.float32)


@DISTORTIONS.register(
    "high_frequency_noise", aliases=("tid05",), tid=5, family="noise", metric="psnr", random=True, kernel=4
)
def high_frequency_noise(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """White noise of variance `param`, high-pass filtered in the Fourier domain, added to the image."""
    require(param > 0, "high_frequency_noise", f"variance must be > 0, got {param}")
    noise = normal(rng, image.shape, 255 * np.sqrt(param))
    # scipy.fft keeps float32 (numpy's promotes to float64 and is 5x slower here).
    spectrum = scipy.fft.rfft2(noise, axes=(0, 1)) * _high_pass(image.shape[:2])[:, :, None]
    filtered = scipy.fft.irfft2(spectrum, s=image.shape[:2], axes=(0, 1))
    return add_rounded(image, filtered)


@DISTORTIONS.register(
    "impulse_noise", aliases=("tid06",), tid=6, family="noise", metric="psnr", random=True
)
def impulse_noise(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """imnoise 'salt & pepper' with density `param`: each sample independently black or white."""
    require(0 < param <= 1, "impulse_noise", f"density must be in (0, 1], got {param}")
    draw = rng.random(image.shape, dtype=np.float32)
    # Masks as 0/255 bytes and two OpenCV passes instead of numpy's slower boolean-index
    # assignments: white where draw < param, then black where draw < param / 2; the same bytes.
    salt = np.less(draw, param).view(np.uint8) * np.uint8(255)
    keep = np.uint8(255) - np.less(draw, param / 2).view(np.uint8) * np.uint8(255)
    return cv2.bitwise_and(cv2.max(image, salt), keep)


@DISTORTIONS.register(
    "multiplicative_noise", aliases=("tid19",), tid=19, family="noise", metric="psnr", random=True, kernel=4
)
def multiplicative_noise(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Each sample times (1 + param * N(0, 1)), independent per channel."""
    require(param > 0, "multiplicative_noise", f"noise std must be > 0, got {param}")
    return cv2.multiply(image, normal(rng, image.shape, param, mean=1.0), dtype=cv2.CV_8U)


def _class_costs(hist: np.ndarray) -> np.ndarray:
    """cost[i, j]: squared error of representing grey levels i..j by their mean (inf where j < i)."""
    levels = np.arange(hist.size, dtype=np.float64)
    w = np.concatenate([[0.0], np.cumsum(hist)])
    s1 = np.concatenate([[0.0], np.cumsum(hist * levels)])
    s2 = np.concatenate([[0.0], np.cumsum(hist * levels**2)])
    i, j = np.ogrid[: hist.size, : hist.size]
    count = w[j + 1] - w[i]
    total = s1[j + 1] - s1[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = (s2[j + 1] - s2[i]) - np.where(count > 0, total**2 / count, 0.0)
    return np.where(j >= i, np.maximum(cost, 0.0), np.inf)


def optimal_thresholds(hist: np.ndarray, n_classes: int) -> np.ndarray:
    """Exact multi-level Otsu (= optimal 1-D k-means) by dynamic programming over the histogram.

    Returns the first grey level of classes 2..n_classes. MATLAB's multithresh only approximates this
    optimum; skimage's threshold_multiotsu is exact but exponential in the number of classes.
    """
    cost = _class_costs(hist)
    best = cost[0].copy()
    starts = []
    for _ in range(n_classes - 1):
        # candidate[i, j]: best split of 0..i-1 into the classes so far, then one class i..j
        candidate = np.full_like(cost, np.inf)
        candidate[1:] = best[:-1, None] + cost[1:]
        start = np.argmin(candidate, axis=0)
        best = candidate[start, np.arange(hist.size)]
        starts.append(start)
    bounds = []
    end = hist.size - 1
    for start in reversed(starts):
        bounds.append(int(start[end]))
        end = bounds[-1] - 1
    return np.array(sorted(bounds), dtype=np.int64)


@DISTORTIONS.register(
    "quantization_noise", aliases=("tid07",), tid=7, family="noise", metric="psnr", random=False
)
def quantization_noise(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Grey levels of all channels quantized with `param` optimal (Otsu) thresholds; each class -> its mean."""
    n_thresholds = int(round(param))
    require(1 <= n_thresholds <= 254, "quantization_noise", f"thresholds must be in 1..254, got {param}")
    hist = np.bincount(image.ravel(), minlength=256).astype(np.float64)
    if np.count_nonzero(hist) <= n_thresholds + 1:
        return image.copy()
    starts = optimal_thresholds(hist, n_thresholds + 1)
    classes = np.searchsorted(starts, np.arange(256), side="right")
    levels = np.arange(256, dtype=np.float64)
    counts = np.bincount(classes, weights=hist, minlength=n_thresholds + 1)
    sums = np.bincount(classes, weights=hist * levels, minlength=n_thresholds + 1)
    means = np.rint(sums / np.maximum(counts, 1)).astype(np.uint8)
    return cv2.LUT(image, means[classes])


# The official generator adds this second noise (the BM3D demo's sigma = 25 on [0, 255]) after the
# level's own noise, so even level 1 leaves visible denoising artefacts.
DENOISER_EXTRA_SIGMA = 25 / 255
NLM_PATCH, NLM_SEARCH = 5, 11


@DISTORTIONS.register(
    "image_denoising", aliases=("tid09",), tid=9, family="noise", metric="psnr", random=True, kernel=4
)
def image_denoising(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Noise of variance `param` plus sigma 25/255, then non-local means tuned to the total sigma.

    The official generator uses CBM3D; the bm3d wheel needs ~17 s per 512x384 image, OpenCV's
    non-local means about 0.1 s, with the same kind of smoothed, patchy residue. 5x5 patches in an
    11x11 search window: 2-3x faster than OpenCV's 7/21 default and closer to the original
    (by 1-2 dB PSNR), which at h = sigma over-smooths.
    """
    require(param > 0, "image_denoising", f"variance must be > 0, got {param}")
    sigma = float(np.sqrt(param + DENOISER_EXTRA_SIGMA**2))
    strength = 255 * sigma
    noisy = add_rounded(image, normal(rng, image.shape, strength))
    denoised = cv2.fastNlMeansDenoisingColored(
        np.ascontiguousarray(noisy[:, :, ::-1]), None, strength, strength, NLM_PATCH, NLM_SEARCH
    )
    return np.ascontiguousarray(denoised[:, :, ::-1])
