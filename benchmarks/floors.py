"""Floors: the cheapest OpenCV/numpy implementation of each registered type's operation.

Each floor does the same work as the rankgen kernel (same draws, same filters, same codec calls) with
whatever is fastest, ignoring rankgen's exact rounding and seeding: uint8 OpenCV kernels with their
fixed-point approximations, one shared unseeded generator, one library call where there is one. A kernel's
ratio to its floor says how much speed is left on the table. Where the operation *is* one library call
(JPEG, JPEG 2000, non-local means, Pillow's quantizer, the codestream damage) the floor calls it too.
"""

from __future__ import annotations

import cv2
import numpy as np
import scipy.fft
import scipy.special
from PIL import Image

from rankgen.distortions import DISTORTIONS
from rankgen.distortions.colourspace import _YCBCR_TO_RGB, chroma_gain_matrix
from rankgen.distortions.compression import jpeg2000
from rankgen.distortions.noise import optimal_thresholds

FLOORS = {}


def floor(name):
    def register(fn):
        FLOORS[name] = fn
        return fn
    return register


_BITS = np.random.PCG64(0)
_QUANTILES = scipy.special.ndtri((np.arange(1 << 16) + 0.5) / (1 << 16)).astype(np.float32)


def _randn(shape, std, mean=0.0):
    """The fastest normal samples found (cv2.randn takes 1.4-1.5x as long: normal_samples.py): the normal's quantiles at
    16-bit raw draws from one shared generator, the table scaled before the lookup."""
    count = int(np.prod(shape))
    table = _QUANTILES * np.float32(std) + np.float32(mean)
    return np.take(table, _BITS.random_raw(-(-count // 4)).view(np.uint16)[:count]).reshape(shape)


@floor("gaussian_noise")
def _(img, p):
    return cv2.add(img, _randn(img.shape, 255 * np.sqrt(p)), dtype=cv2.CV_8U)


@floor("color_noise")
def _(img, p):
    noise = cv2.transform(_randn(img.shape, 255 * np.sqrt(p)), _YCBCR_TO_RGB.astype(np.float32))
    return cv2.add(img, noise, dtype=cv2.CV_8U)


@floor("spatially_correlated_noise")
def _(img, p):
    noise = cv2.GaussianBlur(_randn(img.shape, 255 * np.sqrt(p) * 2.5), (5, 5), 1.0)
    return cv2.add(img, noise, dtype=cv2.CV_8U)


@floor("masked_noise")
def _(img, p):
    luma = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    var = cv2.blur(luma * luma, (7, 7)) - cv2.blur(luma, (7, 7)) ** 2
    std = cv2.sqrt(np.maximum(var, 0))
    return cv2.add(img, _randn(img.shape, np.sqrt(p)) * std[:, :, None], dtype=cv2.CV_8U)


@floor("high_frequency_noise")
def _(img, p):
    noise = _randn(img.shape, 255 * np.sqrt(p))
    spectrum = scipy.fft.rfft2(noise, axes=(0, 1))
    spectrum[:3, :3] = 0
    return cv2.add(img, scipy.fft.irfft2(spectrum, s=img.shape[:2], axes=(0, 1)), dtype=cv2.CV_8U)


@floor("impulse_noise")
def _(img, p):
    draw = np.empty(img.shape, np.float32)
    cv2.randu(draw, (0,) * 3, (1,) * 3)
    out = img.copy()
    out[draw < p / 2] = 0
    out[(draw >= p / 2) & (draw < p)] = 255
    return out


@floor("quantization_noise")
def _(img, p):
    # No cheaper exact multi-level Otsu is known: histogram, the same DP, one table look-up.
    hist = np.bincount(img.ravel(), minlength=256).astype(np.float64)
    starts = optimal_thresholds(hist, int(p) + 1)
    return cv2.LUT(img, np.searchsorted(starts, np.arange(256), side="right").astype(np.uint8))


@floor("gaussian_blur")
def _(img, p):
    k = 2 * int(p // 2) + 1
    return cv2.GaussianBlur(img, (k, k), p / 6, borderType=cv2.BORDER_REFLECT)


@floor("image_denoising")
def _(img, p):
    sigma = 255 * np.sqrt(p + (25 / 255) ** 2)
    noisy = cv2.add(img, _randn(img.shape, sigma), dtype=cv2.CV_8U)
    return cv2.fastNlMeansDenoisingColored(noisy, None, sigma, sigma, 5, 11)


@floor("jpeg")
def _(img, p):
    _, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(p)])
    return cv2.imdecode(enc, cv2.IMREAD_COLOR)


@floor("non_eccentricity_noise")
def _(img, p):
    out, rng = img.copy(), np.random.default_rng(0)
    for top, left in rng.integers(0, 300, (int(p), 2)).tolist():
        out[top : top + 15, left : left + 15] = img[top + 5 : top + 20, left + 5 : left + 20]
    return out


@floor("block_wise")
def _(img, p):
    out, colour, rng = img.copy(), cv2.mean(img)[:3], np.random.default_rng(0)
    for top, left in rng.integers(0, 300, (int(p), 2)).tolist():
        out[top : top + 32, left : left + 32] = colour
    return out


for _name in ("mean_shift", "mean_shift_darker"):
    FLOORS[_name] = lambda img, p: cv2.add(img, (p, p, p, 0)) if p > 0 else cv2.subtract(img, (-p, -p, -p, 0))
for _name in ("contrast_decrease", "contrast_increase"):
    FLOORS[_name] = lambda img, p: cv2.convertScaleAbs(img, alpha=p)


@floor("color_saturation")
def _(img, p):
    return cv2.transform(img, chroma_gain_matrix(p))


@floor("multiplicative_noise")
def _(img, p):
    return cv2.multiply(img, _randn(img.shape, p, 1.0), dtype=cv2.CV_8U)


@floor("comfort_noise")
def _(img, p):
    coded = jpeg2000(img, p, None)
    lost = cv2.subtract(img, coded, dtype=cv2.CV_32F)
    energy = cv2.sqrt(cv2.GaussianBlur(lost * lost, (0, 0), 2.0))
    return cv2.add(coded, energy * _randn(img.shape, 1.0), dtype=cv2.CV_8U)


@floor("noisy_image_compression")
def _(img, p):
    return FLOORS["jpeg"](FLOORS["gaussian_noise"](img, 0.002), p)


@floor("color_quantization")
def _(img, p):
    picture = Image.fromarray(img, "RGB").quantize(colors=int(p), method=Image.Quantize.MEDIANCUT,
                                                    dither=Image.Dither.FLOYDSTEINBERG)
    return np.asarray(picture.convert("RGB"))


@floor("chromatic_aberration")
def _(img, p):
    out = img.copy()
    s = int(p)
    out[:, s:, 0] = img[:, :-s, 0]
    out[:, s // 2 :, 2] = img[:, : img.shape[1] - s // 2, 2]
    return cv2.GaussianBlur(out, (3, 3), 0.5, borderType=cv2.BORDER_REFLECT)


@floor("sparse_sampling")
def _(img, p):
    draw = np.empty(img.shape[:2], np.float32)
    cv2.randu(draw, 0, 1)
    kept = (draw < p).astype(np.float32)
    sigma = 0.6 / np.sqrt(p)
    num = cv2.GaussianBlur(img.astype(np.float32) * kept[:, :, None], (0, 0), sigma)
    den = cv2.GaussianBlur(kept, (0, 0), sigma)
    den = np.maximum(den, 1e-3)
    return cv2.divide(num, cv2.merge([den, den, den]), dtype=cv2.CV_8U)


def _disk(radius):
    size = 2 * int(np.ceil(radius)) + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)).astype(np.float32)
    return kernel / kernel.sum()


FLOORS["lens_blur"] = lambda img, p: cv2.filter2D(img, -1, _disk(p), borderType=cv2.BORDER_REPLICATE)


@floor("motion_blur")
def _(img, p):
    size = 2 * int(np.ceil(p)) + 1
    kernel = np.zeros((size, size), np.float32)
    cv2.line(kernel, (0, size - 1), (size - 1, 0), 1.0)
    return cv2.filter2D(img, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REPLICATE)


def _lab_u8(img, fn):
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
    return cv2.cvtColor(fn(lab), cv2.COLOR_LAB2RGB)


@floor("color_diffusion")
def _(img, p):
    def op(lab):
        lab[:, :, 1:] = cv2.GaussianBlur(lab[:, :, 1:], (0, 0), p)
        return lab
    return _lab_u8(img, op)


@floor("saturation_increase")
def _(img, p):
    table = np.clip(128 + (np.arange(256) - 128) * p, 0, 255).astype(np.uint8)
    return _lab_u8(img, lambda lab: cv2.LUT(lab, np.stack([np.arange(256, dtype=np.uint8), table, table], 1)[None]))


def _tone(img, exponent):
    # Float CIELAB, as the kernel: in uint8 CIELAB L* has 256 steps, and a power curve, steep near
    # black, stretches each dark step into a band of several grey levels: another operation. The
    # power by OpenCV's float32 cv2.pow, the cheapest there is (the kernel computes it in float64, so
    # that its bytes do not depend on the CPU; docs/distortions.md, "Kernel versions").
    lab = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = 100 * cv2.pow(lab[:, :, 0] / 100, exponent)
    return np.clip(np.rint(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB) * 255), 0, 255).astype(np.uint8)


