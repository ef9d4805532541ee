"""Coding that trades detail for noise, and coding of noisy images (TID2013 #20, #21)."""

from __future__ import annotations

import cv2
import numpy as np

from .base import DISTORTIONS, add_rounded, normal, require
from .compression import jpeg, jpeg2000

# Comfort noise matches the local energy of the lost detail over a Gaussian window of this sigma.
COMFORT_SIGMA = 2.0
# #21's noise: variance 0.002 on [0, 1] (sigma ~ 11 grey levels), between #01's first two levels.
NOISY_VARIANCE = 0.002


@DISTORTIONS.register("comfort_noise", aliases=("tid20",), tid=20, family="compression", metric="psnr", random=True,
                      kernel=4)
def comfort_noise(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """JPEG 2000 at `param` bits per pixel, then noise standing in for the detail the coder dropped.

    r = x - J2K(x) is the lost detail; out = J2K(x) + e N(0, 1) with e = sqrt(G_2 * r^2) its local
    energy per channel, so flat areas stay clean and lost texture comes back as noise of the same
    strength: the decoder-side texture synthesis of a comfort-noise codec.
    """
    require(0 < param < 24, "comfort_noise", f"bits per pixel must be in (0, 24), got {param}")
    coded = jpeg2000(image, param, rng)
    lost = image.astype(np.float32) - coded
    energy = np.sqrt(cv2.GaussianBlur(lost * lost, (0, 0), COMFORT_SIGMA, borderType=cv2.BORDER_REFLECT))
    return add_rounded(coded, energy * normal(rng, image.shape, 1.0))


@DISTORTIONS.register(
    "noisy_image_compression", aliases=("tid21",), tid=21, family="compression", metric="psnr", random=True,
    kernel=4,
)
def noisy_image_compression(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """White noise of variance 0.002, then JPEG at quality `param`: a noisy camera image, compressed."""
    quality = int(round(param))
    require(1 <= quality <= 100, "noisy_image_compression", f"quality must be in 1..100, got {param}")
    return jpeg(add_rounded(image, normal(rng, image.shape, 255 * np.sqrt(NOISY_VARIANCE))), quality, rng)
