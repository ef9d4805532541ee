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
KERNEL_VERSION = 3

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


def normal(rng: np.random.Generator, shape: tuple, std: float, mean: float = 0.0) -> np.ndarray:
    """float32 samples of N(mean, std^2) from OpenCV's generator, seeded from `rng` (kernel 2).

    cv2.randn is 3x faster than numpy's float32 ziggurat. It draws from the calling thread's own
    generator, seeded here first with 31 bits from `rng`, and fills the array in one thread, so the
    samples depend on `rng` alone, not on OpenCV's thread count or the worker.
    """
    out = np.empty(shape, dtype=np.float32)
    cv2.setRNGSeed(int(rng.integers(0, 2**31)))
    # Filled as one channel with a scalar mean and std: the same samples in the same order as per-channel
    # vectors on the HxWx3 array (OpenCV draws the interleaved samples in sequence either way), 15 %
    # faster (tests/test_kernels.py).
    cv2.randn(out.reshape(-1, 1), float(mean), float(std))
    return out


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
