"""The distortion registry and the conversions every distortion shares.

MATLAB's image toolbox, which the official RankIQA generator uses, works on images scaled to [0, 1]
and converts back to uint8 by rounding and saturating; `to_unit` / `from_unit` reproduce that.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from ..errors import BadImage, RankgenError
from ..registry import Registry

DISTORTIONS = Registry("distortion")

# Raised whenever a kernel's bytes change on purpose; corpora record it. A type's registry entry
# names the version its bytes last changed in (`kernel`, 1 when absent); docs/distortions.md lists them.
KERNEL_VERSION = 4

MIN_SIDE = 32
FAMILIES = ("noise", "blur", "compression", "colour", "spatial")


def to_unit(image: np.ndarray) -> np.ndarray:
    # One allocation instead of two: a fresh 512x384x3 float array costs ~0.5 ms in page faults.
    return np.divide(image, np.float32(255), dtype=np.float32)


def from_unit(values: np.ndarray) -> np.ndarray:
    return from_255(values * np.float32(255))


def from_255(values: np.ndarray) -> np.ndarray:
    """Round half to even and saturate to uint8 (MATLAB's uint8()): the bytes of
    np.clip(np.rint(values), 0, 255).astype(np.uint8), in one pass without float temporaries."""
    # As one column: OpenCV would read a 1-D array of up to 4 values as a scalar, not an array.
    return cv2.add(values.reshape(-1, 1), 0, dtype=cv2.CV_8U).reshape(values.shape)


# Every uint8 value, laid out twice: as one contiguous block (OpenCV's vector loops) and as rows of
# one pixel (its scalar tails), so a shortcut that matches the table here matches it on any image.
_EVERY_VALUE = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
_EVERY_VALUE_STRIDED = np.zeros((256, 2, 3), dtype=np.uint8)
_EVERY_VALUE_STRIDED[:, 0] = np.arange(256, dtype=np.uint8)[:, None]
_EVERY_VALUE_STRIDED = _EVERY_VALUE_STRIDED[:, :1]


@lru_cache(maxsize=1024)
def pointwise(curve, param: float, shortcut=None):
    """image -> from_255(curve(image as float32, param)), for a curve applied to each sample on its own.

    Through a 256-entry table: the same float operations on the 256 possible values, so the same
    bytes. `shortcut(image, param)`, one OpenCV call that is faster than cv2.LUT, is used instead
    where it gives the table's bytes on every value (checked once per parameter: a cached call costs
    nothing, and a parameter the shortcut rounds differently falls back to the table).
    """
    table = from_255(curve(np.arange(256, dtype=np.float32), param))
    table.setflags(write=False)
    if shortcut is not None and all(
        np.array_equal(shortcut(values, param), cv2.LUT(values, table))
        for values in (_EVERY_VALUE, _EVERY_VALUE_STRIDED)
    ):
        return lambda image: shortcut(image, param)
    return lambda image: cv2.LUT(image, table)


def kernel_version(name: str) -> int:
    return DISTORTIONS.entry(name).info.get("kernel", 1)


def pixel_versions(names) -> dict:
    """What the bytes of these types depend on besides (image, param, seed): their kernel versions
    and the libraries whose code computes them. Stored in every distort corpus, so a regenerated
    item that differs can say which of them changed."""
    import glymur
    import PIL
    import scipy
    import skimage

    return {"kernels": {name: kernel_version(name) for name in sorted(names)}, "numpy": np.__version__,
            "opencv": cv2.__version__, "openjpeg": str(glymur.version.openjpeg_version),
            "scikit-image": skimage.__version__, "scipy": scipy.__version__, "pillow": PIL.__version__}


# The normal samples: 2^16 equiprobable quantiles of N(0, 1), one picked per sample by 16 random bits.
_QUANTILE_BITS = 16


@lru_cache(maxsize=1)
def _normal_quantiles() -> np.ndarray:
    """N(0, 1)'s inverse CDF at the midpoints of 2^16 bins of equal probability (float64)."""
    from scipy.special import ndtri

    quantiles = ndtri((np.arange(1 << _QUANTILE_BITS) + 0.5) / (1 << _QUANTILE_BITS))
    quantiles.setflags(write=False)
    return quantiles


@lru_cache(maxsize=32)
def _normal_table(std: float, mean: float) -> np.ndarray:
    table = (mean + std * _normal_quantiles()).astype(np.float32)
    table.setflags(write=False)
    return table


def normal(rng: np.random.Generator, shape: tuple, std: float, mean: float = 0.0) -> np.ndarray:
    """float32 samples of N(mean, std^2), drawn from `rng` alone (kernel 4).

    Each sample is the normal's quantile at a uniform 16-bit draw from `rng`: a table lookup per
    sample, 0.89 ms for a 512x384x3 field where OpenCV's cv2.randn (kernel 2) takes 1.27 and numpy's
    float32 ziggurat 4.8-6.3 (benchmarks/normal_samples.py). The draws are full-range 64-bit words,
    four samples each: for a 64-bit bit generator (PCG64, rankgen's) they are its raw output, a
    stream numpy keeps across its versions (MT19937's 32-bit outputs are paired). The table is
    computed, so the samples depend on neither OpenCV (whose cv2.randn stream changed in 5.1) nor
    thread counts. The 2^16 levels are a normal to within what uint8 pixels show: the tails stop at
    +-4.32 std (2^-17 of the mass lies beyond each), the variance is 0.99998 of the normal's.
    """
    count = int(np.prod(shape))
    words = rng.integers(0, 2**64 - 1, -(-count // 4), dtype=np.uint64, endpoint=True)
    # Little-endian 16-bit draws, so a big-endian machine reads the same numbers out of the same words.
    draws = words.astype("<u8", copy=False).view("<u2")[:count]
    return np.take(_normal_table(float(std), float(mean)), draws).reshape(shape)


def add_rounded(image: np.ndarray, values: np.ndarray) -> np.ndarray:
    """uint8(image + values): the sum rounded half to even and saturated, in one OpenCV pass."""
    return cv2.add(image, values, dtype=cv2.CV_8U)


def require(condition: bool, name: str, message: str) -> None:
    """Raise a RankgenError naming the distortion when a parameter is outside its domain."""
    if not condition:
        raise RankgenError(f"distortion {name!r}: {message}")


def check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise BadImage(f"distortions need an HxWx3 uint8 RGB image, got shape {shape} dtype {dtype}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise BadImage(
            f"distortions need images of at least {MIN_SIDE}x{MIN_SIDE} pixels, got {image.shape[1]}x{image.shape[0]}"
        )


def distort(image: np.ndarray, name: str, param: float, rng: np.random.Generator) -> np.ndarray:
    """Apply one registered distortion with shape and dtype checks on both sides."""
    check_image(image)
    out = DISTORTIONS.get(name)(image, float(param), rng)
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != image.shape:
        raise RuntimeError(
            f"distortion {DISTORTIONS.canonical(name)!r} returned {getattr(out, 'shape', None)} "
            f"{getattr(out, 'dtype', type(out).__name__)} for a {image.shape} uint8 image"
        )
    return out
