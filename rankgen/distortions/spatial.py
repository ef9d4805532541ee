"""Local displacements and replacements (TID2013 #14, #15, #23).

TID2013's patch and block sizes are for its 512x384 images. Here they scale with the square root
of the image area, so a given count disturbs the same fraction of any image (a 128x96 crop would
otherwise be covered many times over at the severe levels and stop getting worse).

Patches and blocks go into distinct cells of a randomly offset grid instead of anywhere: the
official code lets them overlap, so the disturbed area, and with it the ranking of two levels drawn
with independent noise, was left to chance. Disjoint cells make the area exactly proportional to the
count; the harm per block still depends on what it covers, so these types rank by `intact_area`.
"""

from __future__ import annotations

import cv2
import numpy as np

from .base import DISTORTIONS, require
from .blur import blur

TID_AREA = 512 * 384
PATCH, PATCH_SHIFT, BLOCK = 15, 5, 32


def scaled(size: int, shape: tuple[int, ...], smallest: int) -> int:
    factor = np.sqrt(shape[0] * shape[1] / TID_AREA)
    return max(smallest, int(round(size * factor)))


def _corners(rng: np.random.Generator, count: int, shape: tuple[int, ...], extent: int) -> list[tuple[int, int]]:
    """Top-left corners (top, left) of `count` distinct cells of an `extent` grid with a random offset.

    A count above the number of cells takes them all (only on images far below 512x384 in area).
    Plain ints: for the few cells of a level, numpy's per-call overhead cost more than the draws.
    """
    rows, cols = shape[0] // extent, shape[1] // extent
    down, right = rng.integers(0, [shape[0] - rows * extent + 1, shape[1] - cols * extent + 1]).tolist()
    cells = rng.choice(rows * cols, size=min(count, rows * cols), replace=False).tolist()
    return [(cell // cols * extent + down, cell % cols * extent + right) for cell in cells]


@DISTORTIONS.register(
    "non_eccentricity_noise", aliases=("tid14",), tid=14, family="spatial", metric="intact_area", random=True
)
def non_eccentricity_noise(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """`param` patches (15x15 at 512x384) each replaced by the image content 5 px down and right."""
    count = int(round(param))
    require(count >= 1, "non_eccentricity_noise", f"patch count must be >= 1, got {param}")
    patch = scaled(PATCH, image.shape, 3)
    shift = scaled(PATCH_SHIFT, image.shape, 1)
    out = image.copy()
    # A cell is patch + shift wide, so the source of every patch lies inside the image.
    for top, left in _corners(rng, count, image.shape, patch + shift):
        out[top : top + patch, left : left + patch] = image[top + shift : top + shift + patch,
                                                            left + shift : left + shift + patch]
    return out


@DISTORTIONS.register(
    "block_wise", aliases=("tid15",), tid=15, family="spatial", metric="intact_area", random=True
)
def block_wise(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """`param` blocks (32x32 at 512x384) at random places, filled with the image's mean colour.

    The official generator also tints the blocks of its first levels (red set to 0, +50, +30) by
    level number; one colour keeps the count the only parameter, so interpolated levels make sense.
    """
    count = int(round(param))
    require(count >= 1, "block_wise", f"block count must be >= 1, got {param}")
    size = scaled(BLOCK, image.shape, 2)
    # Exact integer sums (cv2.sumElems) over the pixel count: numpy's mean, without its slow axis-0 loop;
    # round() rounds half to even, as np.rint.
    pixels = image.shape[0] * image.shape[1]
    colour = tuple(round(total / pixels) for total in cv2.sumElems(image)[:3])
    out = image.copy()
    # A filled rectangle covers exactly [left, left + size) x [top, top + size): the slice assignment's
    # pixels, in a quarter of its time.
    for top, left in _corners(rng, count, image.shape, size):
        cv2.rectangle(out, (left, top), (left + size - 1, top + size - 1), colour, cv2.FILLED)
    return out


# The official code blurs the shifted result with a 3x3 Gaussian of sigma 0.5.
CA_KERNEL, CA_SIGMA = 3, 0.5


@DISTORTIONS.register(
    "chromatic_aberration", aliases=("tid23",), tid=23, family="spatial", metric="psnr", random=False, kernel=3
)
def chromatic_aberration(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Red moved `param` px and blue `param // 2` px to the right of green, then a light blur.

    The uncovered left columns keep their own values. The blur is #08's (`blur`).
    """
    shift = int(round(param))
    require(1 <= shift < image.shape[1], "chromatic_aberration", f"shift must be in 1..width-1, got {param}")
    out = image.copy()
    out[:, shift:, 0] = image[:, :-shift, 0]
    if shift // 2:
        out[:, shift // 2 :, 2] = image[:, : -(shift // 2), 2]
    return blur(out, CA_KERNEL, CA_SIGMA)
