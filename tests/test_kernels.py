"""Kernel bytes and strength: every registered type at every level of its recipe, pinned.

tests/golden/kernels.json holds, per type, a sha256 prefix of the output at each level (seed 0) and
the PSNR per level averaged over SEEDS seeds.
A hash that changes means corpora made before and after differ: that is allowed only together with a
raised KERNEL_VERSION (rankgen/distortions/base.py) and the type's `kernel` entry, in the commit that
regenerates the file (tests/golden/make_kernels.py). The PSNR per level is the MATLAB-semantics guard:
it may not move beyond sampling noise even when the bytes do.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from rankgen.distortions import DISTORTIONS, distort, load_recipe
from rankgen.distortions.metrics import psnr

GOLDEN_PATH = Path(__file__).parent / "golden" / "kernels.json"
SEEDS = 4
# A random type's PSNR moves with its stream: over 6 seeds at 256x192 the noise types spread by up to
# 0.15 dB per level, their mean over 4 seeds by about a third of that; 0.15 dB is 3.5 sigma.
PSNR_TOLERANCE_DB = 0.15


@lru_cache(maxsize=None)
def golden_image() -> np.ndarray:
    image = cv2.resize(skimage.data.astronaut(), (256, 192), interpolation=cv2.INTER_AREA)
    image.setflags(write=False)
    return image


def golden_cases() -> list[tuple[str, str, list[float]]]:
    full, kadid = load_recipe("tid2013-full"), load_recipe("kadid10k")
    cases = []
    for name in DISTORTIONS.names():
        recipe = full if name in full.names else kadid
        cases.append((name, recipe.name, recipe.params(name, 5 if recipe is full else 6)))
    return cases


def run_case(name: str, param: float, level: int) -> tuple[str, float]:
    """The sha256 prefix of the seed-0 output and the PSNR averaged over SEEDS seeds."""
    image = golden_image()
    seeds = SEEDS if DISTORTIONS.entry(name).info["random"] else 1
    outs = [distort(image, name, param, np.random.default_rng([seed, level])) for seed in range(seeds)]
    return hashlib.sha256(outs[0].tobytes()).hexdigest()[:16], float(np.mean([psnr(image, o) for o in outs]))


@lru_cache(maxsize=None)
def golden() -> dict:
    return json.loads(GOLDEN_PATH.read_text())


CASES = golden_cases()


def test_every_registered_type_is_pinned():
    assert sorted(golden()) == DISTORTIONS.names()


@pytest.mark.parametrize("name, recipe, params", CASES, ids=[c[0] for c in CASES])
def test_bytes_and_psnr_per_level(name, recipe, params):
    pinned = golden()[name]
    assert (pinned["recipe"], pinned["params"]) == (recipe, params)
    hashes, got = zip(*[run_case(name, param, level) for level, param in enumerate(params, 1)])
    random = DISTORTIONS.entry(name).info["random"]
    tolerance = PSNR_TOLERANCE_DB if random else 1e-4
    assert got == pytest.approx(pinned["psnr"], abs=tolerance), f"{name}: PSNR per level moved"
    assert list(hashes) == pinned["sha256"], f"{name}: bytes changed; see the module docstring"
