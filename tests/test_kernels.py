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
from statistics import NormalDist

import cv2
import numpy as np
import pytest
import skimage.data
from hypothesis import given, settings
from hypothesis import strategies as st

from rankgen.distortions import DISTORTIONS, distort, load_recipe
from rankgen.distortions.base import KERNEL_VERSION, from_255, kernel_version, normal
from rankgen.distortions.blur import odd_size
from rankgen.distortions.colourspace import FIXED_BITS, chroma_gain_fixed, chroma_gain_matrix
from rankgen.distortions.kadid import _motion_kernel
from rankgen.distortions.metrics import psnr
from rankgen.distortions.spatial import BLOCK, PATCH, PATCH_SHIFT, scaled

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


# -- Rewrites that keep the bytes: each against the kernel it replaced, kept here as the reference.

def _v1_from_255(values):
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _v1_corners(rng, count, shape, extent):
    rows, cols = shape[0] // extent, shape[1] // extent
    offset = rng.integers(0, [shape[0] - rows * extent + 1, shape[1] - cols * extent + 1])
    cells = rng.choice(rows * cols, size=min(count, rows * cols), replace=False)
    return np.stack([cells // cols, cells % cols], axis=1) * extent + offset


def _v1_non_eccentricity_noise(image, param, rng):
    patch, shift = scaled(PATCH, image.shape, 3), scaled(PATCH_SHIFT, image.shape, 1)
    covered = np.zeros(image.shape[:2], dtype=bool)
    for top, left in _v1_corners(rng, int(round(param)), image.shape, patch + shift):
        covered[top : top + patch, left : left + patch] = True
    moved = image.copy()
    moved[:-shift, :-shift] = image[shift:, shift:]
    return np.where(covered[:, :, None], moved, image)


def _v1_block_wise(image, param, rng):
    size = scaled(BLOCK, image.shape, 2)
    colour = np.rint(image.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
    out = image.copy()
    for top, left in _v1_corners(rng, int(round(param)), image.shape, size):
        out[top : top + size, left : left + size] = colour
    return out


def _v1_color_block(image, param, rng):
    size = scaled(BLOCK, image.shape, 2)
    out = image.copy()
    for top, left in _v1_corners(rng, int(round(param)), image.shape, size):
        colour = rng.integers(0, 256, size=3, dtype=np.uint8)
        block = out[top : top + size, left : left + size]
        block[:] = colour
        same = np.all(block == image[top : top + size, left : left + size], axis=2)
        block[same] ^= np.uint8(1)
    return out


def _v1_saturation_increase(image, param, rng):
    lab = cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    lab[:, :, 1:] *= np.float32(param)
    return _v1_from_255(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB) * 255)


def _v1_sparse_sampling(image, param, rng):
    kept = (rng.random(image.shape[:2]) < param).astype(np.float32)
    values = image.astype(np.float32) * kept[:, :, None]
    sigma = 0.6 / np.sqrt(param)
    rebuilt = np.empty_like(values)
    weight = np.zeros(image.shape[:2], dtype=np.float32)
    for scale in (1, 4):
        den = cv2.GaussianBlur(kept, (0, 0), scale * sigma, borderType=cv2.BORDER_REFLECT)
        num = cv2.GaussianBlur(values, (0, 0), scale * sigma, borderType=cv2.BORDER_REFLECT)
        fill = (weight < 1e-3) & (den >= 1e-3)
        rebuilt[fill] = num[fill] / den[fill][:, None]
        weight = np.where(fill, den, weight)
    rebuilt[weight < 1e-3] = image.reshape(-1, 3).mean(axis=0)
    return _v1_from_255(np.where(kept[:, :, None] > 0, image.astype(np.float32), rebuilt))


def _image(seed: int, height: int, width: int, smooth: bool) -> np.ndarray:
    """Noise or, for filters, a smooth picture whose values sit near the rounding ties more often."""
    gen = np.random.default_rng(seed)
    image = gen.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(image, (0, 0), 3) if smooth else image


images = st.builds(_image, st.integers(0, 2**32 - 1), st.integers(32, 120), st.integers(32, 160), st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, width=32), min_size=1, max_size=64)
       | st.lists(st.integers(-300, 600).map(lambda v: v + 0.5), min_size=1, max_size=64))
def test_from_255_rounds_half_to_even_and_saturates(values):
    values = np.array(values, dtype=np.float32)
    assert from_255(values).tobytes() == _v1_from_255(values).tobytes()


