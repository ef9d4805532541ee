"""KADID-10k types that TID2013 lacks (Lin, Hosu, Saupe 2019; levels from the KADIS-700k generator).

Formulas follow the KADID paper's one-line descriptions; where the generator's exact code was not
at hand they are our reading of them (docs/distortions.md, "KADID-10k"). KADID types that are a
TID2013 operation (blur, noise, JPEG, ...) are not registered again: data_recipes/kadid10k.yaml
gives the TID2013 function its own table.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from .base import DISTORTIONS, from_255, from_unit, require, to_unit
from .spatial import BLOCK, TID_AREA, _corners, scaled


def _filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return from_255(cv2.filter2D(image.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REPLICATE))


@DISTORTIONS.register("lens_blur", tid=0, kadid=2, family="blur", metric="psnr", random=False)
def lens_blur(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """A uniform disk of radius `param` px (fspecial('disk')), replicate padding: defocus."""
    require(param > 0, "lens_blur", f"radius must be > 0, got {param}")
    size = 2 * int(np.ceil(param)) + 1
    # Supersampled disk: the area of each pixel inside the circle, as fspecial('disk') weights edges.
    fine = 8
    coords = (np.arange(size * fine) + 0.5) / fine - size / 2
    inside = (coords[:, None] ** 2 + coords[None, :] ** 2) <= param**2
    kernel = inside.reshape(size, fine, size, fine).mean(axis=(1, 3)).astype(np.float32)
    return _filter(image, kernel / kernel.sum())


# One direction for every level: with a random angle per level, a short blur across the image's
# dominant edges could outweigh a longer one along them.
MOTION_ANGLE = np.pi / 6


@lru_cache(maxsize=64)
def _motion_kernel(param: float) -> np.ndarray:
    """A line 2 `param` px long at MOTION_ANGLE, supersampled 8x per pixel, normalised."""
    size = 2 * int(np.ceil(param)) + 1
    fine = 8
    step = np.linspace(-param, param, 64 * size + 1)
    xs = ((size / 2 + step * np.cos(MOTION_ANGLE)) * fine).astype(int).clip(0, size * fine - 1)
    ys = ((size / 2 - step * np.sin(MOTION_ANGLE)) * fine).astype(int).clip(0, size * fine - 1)
    kernel = np.zeros((size * fine, size * fine), dtype=np.float32)
    np.add.at(kernel, (ys, xs), 1)
    kernel = kernel.reshape(size, fine, size, fine).sum(axis=(1, 3))
    kernel = kernel / kernel.sum()
    kernel.setflags(write=False)
    return kernel


@DISTORTIONS.register("motion_blur", tid=0, kadid=3, family="blur", metric="psnr", random=False)
def motion_blur(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """A line 2 `param` px long at 30 degrees (fspecial('motion')), antialiased: camera shake."""
    require(param > 0, "motion_blur", f"half-length must be > 0, got {param}")
    # On uint8, OpenCV sums the same float products of the nonzero taps as on float32 and rounds them
    # as from_255 does: the bytes of _filter, without the float copies (tests/test_kernels.py).
    return cv2.filter2D(image, -1, _motion_kernel(param), borderType=cv2.BORDER_REPLICATE)


def _lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(to_unit(image), cv2.COLOR_RGB2LAB)


def _rgb(lab: np.ndarray) -> np.ndarray:
    return from_unit(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))


@DISTORTIONS.register("color_diffusion", tid=0, kadid=4, family="colour", metric="saturation", random=False)
def color_diffusion(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """The a* and b* planes (CIELAB) blurred by a Gaussian of sigma `param` px: colours bleed."""
    require(param > 0, "color_diffusion", f"sigma must be > 0, got {param}")
    lab = _lab(image)
    lab[:, :, 1:] = cv2.GaussianBlur(lab[:, :, 1:], (0, 0), param, borderType=cv2.BORDER_REFLECT)
    return _rgb(lab)


WEIGHT_LEVELS = 65535


@DISTORTIONS.register("color_shift", tid=0, kadid=5, family="colour", metric="psnr", random=False, kernel=3)
def color_shift(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Green moved `param` px (at 512x384, scaled with sqrt(area)) down-right, blended in near edges.

    One direction for all levels, as motion_blur: a random one per level made the order depend on it.
    The edge map is dilated by the shift: with the bare edge map, PSNR stopped falling once the shift
    outgrew the edges' width (12 px was no worse than 7 on astronaut and motorcycle); the dilated map
    lets the fringe widen with the shift, so every level is strictly worse on every sample photo.
    """
    require(param > 0, "color_shift", f"shift must be > 0, got {param}")
    shift = param * np.sqrt(image.shape[0] * image.shape[1] / TID_AREA)
    dx = dy = shift / np.sqrt(2)
    green = cv2.extractChannel(image, 1).astype(np.float32)
    moved = cv2.warpAffine(green, np.float32([[1, 0, dx], [0, 1, dy]]), green.shape[::-1],
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # Sobel of whole grey levels is a whole number either way: no float copy of the grey image needed.
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    # cv2.magnitude, not np.hypot (kernel 3): 20x faster, an ulp off on a quarter of the pixels.
    edges = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    # The weight edges / max on a 1/65535 grid (kernel 3): dilating uint16 is 2x faster than float32,
    # and the blend moves by at most 0.002 grey levels. Dilation commutes with the rounding.
    levels = cv2.multiply(edges, WEIGHT_LEVELS / max(float(edges.max()), 1e-30), dtype=cv2.CV_16U)
    radius = int(np.ceil(shift))
    levels = cv2.dilate(levels, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    weight = np.multiply(levels, np.float32(1 / WEIGHT_LEVELS), dtype=np.float32)
    # green + weight (moved - green), in place; red and blue are whole grey levels and stay as they are.
    moved -= green
    moved *= weight
    moved += green
    out = image.copy()
    cv2.insertChannel(from_255(moved), out, 1)
    return out


@DISTORTIONS.register("saturation_increase", tid=0, kadid=8, family="colour", metric="saturation", random=False)
def saturation_increase(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """a* and b* (CIELAB) multiplied by `param` > 1: oversaturated colours."""
    require(param > 1, "saturation_increase", f"factor must be > 1, got {param}; see color_saturation")
    # float32 factor: OpenCV multiplies in double, which on float32 operands rounds as the float32
    # product does; a per-channel scalar instead of numpy's strided 2-of-3-channel loop (7x slower).
    factor = float(np.float32(param))
    return _rgb(cv2.multiply(_lab(image), (1.0, factor, factor, 0.0)))


def _tone(image: np.ndarray, curve) -> np.ndarray:
    """Apply a tone curve to L* (CIELAB), keeping hue: the lightness of every pixel moves one way.

    The curve runs in float64 (kernel 3): numpy's float32 `power` takes a different SIMD path on
    CPUs with and without AVX-512, an ulp apart, which moved a few pixels' rounding and so the bytes
    with the machine; float64's differences vanish in the cast back to float32."""
    lab = _lab(image)
    lab[:, :, 0] = 100 * curve(lab[:, :, 0].astype(np.float64) / 100)
    return _rgb(lab)


@DISTORTIONS.register("brighten", tid=0, kadid=16, family="colour", metric="psnr", random=False, kernel=3)
def brighten(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """L* -> L*^(1 / (1 + `param`)): a non-linear lift, darks gain most, white stays white."""
    require(param > 0, "brighten", f"strength must be > 0, got {param}")
    return _tone(image, lambda lightness: np.power(lightness, 1 / (1 + param)))


@DISTORTIONS.register("darken", tid=0, kadid=17, family="colour", metric="psnr", random=False, kernel=3)
def darken(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """L* -> L*^(1 + `param`): a non-linear darkening, black stays black."""
    require(param > 0, "darken", f"strength must be > 0, got {param}")
    return _tone(image, lambda lightness: np.power(lightness, 1 + param))


@DISTORTIONS.register("jitter", tid=0, kadid=19, family="spatial", metric="psnr", random=True)
def jitter(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Every pixel taken from a random neighbour up to `param` px away in x and y (uniform offsets)."""
    require(param > 0, "jitter", f"amplitude must be > 0, got {param}")
    h, w = image.shape[:2]
    offsets = rng.uniform(-param, param, size=(2, h, w)).astype(np.float32)
    grid_y, grid_x = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(image, grid_x + offsets[1], grid_y + offsets[0], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)


@DISTORTIONS.register("pixelate", tid=0, kadid=21, family="spatial", metric="psnr", random=False)
def pixelate(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Square blocks of `param` x `param` px (whole pixels), each its mean colour.

    KADID rescales by a non-integer factor; its irregular blocks made neighbouring levels swap order,
    whole blocks do not. The last blocks of a row or column may be narrower.
    """
    side = int(round(param))
    require(side >= 2, "pixelate", f"block side must be >= 2 px, got {param}")
    h, w = image.shape[:2]
    small = cv2.resize(image, (-(-w // side), -(-h // side)), interpolation=cv2.INTER_AREA)
    # Widen the few block rows first, then copy whole rows: repeating 3-byte pixels over the full image
    # costs 3x more.
    rows = np.repeat(small, side, axis=1)[:, :w]
    return np.repeat(rows, side, axis=0)[:h]


@DISTORTIONS.register("color_block", tid=0, kadid=23, family="spatial", metric="intact_area", random=True)
def color_block(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """`param` blocks (32x32 at 512x384, scaled as #15) of random colours in distinct grid cells."""
    count = int(round(param))
    require(count >= 1, "color_block", f"block count must be >= 1, got {param}")
    size = scaled(BLOCK, image.shape, 2)
    out = image.copy()
    for top, left in _corners(rng, count, image.shape, size):
        colour = rng.integers(0, 256, size=3, dtype=np.uint8).tolist()
        cv2.rectangle(out, (left, top), (left + size - 1, top + size - 1), colour, cv2.FILLED)
        # A random colour that equals a pixel would leave it intact; nudge it off the reference.
        same = cv2.inRange(image[top : top + size, left : left + size], tuple(colour), tuple(colour))
        if cv2.countNonZero(same):
            out[top : top + size, left : left + size][same > 0] ^= np.uint8(1)
    return out


@DISTORTIONS.register("high_sharpen", tid=0, kadid=24, family="blur", metric="psnr", random=False)
def high_sharpen(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Unsharp mask on L* (imsharpen): L + `param` (L - G_1 * L), Gaussian of sigma 1 px."""
    require(param > 0, "high_sharpen", f"amount must be > 0, got {param}")
    lab = _lab(image)
    lightness = lab[:, :, 0]
    lab[:, :, 0] = lightness + np.float32(param) * (
        lightness - cv2.GaussianBlur(lightness, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT))
    return _rgb(lab)
