import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from train import metrics


def _data(seed, n=40, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    pred = y + rng.normal(scale=0.7, size=n)
    if ties:
        y, pred = np.round(y, 0), np.round(pred, 0)
    return y, pred


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_correlations_match_scipy(seed, ties):
    y, pred = _data(seed, ties=ties)
    assert metrics.srocc(y, pred) == pytest.approx(stats.spearmanr(y, pred).statistic, abs=1e-12)
    assert metrics.plcc(y, pred) == pytest.approx(stats.pearsonr(y, pred).statistic, abs=1e-12)
    assert metrics.lcc(y, pred) == metrics.plcc(y, pred)


@given(st.lists(st.integers(-3, 3), min_size=2, max_size=30))
@settings(max_examples=60, deadline=None)
def test_rankdata_matches_scipy(values):
    np.testing.assert_allclose(metrics._rankdata(np.array(values)), stats.rankdata(values))


def test_pra_equals_kendall_without_ties():
    y, pred = _data(1)
    assert metrics.pra(y, pred) == pytest.approx((1 + stats.kendalltau(y, pred).statistic) / 2)


@pytest.mark.parametrize("seed", range(3))
def test_pra_with_ties_matches_pair_loop(seed):
    y, pred = _data(seed, n=25, ties=True)
    agree = n = 0
    for i, j in itertools.combinations(range(len(y)), 2):
        if y[i] == y[j]:
            continue
        n += 1
        agree += 0.5 if pred[i] == pred[j] else float((y[i] > y[j]) == (pred[i] > pred[j]))
    assert metrics.pra(y, pred) == pytest.approx(agree / n)


def test_pra_groups():
    pred = np.array([3.0, 2.0, 1.0, 0.0, 5.0])
    groups = np.array([[0, 1, 2], [3, 4, -1]])
    assert metrics.pra_groups(pred, groups) == pytest.approx(3 / 4)


def test_mae_rmse():
    y, pred = _data(2)
    assert metrics.mae(y, pred) == pytest.approx(np.mean(np.abs(y - pred)))
    assert metrics.rmse(y, pred) == pytest.approx(np.sqrt(np.mean((y - pred) ** 2)))


def test_per_annotator_averages():
    y, pred = _data(3, n=40)
    ann = np.repeat([0, 1], 20)
    out = metrics.per_annotator(y, pred, ann)
    expect = np.mean([stats.spearmanr(y[ann == a], pred[ann == a]).statistic for a in (0, 1)])
    assert out["srocc"] == pytest.approx(expect)
    assert set(out) == {"pra", "srocc", "plcc", "annotators_excluded"} and out["annotators_excluded"] == 0


def test_per_annotator_leaves_out_tiny_subsets_and_says_how_many():
    y, pred = _data(4, n=22)
    ann = np.r_[np.zeros(20, int), [1, 1]]  # annotator 1 has 2 items: PLCC of 2 points is +-1
    out = metrics.per_annotator(y, pred, ann)
    assert out["annotators_excluded"] == 1
    assert out["plcc"] == pytest.approx(stats.pearsonr(y[:20], pred[:20]).statistic)
    assert np.isnan(metrics.per_annotator(y[:2], pred[:2], None)["plcc"])


@pytest.mark.parametrize("bad", ["nan", "constant", "one_nan"])
def test_undefined_predictions_give_nan_like_scipy(bad):
    import warnings

    y, pred = _data(5)
    pred = {"nan": np.full_like(pred, np.nan), "constant": np.full_like(pred, 0.3),
            "one_nan": np.where(np.arange(len(pred)) == 3, np.nan, pred)}[bad]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(stats.spearmanr(y, pred).statistic) and np.isnan(stats.pearsonr(y, pred).statistic)
    for fn in (metrics.srocc, metrics.plcc, metrics.pra):
        assert np.isnan(fn(y, pred)), fn.__name__
    assert np.isnan(metrics.pra_groups(pred, np.arange(len(pred)).reshape(-1, 4)))
    ann = np.repeat([0, 1], 20)
    assert all(np.isnan(v) for k, v in metrics.per_annotator(y, pred, ann).items() if k != "annotators_excluded")
