"""Density maps keep the count: every map sums to its number of heads, with any sigma, stride and resize."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankgen.crowd import density


def _points(rng, n, w, h):
    return np.column_stack([rng.uniform(0, w, n), rng.uniform(0, h, n)])


@settings(max_examples=60, deadline=None)
@given(st.integers(8, 300), st.integers(8, 300), st.integers(0, 60), st.sampled_from([15.0, 2.0, 0.7, "adaptive"]),
       st.sampled_from([1, 2, 8, 16]), st.integers(0, 2**31))
def test_sum_equals_count(w, h, n, sigma, stride, seed):
    pts = _points(np.random.default_rng(seed), n, w, h)
    d = density.density_map(pts, h, w, sigma)
    assert d.shape == (h, w) and d.dtype == np.float32 and (d >= 0).all()
    assert abs(float(d.sum(dtype=np.float64)) - n) < 1e-3
    pooled = density.sum_pool(d, stride)
    assert pooled.shape == (-(-h // stride), -(-w // stride))
    assert abs(float(pooled.sum(dtype=np.float64)) - n) < 1e-3


def test_border_heads_keep_their_mass():
    d = density.density_map(np.array([[0.1, 0.1], [99.9, 49.9]]), 50, 100, 15.0)
    assert abs(d.sum() - 2) < 1e-5
    assert d[0, 0] > d[10, 10]


def test_kernel_is_centred_and_has_sigma():
    d = density.density_map(np.array([[50.5, 40.5]]), 81, 101, 5.0).astype(np.float64)
    yy, xx = np.mgrid[0:81, 0:101] + 0.5
    assert abs((d * xx).sum() - 50.5) < 1e-6 and abs((d * yy).sum() - 40.5) < 1e-6
    assert abs(np.sqrt((d * (xx - 50.5) ** 2).sum()) - 5.0) < 0.1


def test_many_heads_large_image_sum():
    rng = np.random.default_rng(0)
    pts = _points(rng, 3000, 1500, 1000)
    for sigma in (15.0, "adaptive"):
        d = density.density_map(pts, 1000, 1500, sigma)
        assert abs(float(d.sum(dtype=np.float64)) - 3000) < 1e-3
        assert abs(float(density.sum_pool(d, 8).sum(dtype=np.float64)) - 3000) < 1e-3


def test_adaptive_sigmas_follow_neighbours_and_are_capped():
    pts = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5000, 5000]], float)
    sig = density.adaptive_sigmas(pts)
    assert sig[0] == pytest.approx(0.3 * (10 + 10 + np.sqrt(200)) / 3)
    assert sig[-1] == density.ADAPTIVE_MAX
    assert density.adaptive_sigmas(np.array([[1.0, 1.0], [1.0, 1.0]])).tolist() == [density.ADAPTIVE_MIN] * 2
    assert density.adaptive_sigmas(np.array([[3.0, 4.0]])).tolist() == [density.SIGMA]


def test_clean_points_drops_outside_and_nan():
    pts, dropped = density.clean_points([[0, 0], [99.99, 49], [100, 10], [-0.1, 3], [np.nan, 2], [5, 50]], 100, 50)
    assert dropped == 4 and pts.tolist() == [[0, 0], [99.99, 49]]


def test_fit_max_side_scales_points_with_the_image():
    img = np.zeros((1500, 3000, 3), np.uint8)
    pts = np.array([[2999.0, 1499.0], [0.0, 0.0], [1500.0, 750.0]])
    small, spts = density.fit_max_side(img, pts, 1024)
    assert small.shape == (512, 1024, 3)
    np.testing.assert_allclose(spts, pts * 1024 / 3000)
    same, same_pts = density.fit_max_side(img, pts, 4000)
    assert same is img and same_pts is pts