FLOORS["brighten"] = lambda img, p: _tone(img, 1 / (1 + p))
FLOORS["darken"] = lambda img, p: _tone(img, 1 + p)


@floor("high_sharpen")
def _(img, p):
    def op(lab):
        light = lab[:, :, 0]
        lab[:, :, 0] = cv2.addWeighted(light, 1 + p, cv2.GaussianBlur(light, (0, 0), 1.0), -p, 0)
        return lab
    return _lab_u8(img, op)


@floor("color_shift")
def _(img, p):
    # The kernel's edge map too (until 2026-12 the floor skipped it): uint8 weight, uint8 blend.
    d = p / np.sqrt(2)
    green = cv2.extractChannel(img, 1)
    moved = cv2.warpAffine(green, np.float32([[1, 0, d], [0, 1, d]]), img.shape[1::-1])
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    edges = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    r = int(np.ceil(p))
    weight = cv2.dilate(cv2.convertScaleAbs(edges, alpha=255 / edges.max()),
                        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    out = img.copy()
    cv2.insertChannel(cv2.add(green, cv2.multiply(cv2.subtract(moved, green, dtype=cv2.CV_16S), weight,
                                                   scale=1 / 255, dtype=cv2.CV_16S), dtype=cv2.CV_8U), out, 1)
    return out


@floor("jitter")
def _(img, p):
    h, w = img.shape[:2]
    offsets = np.empty((h, w, 2), np.float32)
    cv2.randu(offsets, (-p, -p), (p, p))
    grid = np.dstack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
    return cv2.remap(img, grid + offsets, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@floor("pixelate")
def _(img, p):
    h, w = img.shape[:2]
    s = int(p)
    small = cv2.resize(img, (-(-w // s), -(-h // s)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (small.shape[1] * s, small.shape[0] * s), interpolation=cv2.INTER_NEAREST)[:h, :w]


@floor("color_block")
def _(img, p):
    out, rng = img.copy(), np.random.default_rng(0)
    for top, left in rng.integers(0, 300, (int(p), 2)).tolist():
        out[top : top + 32, left : left + 32] = rng.integers(0, 256, 3)
    return out


# The codestream types are their codec round trips: the floor is the kernel itself.
for _name in ("jpeg2000", "jpeg_transmission_errors", "jpeg2000_transmission_errors"):
    FLOORS[_name] = (lambda fn: lambda img, p: fn(img, p, np.random.default_rng(0)))(DISTORTIONS.get(_name))
