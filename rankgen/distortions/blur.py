"""Gaussian blur (TID2013 #08)."""

from __future__ import annotations

import cv2
import numpy as np

from .base import DISTORTIONS, from_255, require


def odd_size(hsize: float) -> int:
    """The odd kernel size for a (possibly interpolated) MATLAB fspecial hsize; odd table values stay."""
    return 2 * int(np.floor(hsize / 2)) + 1


# From 7 taps up, OpenCV's separable filter on uint8 computes the very floats of its float32 path and
# rounds them as from_255 does (tests/test_kernels.py checks the bytes); 3 and 5 taps take
# specialised float32 code whose floats differ in the last bit, so they stay in float.
UINT8_MIN_KSIZE = 7


def blur(image: np.ndarray, ksize: int, sigma: float) -> np.ndarray:
    """Sampled, normalized Gaussian (fspecial) with symmetric padding (imfilter 'symmetric'), rounded."""
    if ksize >= UINT8_MIN_KSIZE:
        kernel = cv2.getGaussianKernel(ksize, sigma, cv2.CV_32F)
        return cv2.sepFilter2D(image, cv2.CV_8U, kernel, kernel, borderType=cv2.BORDER_REFLECT)
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
