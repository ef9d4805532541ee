"""BT.601 studio-range YCbCr on [0, 1]-scaled values, as MATLAB's rgb2ycbcr / ycbcr2rgb define it.

The official generator adds colour noise (#02) and scales saturation (#18) in this space.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

_RGB_TO_YCBCR = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], dtype=np.float64
) / 255.0
_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)
# cv2.transform, not `rgb @ M.T`: numpy loops over the trailing axis of 3 (40x slower).
_TO_YCBCR = np.hstack([_RGB_TO_YCBCR, _OFFSET[:, None]]).astype(np.float32)


def rgb_to_ycbcr(unit_rgb: np.ndarray) -> np.ndarray:
    return cv2.transform(unit_rgb, _TO_YCBCR)


def chroma_gain_matrix(k: float) -> np.ndarray:
    """The 3x4 affine map of 0..255 RGB that scales Cb and Cr about neutral by k (#18), in one step:
    RGB -> YCbCr -> chroma gain -> RGB composed in float64."""
    gain = np.diag([1.0, k, k])
    shift = np.array([0.0, 0.5, 0.5]) * (1 - k)
    linear = _YCBCR_TO_RGB @ gain @ _RGB_TO_YCBCR
    offset = _YCBCR_TO_RGB @ (gain @ _OFFSET + shift - _OFFSET)
    return np.hstack([linear, 255 * offset[:, None]]).astype(np.float32)


# OpenCV's uint8 `cv2.transform` of 3 channels multiplies in fixed point with 10 fractional bits:
# out = saturate((sum_i round(m_i 2^10) x_i + round(m_3 2^10) + 2^9) >> 10).
FIXED_BITS = 10


@lru_cache(maxsize=256)
def chroma_gain_fixed(k: float) -> np.ndarray:
    """chroma_gain_matrix(k) on the 2^-10 grid of OpenCV's uint8 transform, for `cv2.transform` on uint8.

    Each row's three gains are rounded down and the largest remainders rounded up, so the row keeps
    its exact sum of 1: a grey pixel moves by its row's offset alone, as in float. Every entry is an
    exact multiple of 2^-10, so OpenCV's own rounding of the matrix changes nothing and the bytes are
    the integer formula above (tests/test_kernels.py checks it).
    """
    scaled = chroma_gain_matrix(k).astype(np.float64) * 2**FIXED_BITS
    gains = np.floor(scaled[:, :3])
    for row, want in zip(range(3), np.rint(scaled[:, :3].sum(axis=1)).astype(int)):
        order = np.argsort(gains[row] - scaled[row, :3], kind="stable")
        gains[row, order[: want - int(gains[row].sum())]] += 1
    fixed = np.hstack([gains, np.rint(scaled[:, 3:])]) / 2**FIXED_BITS
    fixed = fixed.astype(np.float32)
    fixed.setflags(write=False)
    return fixed


def ycbcr_noise_in_rgb(noise: np.ndarray) -> np.ndarray:
    """Noise added to Y, Cb and Cr, as the RGB change it makes: the conversion is affine, so
    ycbcr_to_rgb(rgb_to_ycbcr(x) + n) = x + M^-1 n."""
    return cv2.transform(noise, _YCBCR_TO_RGB.astype(np.float32))
