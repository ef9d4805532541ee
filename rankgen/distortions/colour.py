"""Intensity and colour changes (TID2013 #16, #17, #18, #22): deterministic, no randomness."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from .base import DISTORTIONS, pointwise, require
from .colourspace import chroma_gain_fixed


def _add(values: np.ndarray, offset: float) -> np.ndarray:
    return values + np.float32(offset)


def _add_saturated(image: np.ndarray, offset: float) -> np.ndarray:
    # OpenCV rounds the scalar to the image's type first: exact for whole grey levels only. A negative
    # scalar sends cv2.add down a 7x slower path, hence subtract for the darker shift.
    if offset < 0:
        return cv2.subtract(image, (-offset, -offset, -offset, 0))
    return cv2.add(image, (offset, offset, offset, 0))


def _shift(image: np.ndarray, offset: float) -> np.ndarray:
    return pointwise(_add, offset, _add_saturated)(image)


@DISTORTIONS.register(
    "mean_shift", aliases=("tid16",), tid=16, family="colour", metric="mean_abs_shift", random=False
)
def mean_shift(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Add `param` grey levels to every sample (saturating), the official brighter direction."""
    require(param > 0, "mean_shift", f"the brighter shift must be > 0, got {param}; see mean_shift_darker")
    return _shift(image, param)


@DISTORTIONS.register("mean_shift_darker", tid=16, family="colour", metric="mean_abs_shift", random=False)
def mean_shift_darker(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Add `param` (< 0) grey levels to every sample (saturating at 0)."""
    require(param < 0, "mean_shift_darker", f"the darker shift must be < 0, got {param}; see mean_shift")
    return _shift(image, param)


def _multiply(values: np.ndarray, factor: float) -> np.ndarray:
    return values * np.float32(factor)


def _scale(image: np.ndarray, factor: float) -> np.ndarray:
    # x * float32(factor), rounded half to even and saturated, as the table; |.| is a no-op for gains > 0.
    return cv2.convertScaleAbs(image, alpha=factor)


def _gain(image: np.ndarray, factor: float) -> np.ndarray:
    """The official contrast change: a gain about black, rounded and saturated."""
    return pointwise(_multiply, factor, _scale)(image)


@DISTORTIONS.register(
    "contrast_decrease", aliases=("tid17",), tid=17, family="colour", metric="psnr", random=False
)
def contrast_decrease(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Multiply every sample by `param` in (0, 1)."""
    require(0 < param < 1, "contrast_decrease", f"gain must be in (0, 1), got {param}; see contrast_increase")
    return _gain(image, param)


@DISTORTIONS.register("contrast_increase", tid=17, family="colour", metric="psnr", random=False)
def contrast_increase(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Multiply every sample by `param` > 1 (saturating at white)."""
    require(param > 1, "contrast_increase", f"gain must be > 1, got {param}; see contrast_decrease")
    return _gain(image, param)


@DISTORTIONS.register(
    "color_saturation", aliases=("tid18",), tid=18, family="colour", metric="saturation", random=False, kernel=3
)
def color_saturation(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Scale Cb and Cr about neutral by `param` (< 1 desaturates; < 0 also inverts hues).

    One uint8 `cv2.transform` in 10-bit fixed point (kernel 3): 7x faster than the float32 map, and
    within one grey level of it (on 1-2 % of samples of a photograph).
    """
    require(param < 1, "color_saturation", f"chroma factor must be < 1, got {param}")
    return cv2.transform(image, chroma_gain_fixed(param))


PALETTE_MASK, PALETTE_CENTRE = np.uint8(0xF8), np.uint8(4)


@DISTORTIONS.register(
    "color_quantization", aliases=("tid22",), tid=22, family="colour", metric="psnr", random=False
)
def color_quantization(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """A `param`-colour median-cut palette, then Floyd-Steinberg error diffusion onto it.

    MATLAB's rgb2ind(img, N) uses a minimum-variance palette with the same dither; Pillow's median
    cut is the closest fast, deterministic equivalent. Pillow dithers only onto a given palette,
    hence the two passes. The palette is cut from 5-bit-per-channel colours: 5x faster than from all
    colours, within 0.3 dB of it.
    """
    colours = int(round(param))
    require(2 <= colours <= 256, "color_quantization", f"colours must be in 2..256, got {param}")
    picture = Image.fromarray(image, "RGB")
    coarse = Image.fromarray((image & PALETTE_MASK) | PALETTE_CENTRE, "RGB")
    palette = coarse.quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    dithered = picture.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
    return np.asarray(dithered.convert("RGB"), dtype=np.uint8).copy()
