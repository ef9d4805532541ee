"""BT.601 studio-range YCbCr on [0, 1]-scaled values, as MATLAB's rgb2ycbcr / ycbcr2rgb define it.

The official generator adds colour noise (#02) and scales saturation (#18) in this space.
"""

from __future__ import annotations

import numpy as np

_RGB_TO_YCBCR = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], dtype=np.float64
) / 255.0
_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)


def rgb_to_ycbcr(unit_rgb: np.ndarray) -> np.ndarray:
    return (unit_rgb @ _RGB_TO_YCBCR.T.astype(np.float32)) + _OFFSET.astype(np.float32)


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    return (ycbcr - _OFFSET.astype(np.float32)) @ _YCBCR_TO_RGB.T.astype(np.float32)
