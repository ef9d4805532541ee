"""Evaluation metrics on numpy arrays (numpy only, so they are checked against scipy.stats).

Ties follow scipy: SROCC uses average ranks; in PRA a pair tied in the labels is not counted, and
a pair tied in the predictions but not in the labels counts half (neither order was predicted).

NaN follows scipy too: a NaN anywhere in the predictions (a diverged network) or predictions that
are all equal (a collapsed one, where correlation is undefined) give nan, never a score; model
selection then skips that epoch instead of keeping it.
"""

from __future__ import annotations

import numpy as np


def _rankdata(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), like scipy.stats.rankdata(method="average")."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    run = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    ends = np.r_[first[1:], len(x)]
    avg = (first + ends + 1) / 2.0
    ranks = np.empty(len(x))
    ranks[order] = avg[run]
    return ranks


def _undefined(*arrays) -> bool:
    """True when a statistic over these arrays is not defined: a NaN/inf, or no spread at all."""
    return any(not np.all(np.isfinite(a)) or len(a) < 2 or np.ptp(a) == 0 for a in arrays)


def plcc(y: np.ndarray, pred: np.ndarray) -> float:
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    if _undefined(y, pred):
        return float("nan")
    dy, dp = y - y.mean(), pred - pred.mean()
    denom = np.sqrt((dy**2).sum() * (dp**2).sum())
    return float((dy * dp).sum() / denom) if denom > 0 else float("nan")


lcc = plcc  # the ranking paper's name (Eq. 18) for the same statistic


def srocc(y: np.ndarray, pred: np.ndarray) -> float:
    if _undefined(np.asarray(y, np.float64), np.asarray(pred, np.float64)):
        return float("nan")
    return plcc(_rankdata(y), _rankdata(pred))


def pra(y: np.ndarray, pred: np.ndarray) -> float:
    """Fraction of label-ordered pairs whose predictions are in the same order (DCR Sec. 4.2.1)."""
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    if _undefined(pred) or not np.all(np.isfinite(y)):
        return float("nan")
    sy = np.sign(y[:, None] - y[None, :])
    sp = np.sign(pred[:, None] - pred[None, :])
    upper = np.triu(np.ones_like(sy, dtype=bool), 1) & (sy != 0)
    n = upper.sum()
    if n == 0:
        return float("nan")
    agree = (sy == sp)[upper].sum() + 0.5 * (sp == 0)[upper].sum()
    return float(agree / n)


def pra_groups(pred: np.ndarray, groups: np.ndarray) -> float:
    """PRA over the pairs inside each row of a groups table (column j is better than j+1)."""
    used = np.unique(groups[groups >= 0])
    if _undefined(np.asarray(pred, np.float64)[used]):
        return float("nan")
    agree = total = 0.0
    for row in groups:
        row = row[row >= 0]
        p = pred[row]
        diff = p[:, None] - p[None, :]
        upper = np.triu(np.ones(diff.shape, dtype=bool), 1)
        agree += (diff[upper] > 0).sum() + 0.5 * (diff[upper] == 0).sum()
        total += upper.sum()
    return float(agree / total) if total else float("nan")


def mae(y, pred) -> float:
    return float(np.mean(np.abs(np.asarray(y, np.float64) - np.asarray(pred, np.float64))))


def rmse(y, pred) -> float:
    """The counting papers call this MSE (Eq. 21); it is the root of the mean squared error."""
    return float(np.sqrt(np.mean((np.asarray(y, np.float64) - np.asarray(pred, np.float64)) ** 2)))


# Fewer items than this and an annotator's correlations are noise (PLCC of 2 points is always +-1).
MIN_PER_ANNOTATOR = 3


def per_annotator(y: np.ndarray, pred: np.ndarray, annotator: np.ndarray | None) -> dict[str, float]:
    """PRA, SROCC and PLCC on each annotator's items, then averaged (DCR Sec. 4.2).

    Annotators with fewer than MIN_PER_ANNOTATOR items are left out of the mean and counted in
    `annotators_excluded`; a nan of any kept annotator (a collapsed or diverged network) makes the
    mean nan rather than being skipped.
    """
    annotator = np.zeros(len(y), dtype=np.int64) if annotator is None else np.asarray(annotator)
    rows, excluded = [], 0
    for a in np.unique(annotator):
        sel = annotator == a
        if sel.sum() < MIN_PER_ANNOTATOR:
            excluded += 1
            continue
        rows.append((pra(y[sel], pred[sel]), srocc(y[sel], pred[sel]), plcc(y[sel], pred[sel])))
    m = np.mean(np.array(rows), axis=0) if rows else np.full(3, np.nan)
    return {"pra": float(m[0]), "srocc": float(m[1]), "plcc": float(m[2]), "annotators_excluded": excluded}


def labeled_scores(y: np.ndarray, pred: np.ndarray, annotator: np.ndarray | None,
                   true: np.ndarray | None = None) -> dict[str, float]:
    """What `train run` and `train eval` report on labeled items: per_annotator's means and, where the
    corpus has a true score (rankgen annotate's), LCC and SROCC against it (lcc_true, srocc_true)."""
    res = per_annotator(y, pred, annotator)
    if true is not None:
        res.update(lcc_true=lcc(true, pred), srocc_true=srocc(true, pred))
    return res


# Predictions whose standard deviation is below this (relative to their scale) carry no ranking:
# the DCR runs of issue #15 that collapsed had std <= 0.001 on targets in [0, 1].
COLLAPSE_STD = 1e-3


def collapsed(pred: np.ndarray) -> bool:
    pred = np.asarray(pred, np.float64)
    return bool(len(pred) > 1 and np.all(np.isfinite(pred))
                and pred.std() <= COLLAPSE_STD * max(1.0, float(np.abs(pred).mean())))