@settings(max_examples=100, deadline=None)
@given(st.floats(-300, 300), st.floats(0.01, 4.0))
def test_pointwise_tables_give_the_float_bytes(offset, factor):
    every_value = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    for name, param, reference in [
        ("mean_shift", abs(offset) + 1e-3, lambda x: x + np.float32(abs(offset) + 1e-3)),
        ("mean_shift_darker", -abs(offset) - 1e-3, lambda x: x + np.float32(-abs(offset) - 1e-3)),
        ("contrast_decrease", min(factor, 0.99), lambda x: x * np.float32(min(factor, 0.99))),
        ("contrast_increase", factor + 1, lambda x: x * np.float32(factor + 1)),
    ]:
        # Every possible sample value, so one 16x16 image is a proof for this parameter.
        big = np.ascontiguousarray(np.pad(every_value, ((0, 16), (0, 16), (0, 0)), mode="wrap"))
        expected = _v1_from_255(reference(big.astype(np.float32)))
        assert distort(big, name, param, None).tobytes() == expected.tobytes(), (name, param)


def test_color_block_nudges_a_colour_that_equals_the_reference():
    # An image of exactly the colour the first block draws: every pixel of that block must change.
    rng = np.random.default_rng(11)
    shape = (96, 128, 3)
    (top, left), = _v1_corners(rng, 1, shape, scaled(BLOCK, shape, 2))
    image = np.empty(shape, np.uint8)
    image[:] = rng.integers(0, 256, size=3, dtype=np.uint8)
    out = distort(image, "color_block", 1, np.random.default_rng(11))
    size = scaled(BLOCK, shape, 2)
    assert np.all(out[top : top + size, left : left + size] != image[top : top + size, left : left + size])
    assert out.tobytes() == _v1_color_block(image, 1, np.random.default_rng(11)).tobytes()


def test_blur_does_not_depend_on_the_thread_count():
    image = _image(5, 384, 512, smooth=True)
    before = cv2.getNumThreads()
    try:
        outs = []
        for threads in (1, 2, 8):
            cv2.setNumThreads(threads)
            outs.append(distort(image, "gaussian_blur", 39, None).tobytes())
    finally:
        cv2.setNumThreads(before)
    assert outs[0] == outs[1] == outs[2]
    _assert_rounds_as_float_blur(np.frombuffer(outs[0], np.uint8).reshape(image.shape), image, 39, 39 / 6)


@settings(max_examples=60, deadline=None)
@given(images, st.integers(0, 2**32 - 1), st.floats(1, 400), st.floats(0.02, 0.95))
def test_spatial_rewrites_give_the_old_bytes(image, seed, count, share):
    for name, param, reference in [("non_eccentricity_noise", count, _v1_non_eccentricity_noise),
                                   ("block_wise", count, _v1_block_wise),
                                   ("color_block", count, _v1_color_block)]:
        new = distort(image, name, param, np.random.default_rng(seed))
        assert new.tobytes() == reference(image, param, np.random.default_rng(seed)).tobytes(), name


def _v1_impulse_noise(image, param, rng):
    draw = rng.random(image.shape, dtype=np.float32)
    out = image.copy()
    out[draw < param / 2] = 0
    out[(draw >= param / 2) & (draw < param)] = 255
    return out


@settings(max_examples=60, deadline=None)
@given(images, st.integers(0, 2**32 - 1), st.floats(0.001, 1.0))
def test_impulse_noise_rewrite_gives_the_old_bytes(image, seed, density):
    new = distort(image, "impulse_noise", density, np.random.default_rng(seed))
    assert new.tobytes() == _v1_impulse_noise(image, density, np.random.default_rng(seed)).tobytes()


def _v1_motion_blur(image, param, rng):
    kernel = _motion_kernel(param)
    return _v1_from_255(cv2.filter2D(image.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REPLICATE))


