"""Properties of the biased-annotator model (rankgen.annotators), for any scores and settings."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from scipy.stats import kendalltau

from rankgen import annotators as A
from rankgen.errors import RankgenError

# Scores mix arbitrary finite floats with a small pool so that ties (and -0.0 == 0.0) are common,
# and with neighbours one ulp apart that float rounding would otherwise merge.
POOL = [0.0, -0.0, 1.0, float(np.nextafter(1.0, 2.0)), 5e-324, 3.5, -2.0]
score = st.one_of(st.floats(-1e300, 1e300, allow_nan=False), st.sampled_from(POOL))


@st.composite
def problems(draw):
    n = draw(st.integers(1, 60))
    true = np.array(draw(st.lists(score, min_size=n, max_size=n)))
    refs = np.array([f"r{i}" for i in draw(st.lists(st.integers(0, 7), min_size=n, max_size=n))])
    mode = draw(st.sampled_from(A.ASSIGN_MODES))
    limit = n if mode == "random" else len(set(refs))
    lo = draw(st.floats(-10, 10))
    s = A.Settings(
        annotators=draw(st.integers(1, limit)),
        assign=mode,
        test_fraction=draw(st.floats(0, 0.9)),
        shift=draw(st.floats(0, 5)),
        warp=draw(st.floats(0, 3)),
        lo=lo,
        hi=lo + draw(st.floats(1e-3, 100)),
        seed=draw(st.integers(0, 2**40)),
    )
    return true, refs, s


def _signs(x):
    return np.sign(x[:, None] - x[None, :])


@hsettings(max_examples=300, deadline=None)
@given(problems())
def test_order_inside_each_annotator_is_the_true_order_ties_included(problem):
    true, refs, s = problem
    a = A.simulate(true, refs, s)
    for k in range(s.annotators):
        mine = a.annotator == k
        assert np.array_equal(_signs(true[mine]), _signs(a.score[mine]))


@hsettings(max_examples=300, deadline=None)
@given(problems())
def test_partition_split_and_range(problem):
    true, refs, s = problem
    a = A.simulate(true, refs, s)
    # Disjoint and covering: one id per item, every annotator gets items, balanced.
    counts = np.bincount(a.annotator, minlength=s.annotators)
    assert a.annotator.min() >= 0 and len(counts) == s.annotators and counts.min() >= 1
    if s.assign == "random":
        assert counts.max() - counts.min() <= 1
    else:
        for r in set(refs):
            assert len(set(a.annotator[refs == r])) == 1
    assert set(a.split) <= {A.TRAIN, A.TEST} and A.TRAIN in set(a.split)
    assert not set(refs[a.split == A.TRAIN]) & set(refs[a.split == A.TEST])
    assert np.all((a.score >= s.lo) & (a.score <= s.hi))
    if a.v_max > a.v_min:
        assert a.score.min() == s.lo and a.score.max() == s.hi
    # Knots define a strictly increasing warp for every annotator.
    assert np.all(np.diff(a.knots_y, axis=1) > 0)


@hsettings(max_examples=100, deadline=None)
@given(problems())
def test_same_seed_same_bytes(problem):
    true, refs, s = problem
    one, two = A.simulate(true, refs, s), A.simulate(true.copy(), refs.copy(), s)
    for name in ("annotator", "split", "score", "shift", "knots_y"):
        assert getattr(one, name).tobytes() == getattr(two, name).tobytes()
    assert (one.center, one.scale, one.v_min, one.v_max) == (two.center, two.scale, two.v_min, two.v_max)


def test_other_seed_other_draw_and_adding_annotators_keeps_warps():
    true = np.linspace(0, 1, 200)
    refs = np.array([f"r{i % 20}" for i in range(200)])
    base = A.simulate(true, refs, A.Settings(seed=1))
    assert not np.array_equal(base.score, A.simulate(true, refs, A.Settings(seed=2)).score)
    more = A.simulate(true, refs, A.Settings(seed=1, annotators=6))
    assert np.array_equal(more.knots_y[:4], base.knots_y)


def test_split_fraction_is_by_reference():
    refs = np.repeat([f"r{i}" for i in range(25)], 7)
    split = A.split_by_reference(refs, 0.2, np.random.default_rng(0))
    assert len(set(refs[split == A.TEST])) == 5 and (split == A.TEST).sum() == 35


def test_split_keeps_stereo_twins_together():
    # skimage's motorcycle_left/right show one scene: one view in train, the other in test is a leak.
    refs = np.repeat(["astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right"], 3)
    for seed in range(30):
        split = A.split_by_reference(refs, 0.4, np.random.default_rng(seed))
        assert split[refs == "motorcycle_left"][0] == split[refs == "motorcycle_right"][0]
        assert len(set(split[refs == "motorcycle_left"])) == 1


def test_shifts_are_separated():
    for seed in range(20):
        b = np.sort(A.draw_shifts(4, 1.0, np.random.default_rng(seed)))
        assert np.all(np.diff(b) >= 1.0 / 4 - 1e-12) and np.all(np.abs(b) <= 1)


def test_zero_warp_and_shift_is_the_global_affine_map():
    true = np.array([3.0, 1.0, 2.0, 2.0, 5.0])
    a = A.simulate(true, np.array(list("abcde")), A.Settings(annotators=2, shift=0, warp=0))
    np.testing.assert_allclose(a.score, (true - 1) / 4, atol=1e-12)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"assign": "reference", "annotators": 4}, "more than the 3 reference images"),
        ({"annotators": 10}, "more than the 9 items"),
        ({"annotators": 0}, "--annotators must be"),
        ({"lo": 1.0, "hi": 1.0}, "--range needs finite LO < HI"),
        ({"lo": 2.0, "hi": 1.0}, "--range needs finite LO < HI"),
        ({"test_fraction": 1.0}, "--test-fraction"),
        ({"warp": -1.0}, "--warp"),
        ({"shift": float("nan")}, "--shift"),
        ({"assign": "cluster"}, "--assign must be one of"),
    ],
)
def test_bad_settings_name_the_cause(change, message):
    true = np.arange(9.0)
    refs = np.repeat(["a", "b", "c"], 3)
    with pytest.raises(RankgenError, match=message):
        A.simulate(true, refs, A.Settings(**change))


def test_nan_score_is_named():
    with pytest.raises(RankgenError, match="item 1 .*'b'.* nan"):
        A.simulate(np.array([1.0, np.nan]), np.array(["a", "b"]), A.Settings(annotators=1))


def test_too_narrow_range_is_an_error():
    with pytest.raises(RankgenError, match="too narrow"):
        A.simulate(np.arange(5.0), np.array(list("abcde")), A.Settings(annotators=1, lo=0.0, hi=5e-324))


@hsettings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(0, 2)), min_size=0, max_size=40))
def test_measures_match_brute_force(rows):
    t = np.array([r[0] for r in rows], dtype=float)
    s = np.array([r[1] for r in rows], dtype=float)
    k = np.array([r[2] for r in rows], dtype=np.int64)
    tau = A.kendall_tau(t, s)
    expected = kendalltau(t, s).statistic if len(rows) > 1 else float("nan")
    assert (np.isnan(tau) and np.isnan(expected)) or tau == pytest.approx(expected)
    pairs = bad = 0
    for i, j in itertools.combinations(range(len(rows)), 2):
        if k[i] != k[j] and t[i] != t[j]:
            pairs += 1
            bad += np.sign(s[i] - s[j]) != np.sign(t[i] - t[j])
    rate, n = A.cross_contradiction(t, s, k)
    assert n == pairs and (rate == pytest.approx(bad / pairs) if pairs else np.isnan(rate))


def test_tau_is_exactly_one_for_preserved_order():
    x = np.repeat(np.arange(300.0), 3)
    assert A.kendall_tau(x, np.exp(x)) == 1.0
