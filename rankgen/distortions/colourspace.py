"""BT.601 studio-range YCbCr on [0, 1]-scaled values, as MATLAB's rgb2ycbcr / ycbcr2rgb define it.

The official generator adds colour noise (#02) and scales saturation (#18) in this space.
"""

from __future__ import annotations

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


def ycbcr_noise_in_rgb(noise: np.ndarray) -> np.ndarray:
    """Noise added to Y, Cb and Cr, as the RGB change it makes: the conversion is affine, so
    ycbcr_to_rgb(rgb_to_ycbcr(x) + n) = x + M^-1 n."""
    return cv2.transform(noise, _YCBCR_TO_RGB.astype(np.float32))
