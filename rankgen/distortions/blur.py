"""Gaussian blur (TID2013 #08)."""

from __future__ import annotations

import cv2
import numpy as np

from .base import DISTORTIONS, from_255, require


def odd_size(hsize: float) -> int:
    """The odd kernel size for a (possibly interpolated) MATLAB fspecial hsize; odd table values stay."""
    return 2 * int(np.floor(hsize / 2)) + 1


def blur(image: np.ndarray, ksize: int, sigma: float) -> np.ndarray:
    """Sampled, normalized Gaussian (fspecial) with symmetric padding (imfilter 'symmetric'), rounded.

    In float32, then rounded: OpenCV's uint8 separable filter is 2x faster but rounds a few pixels
    near .5 the other way (hypothesis found one at the image's last pixel), which would change bytes."""
    filtered = cv2.GaussianBlur(
        image.astype(np.float32), (ksize, ksize), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT
    )
    return from_255(filtered)


@DISTORTIONS.register(
    "gaussian_blur", aliases=("tid08",), tid=8, family="blur", metric="psnr", random=False
)
def gaussian_blur(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Kernel of size `param` (hsize) with sigma = hsize / 6, as the official generator."""
    require(param >= 1, "gaussian_blur", f"kernel size must be >= 1, got {param}")
    return blur(image, odd_size(param), param / 6)
