"""Additive Gaussian noise with a spatial or a content-driven shape (TID2013 #03, #04).

Both keep the total noise variance at `param` on [0, 1]-scaled images, as #01 does, so their
tables read like #01's and PSNR falls with the variance; only where the noise goes differs.
"""

from __future__ import annotations

import cv2
import numpy as np

from .base import DISTORTIONS, add_rounded, normal, require, to_unit

# Correlation kernel: a normalised 5x5 Gaussian of sigma 1 px, grains of about 3 px.
CORRELATION_SIGMA, CORRELATION_SIZE = 1.0, 5
# Activity window of the mask: 7x7 local standard deviation of luma.
ACTIVITY_WINDOW = 7
LUMA = np.array([[0.299, 0.587, 0.114]], dtype=np.float32)


def _kernel() -> np.ndarray:
    line = cv2.getGaussianKernel(CORRELATION_SIZE, CORRELATION_SIGMA, cv2.CV_32F)
    return line @ line.T


@DISTORTIONS.register(
    "spatially_correlated_noise", aliases=("tid03",), tid=3, family="noise", metric="psnr", random=True,
    kernel=4,
)
def spatially_correlated_noise(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """White noise low-passed by a 5x5 Gaussian (sigma 1), rescaled to variance `param`, per channel.

    Filtering white noise of variance s^2 with kernel k leaves variance s^2 * sum(k^2), so the white
    noise is drawn with s^2 = param / sum(k^2).
    """
    require(param > 0, "spatially_correlated_noise", f"variance must be > 0, got {param}")
    kernel = _kernel()
    white = normal(rng, image.shape, 255 * np.sqrt(param / np.sum(kernel**2)))
    return add_rounded(image, cv2.filter2D(white, -1, kernel, borderType=cv2.BORDER_REFLECT))


def activity(image: np.ndarray) -> np.ndarray:
    """Local standard deviation of luma in a 7x7 window, on [0, 1]."""
    luma = cv2.transform(to_unit(image), LUMA)
    size = (ACTIVITY_WINDOW, ACTIVITY_WINDOW)
    mean = cv2.blur(luma, size, borderType=cv2.BORDER_REFLECT)
    mean_sq = cv2.blur(luma * luma, size, borderType=cv2.BORDER_REFLECT)
    return np.sqrt(np.maximum(mean_sq - mean * mean, 0))


@DISTORTIONS.register("masked_noise", aliases=("tid04",), tid=4, family="noise", metric="psnr", random=True,
                      kernel=4)
def masked_noise(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose local std follows local activity a(x): n = sqrt(param) a / rms(a) N(0, 1).

    Texture masks noise, so a masked-noise coder puts it where the eye misses it; mean(n^2) = param
    keeps the tables comparable with #01. A flat image has no activity and is left unchanged.
    """
    require(param > 0, "masked_noise", f"variance must be > 0, got {param}")
    mask = activity(image)
    rms = float(np.sqrt(np.mean(mask**2)))
    if rms == 0:
        return image.copy()
    noise = normal(rng, image.shape, 255 * np.sqrt(param) / rms)
    return add_rounded(image, noise * mask[:, :, None])
