"""`corrupt`: one image, one distortion, one level: the call users of imagecorruptions expect.

Level 0 returns the image untouched; HxW grayscale and images smaller than the registry's minimum
work too (imagecorruptions' users asked for exactly these three things).
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import RankgenError
from .base import DISTORTIONS, MIN_SIDE, check_image, distort
from .recipes import load_recipe
from ..seeding import rng_for


@functools.lru_cache(maxsize=256)
def _schedule(recipe: str, name: str, levels: int) -> tuple[float, ...]:
    # Parsing and validating a recipe costs ~7 ms, ten times a cheap distortion: once per process.
    return tuple(load_recipe(recipe).params(name, levels))


def corrupt(image: np.ndarray, name: str, level: int, *, levels: int = 5, recipe: str = "tid2013",
            seed: int = 0) -> np.ndarray:
    """Distort `image` (HxWx3 or HxW uint8) at `level` of `levels` (0 = untouched), seeded by (seed, name, level)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise RankgenError(f"corrupt needs an HxW or HxWx3 uint8 image, got {image.shape} {image.dtype}")
    if not 0 <= level < levels:
        raise RankgenError(f"level {level} is outside 0..{levels - 1}")
    if level == 0:
        return image.copy()
    param = _schedule(recipe, name, levels)[level - 1]
    gray = image.ndim == 2 or image.shape[2] == 1
    rgb = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2) if gray else image
    h, w = rgb.shape[:2]
    # Mirror small images up to the minimum the distortions are defined on, then cut back.
    pad = ((0, max(0, MIN_SIDE - h)), (0, max(0, MIN_SIDE - w)), (0, 0))
    if pad[0][1] or pad[1][1]:
        rgb = np.pad(rgb, pad, mode="symmetric" if min(h, w) > 1 else "edge")
    out = distort(np.ascontiguousarray(rgb), name, param, rng_for(seed, name, level))[:h, :w]
    if gray:
        luma = np.rint(out.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
        out = np.clip(luma, 0, 255).astype(np.uint8).reshape(image.shape)
    return out


def distort_recorded(image: np.ndarray, name: str, param: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """`distort`, plus how many damage draws the item needed: types that can produce an undecodable
    codestream retry with the same generator (docs/distortions.md); every other type needs 1."""
    from .transmission import RETRYING

    canonical = DISTORTIONS.canonical(name)
    if canonical not in RETRYING:
        return distort(image, canonical, param, rng), 1
    check_image(image)
    return RETRYING[canonical](image, float(param), rng)
