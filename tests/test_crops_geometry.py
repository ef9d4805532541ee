"""Algorithm 2 as pure geometry: properties that must hold for every image size, k, s, r and seed."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankgen.crowd import crops
from rankgen.errors import RankgenError
from rankgen.seeding import rng_for
from rankgen.sources.crowd import read_crowd, synthetic

sizes = st.integers(min_value=8, max_value=5000)
ks = st.integers(min_value=2, max_value=9)
ss = st.floats(min_value=0.05, max_value=0.99)
rs = st.floats(min_value=1.0, max_value=50.0)
seeds = st.integers(min_value=0, max_value=2**32)


@settings(max_examples=400, deadline=None)
@given(sizes, sizes, ks, ss, rs, seeds)
def test_float_boxes_nested_inside_image_and_scaled_by_s(w, h, k, s, r, seed):
    cs = crops.crop_set(w, h, k, s, r, rng_for(seed, "geometry"))
    ax0, ay0, ax1, ay1 = crops.anchor_region(w, h, r)
    assert ax0 <= cs.anchor[0] <= ax1 and ay0 <= cs.anchor[1] <= ay1
    b = cs.boxes
    eps = 1e-9 * max(w, h)
    assert (b[:, 0] >= -eps).all() and (b[:, 1] >= -eps).all() and (b[:, 2] <= w + eps).all() and (b[:, 3] <= h + eps).all()
    assert (b[1:, :2] >= b[:-1, :2] - eps).all() and (b[1:, 2:] <= b[:-1, 2:] + eps).all()
    side = b[:, 2] - b[:, 0]
    np.testing.assert_allclose(side, b[:, 3] - b[:, 1], atol=eps)
    np.testing.assert_allclose(side[1:], side[:-1] * s, rtol=1e-9, atol=eps)
    np.testing.assert_allclose((b[:, 0] + b[:, 2]) / 2, cs.anchor[0], atol=eps)
    # The largest square touches the nearest image border: it is the largest one that fits.
    assert min(b[0, 0], b[0, 1], w - b[0, 2], h - b[0, 3]) <= eps


@settings(max_examples=400, deadline=None)
@given(sizes, sizes, ks, ss, rs, seeds)
def test_integer_boxes_nested_square_inside_image_and_close_to_float(w, h, k, s, r, seed):
    cs = crops.crop_set(w, h, k, s, r, rng_for(seed, "geometry"))
    ib = cs.iboxes
    assert ib.dtype == np.int64
    assert (ib[:, :2] >= 0).all() and (ib[:, 2] <= w).all() and (ib[:, 3] <= h).all()
    assert (ib[1:, :2] >= ib[:-1, :2]).all() and (ib[1:, 2:] <= ib[:-1, 2:]).all()
    n = ib[:, 2] - ib[:, 0]
    assert (n == ib[:, 3] - ib[:, 1]).all() and (n >= 0).all()
    np.testing.assert_array_equal(n, np.clip(np.floor(cs.boxes[:, 2] - cs.boxes[:, 0] + 0.5), 0, None))
    assert np.abs(ib - cs.boxes).max() <= 0.75 + 1e-9


def test_same_seed_same_crop_set_and_r_divides_sides():
    a = crops.crop_set(640, 480, 5, 0.75, 8, rng_for(3, "x"))
    b = crops.crop_set(640, 480, 5, 0.75, 8, rng_for(3, "x"))
    assert a.anchor == b.anchor and (a.iboxes == b.iboxes).all()
    x0, y0, x1, y1 = crops.anchor_region(640, 480, 8)
    assert (x1 - x0, y1 - y0) == (80, 60) and (x0 + x1, y0 + y1) == (640, 480)


def test_anchor_fills_its_region():
    rng = rng_for(0, "fill")
    pts = np.array([crops.draw_anchor(800, 400, 4, rng) for _ in range(4000)])
    assert pts[:, 0].min() < 301 and pts[:, 0].max() > 499 and pts[:, 1].min() < 151 and pts[:, 1].max() > 249


def test_counts_never_increase_along_thousands_of_sets():
    """The whole point of Algorithm 2, checked with true head points and the integer boxes."""
    checked = 0
    for item in synthetic(n_images=6, height=192, width=256):
        image, points, _ = read_crowd(item)
        h, w = image.shape[:2]
        for j in range(500):
            cs = crops.crop_set(w, h, 6, 0.7, float(1 + j % 10), rng_for(1, item.id, j))
            counts = crops.points_in_boxes(points, cs.iboxes)
            assert (np.diff(counts) <= 0).all(), (item.id, j, counts)
            checked += 1
    assert checked == 3000


def test_points_in_boxes_is_half_open():
    counts = crops.points_in_boxes(np.array([[0, 0], [9.999, 5], [10, 5], [5, 10]]), np.array([[0, 0, 10, 10]]))
    assert counts.tolist() == [2]


@pytest.mark.parametrize("n,size", [(300, 224), (100, 224), (224, 224), (40, 8), (1, 8)])
def test_cut_resizes_to_size(n, size):
    image = np.random.default_rng(0).integers(0, 256, (320, 330, 3), dtype=np.uint8)
    patch = crops.cut(image, (3, 5, 3 + n, 5 + n), size)
    assert patch.shape == (size, size, 3) and patch.dtype == np.uint8
    if n == size:
        assert (patch == image[5 : 5 + n, 3 : 3 + n]).all()


def test_cut_downscale_averages(photo):
    # INTER_AREA on an exact 2x reduction is the mean of each 2x2 block.
    patch = crops.cut(photo, (0, 0, 64, 64), 32).astype(int)
    block = photo[:64, :64].astype(float).reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.abs(patch - block).max() <= 1


@pytest.mark.parametrize("args,word", [
    ((1, 0.75, 8, 224), "--k"), ((5, 1.0, 8, 224), "--s"), ((5, 0.0, 8, 224), "--s"),
    ((5, 0.75, 0.5, 224), "--r"), ((5, 0.75, 8, 4), "--size"), ((2.5, 0.75, 8, 224), "--k"),
])
def test_validate_names_the_argument(args, word):
    with pytest.raises(RankgenError, match=word):
        crops.validate(*args)


def test_smallest_side_bounds():
    assert crops.best_smallest_side(400, 300, 5, 0.5) == 300 / 16
    assert crops.worst_smallest_side(400, 300, 5, 0.5, 1) == 0
    for seed in range(200):
        cs = crops.crop_set(400, 300, 5, 0.5, 4, rng_for(seed, "b"))
        side = cs.boxes[-1, 2] - cs.boxes[-1, 0]
        assert crops.worst_smallest_side(400, 300, 5, 0.5, 4) - 1e-9 <= side <= crops.best_smallest_side(400, 300, 5, 0.5) + 1e-9