def _v1_pixelate(image, param, rng):
    side, (h, w) = int(round(param)), image.shape[:2]
    small = cv2.resize(image, (-(-w // side), -(-h // side)), interpolation=cv2.INTER_AREA)
    return np.repeat(np.repeat(small, side, axis=0), side, axis=1)[:h, :w]


@settings(max_examples=60, deadline=None)
@given(images, st.floats(0.3, 15.0), st.integers(2, 40))
def test_blur_and_pixelate_rewrites_give_the_old_bytes(image, half_length, side):
    # Motion kernels from 13x13 up go through OpenCV's DFT path, on uint8 as on float32.
    for name, param, reference in [("motion_blur", half_length, _v1_motion_blur),
                                   ("saturation_increase", 1 + half_length, _v1_saturation_increase),
                                   ("pixelate", side, _v1_pixelate)]:
        assert distort(image, name, param, None).tobytes() == reference(image, param, None).tobytes(), name


def _v1_jpeg(image, quality):
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(image[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1]


@settings(max_examples=40, deadline=None)
@given(images, st.integers(1, 100))
def test_jpeg_decoded_by_simplejpeg_gives_opencvs_pixels(image, quality):
    # Sizes that are not whole MCUs too: both decoders must treat the partial blocks and the 4:2:0
    # upsampling at the edges alike.
    assert distort(image, "jpeg", quality, None).tobytes() == _v1_jpeg(image, quality).tobytes()


# -- Kernel version 4: normal samples as quantiles at 16-bit draws from the item's generator.

def test_kernel_versions_are_recorded():
    versions = {name: kernel_version(name) for name in DISTORTIONS.names()}
    assert set(versions.values()) <= set(range(1, KERNEL_VERSION + 1))
    assert max(versions.values()) == KERNEL_VERSION


@pytest.mark.parametrize("shape, std, mean", [((5, 7), 7.3, 2.2), ((3, 3, 3), 0.13, 1.0), ((1,), 25.5, 0.0)])
def test_normal_samples_are_the_quantiles_at_16_bit_draws(shape, std, mean):
    count = int(np.prod(shape))
    words = np.random.default_rng(9).bit_generator.random_raw(-(-count // 4))
    draws = [(int(word) >> (16 * k)) & 0xFFFF for word in words for k in range(4)][:count]
    expected = [mean + std * NormalDist().inv_cdf((d + 0.5) / 2**16) for d in draws]
    samples = normal(np.random.default_rng(9), shape, std, mean)
    assert samples.dtype == np.float32 and samples.shape == shape
    assert samples.ravel().tolist() == pytest.approx(expected, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("bit_generator", [np.random.MT19937, np.random.Philox])
def test_normal_samples_are_normal_from_any_bit_generator(bit_generator):
    # MT19937's raw outputs are 32-bit: read as 64-bit words they would leave half the draws zero.
    samples = normal(np.random.Generator(bit_generator(1)), (256, 256), 1.0).astype(np.float64)
    assert abs(samples.mean()) < 5 / 256 and samples.var() == pytest.approx(1.0, abs=0.03)


def test_normal_samples_depend_on_the_generator_alone():
    before = cv2.getNumThreads()
    try:
        draws = []
        for threads, opencv_seed in ((1, 0), (2, 1), (8, 2)):
            cv2.setNumThreads(threads)
            cv2.setRNGSeed(opencv_seed)  # kernel 2 drew from OpenCV's generator; kernel 4 does not
            draws.append(normal(np.random.default_rng(3), (768, 1024, 3), 1.0).tobytes())
    finally:
        cv2.setNumThreads(before)
    assert draws[0] == draws[1] == draws[2]
    assert normal(np.random.default_rng(4), (768, 1024, 3), 1.0).tobytes() != draws[0]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_normal_samples_have_the_normals_moments_and_tails(seed):
    samples = normal(np.random.default_rng(seed), (256, 256), 1.0).astype(np.float64)
    assert abs(samples.mean()) < 5 / 256  # 5 standard errors of the mean of 65536 samples
    assert samples.var() == pytest.approx(1.0, abs=0.03)
    assert np.abs(samples).max() < 4.33  # the quantile at the middle of the last of 2^16 bins: 4.325


GREY = np.full((192, 256, 3), 128, dtype=np.uint8)
RGB_FROM_YCBCR = np.linalg.inv(np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0],
                                         [112.0, -93.786, -18.214]]) / 255)


@pytest.mark.parametrize("name, param, expected_std", [
    # Per channel, in grey levels, on a mid-grey image where nothing saturates.
    ("gaussian_noise", 0.001, [255 * np.sqrt(0.001)] * 3),
    ("multiplicative_noise", 0.05, [128 * 0.05] * 3),
    ("color_noise", 0.0005, 255 * np.sqrt(0.0005 * np.sum(RGB_FROM_YCBCR**2, axis=1))),
    ("spatially_correlated_noise", 0.001, [255 * np.sqrt(0.001)] * 3),
])
def test_noise_has_the_variance_of_its_formula_in_every_channel(name, param, expected_std):
    out = distort(GREY, name, param, np.random.default_rng(0)).reshape(-1, 3).astype(np.float64)
    # Rounding adds variance 1/12 per sample; 147k samples leave the std within ~0.5 %.
    std = np.sqrt(np.maximum(out.var(axis=0) - 1 / 12, 0))
    assert std == pytest.approx(expected_std, rel=0.03)
    # Correlated noise has fewer independent samples, hence the loose bound on the mean.
    assert out.mean(axis=0) == pytest.approx([128] * 3, abs=0.5)


# -- Kernel version 3: uint8 fixed point where float32 cost 4x, each against the formula it computes.

def _v3_color_saturation(image, param, rng):
    """Kernel 3's integer formula, written out: 10-bit gains, round half up, saturate."""
    fixed = np.rint(chroma_gain_fixed(param).astype(np.float64) * 2**FIXED_BITS).astype(np.int64)
    sums = image.reshape(-1, 3).astype(np.int64) @ fixed[:, :3].T + fixed[:, 3] + 2 ** (FIXED_BITS - 1)
    return np.clip(sums >> FIXED_BITS, 0, 255).astype(np.uint8).reshape(image.shape)


def _v2_color_saturation(image, param):
    return _v1_from_255(cv2.transform(image.astype(np.float32), chroma_gain_matrix(param)))


@settings(max_examples=60, deadline=None)
@given(images, st.floats(-1.5, 0.99))
def test_color_saturation_is_its_fixed_point_formula(image, chroma):
    # Odd widths and crops: OpenCV's vector loop and its scalar tail must compute the same formula.
    kernel = DISTORTIONS.get("color_saturation")
    for view in (image, image[:, 1:], image[1:, : image.shape[1] // 2 + 1]):
        out = kernel(np.ascontiguousarray(view), chroma, None)
        assert out.tobytes() == _v3_color_saturation(view, chroma, None).tobytes()
        assert np.abs(out.astype(int) - _v2_color_saturation(view, chroma)).max() <= 1


def test_color_saturation_moves_greys_as_the_float_map():
    # Gains that sum to exactly 1 leave a grey only the offset of its row (neutral at 0.5, not
    # 128/255, as the official code), which rounds as in float: no fixed-point drift along the greys.
    greys = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), 3, axis=2)
    greys = np.pad(greys, ((0, 16), (0, 16), (0, 0)), mode="wrap")
    for chroma in (0.4, 0.0, -0.4, -0.8, 0.37, -1.5):
        out = distort(greys, "color_saturation", chroma, None)
        assert out.tobytes() == _v2_color_saturation(greys, chroma).tobytes()




def _v2_chromatic_aberration(image, param, rng):
    shift, out = int(round(param)), image.copy()
    for channel, pixels in ((0, shift), (2, shift // 2)):
        if pixels:
            out[:, pixels:, channel] = image[:, :-pixels, channel]
    return out


def _assert_rounds_as_float_blur(out, image, ksize, sigma):
    """out is the float32 blur of `image` rounded, except where that value is within 1e-3 of a tie."""
    values = cv2.GaussianBlur(image.astype(np.float32), (ksize, ksize), sigmaX=sigma, sigmaY=sigma,
                              borderType=cv2.BORDER_REFLECT)
    off = out != _v1_from_255(values)
    assert np.all(np.abs(values[off] - np.floor(values[off]) - 0.5) < 1e-3)
    assert np.abs(out.astype(int) - _v1_from_255(values)).max() <= 1


@settings(max_examples=100, deadline=None)
@given(images, st.integers(1, 31), st.floats(1, 45))
def test_blurs_round_as_the_float32_gaussian_but_on_ties(image, shift, hsize):
    _assert_rounds_as_float_blur(distort(image, "chromatic_aberration", shift, None),
                                 _v2_chromatic_aberration(image, shift, None), 3, 0.5)
    _assert_rounds_as_float_blur(distort(image, "gaussian_blur", hsize, None), image, odd_size(hsize), hsize / 6)


@settings(max_examples=60, deadline=None)
@given(images, st.integers(0, 2**32 - 1), st.floats(0.005, 0.95))
def test_sparse_sampling_differs_from_kernel_1_only_where_the_wide_gaussian_fills_in(image, seed, share):
    new = distort(image, "sparse_sampling", share, np.random.default_rng(seed)).astype(int)
    old = _v1_sparse_sampling(image, share, np.random.default_rng(seed))
    kept = (np.random.default_rng(seed).random(image.shape[:2]) < share).astype(np.float32)
    wide = cv2.GaussianBlur(kept, (0, 0), 0.6 / np.sqrt(share), borderType=cv2.BORDER_REFLECT) < 1e-3
    assert np.all(new[~wide] == old[~wide])
    assert np.abs(new - old).max() <= 1
