"""The disjoint biased-annotator model (paper: Disjoint Contrastive Regression, sections 3.1 and 4.1.2).

Pure numpy: true scores (higher = better) in, a disjoint assignment to K simulated annotators, a
train/test split by reference, and annotated scores out. Annotator k sees g_k(z) + b_k, where z is
the standardized true score, g_k a random strictly increasing piecewise-linear warp and b_k a mean
shift; one global affine map puts every annotated score into the task range. So the order inside
one annotator is exactly the true order (ties stay ties) while the order across annotators is not.
The formulas are in docs/annotators.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import RankgenError
from .seeding import rng_for
from .sources import scene_of

ASSIGN_MODES = ("random", "reference")
TRAIN, TEST = "train", "test"

# The warp is defined on standardized scores: knots every 0.5 sigma over [-3, 3], identity outside,
# so the warp perturbs the bulk of the distribution locally without moving its ends.
WARP_HALF_WIDTH = 3.0
WARP_SEGMENTS = 12
KNOTS_X = np.linspace(-WARP_HALF_WIDTH, WARP_HALF_WIDTH, WARP_SEGMENTS + 1)


@dataclass(frozen=True)
class Settings:
    annotators: int = 4
    assign: str = "random"
    test_fraction: float = 0.2
    shift: float = 1.0
    warp: float = 0.5
    lo: float = 0.0
    hi: float = 1.0
    seed: int = 0

    def validate(self) -> None:
        if isinstance(self.annotators, bool) or not isinstance(self.annotators, (int, np.integer)) or self.annotators < 1:
            raise RankgenError(f"--annotators must be a whole number >= 1, got {self.annotators!r}")
        if self.assign not in ASSIGN_MODES:
            raise RankgenError(f"--assign must be one of {', '.join(ASSIGN_MODES)}, got {self.assign!r}")
        if not (math.isfinite(self.test_fraction) and 0 <= self.test_fraction < 1):
            raise RankgenError(f"--test-fraction must be in [0, 1), got {self.test_fraction!r}")
        if not (math.isfinite(self.shift) and self.shift >= 0):
            raise RankgenError(f"--shift must be a finite number >= 0, got {self.shift!r}")
        if not (math.isfinite(self.warp) and self.warp >= 0):
            raise RankgenError(f"--warp must be a finite number >= 0, got {self.warp!r}")
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and self.lo < self.hi):
            raise RankgenError(f"--range needs finite LO < HI, got {self.lo!r} {self.hi!r}")


@dataclass(frozen=True)
class Annotation:
    """Per item: annotator id, split, annotated score. Per annotator: the drawn parameters."""

    annotator: np.ndarray  # (n,) int64
    split: np.ndarray      # (n,) str, TRAIN or TEST
    score: np.ndarray      # (n,) float64 in [lo, hi]
    shift: np.ndarray      # (K,) float64, b_k in units of the true scores' standard deviation
    knots_y: np.ndarray    # (K, WARP_SEGMENTS + 1) float64, g_k(KNOTS_X)
    center: float          # true scores are standardized as z = (t - center) / scale
    scale: float
    v_min: float           # g_k(z) + b_k over all items is mapped affinely from [v_min, v_max] to [lo, hi]
    v_max: float


def assign(refs: np.ndarray, k: int, mode: str, rng: np.random.Generator) -> np.ndarray:
    """A disjoint, covering partition of the items into k annotators, balanced by item count."""
    n = len(refs)
    if mode == "random":
        if k > n:
            raise RankgenError(f"--annotators {k} is more than the {n} items; every annotator needs at least one")
        out = np.empty(n, dtype=np.int64)
        out[rng.permutation(n)] = np.arange(n) % k
        return out
    names, inverse, counts = np.unique(refs, return_inverse=True, return_counts=True)
    if k > len(names):
        raise RankgenError(
            f"--annotators {k} is more than the {len(names)} reference images; with --assign reference each "
            "annotator needs a whole reference. Use fewer annotators or --assign random."
        )
    # Greedy in random reference order: each reference goes to the annotator with the fewest items
    # so far, so clips or references of unequal size still give balanced annotators.
    load = np.zeros(k, dtype=np.int64)
    owner = np.empty(len(names), dtype=np.int64)
    for r in rng.permutation(len(names)):
        owner[r] = int(np.argmin(load))
        load[owner[r]] += counts[r]
    return owner[inverse]


def split_by_reference(refs: np.ndarray, test_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """TRAIN/TEST per item; all versions of one scene (a reference, or both views of a stereo pair:
    sources.scene_of) land in the same split, so none leaks."""
    names, inverse = np.unique([scene_of(r) for r in refs], return_inverse=True)
    n_test = round(test_fraction * len(names))
    if test_fraction > 0:
        n_test = max(n_test, 1)
    n_test = min(n_test, len(names) - 1)
    is_test = np.zeros(len(names), dtype=bool)
    is_test[rng.permutation(len(names))[:n_test]] = True
    return np.where(is_test[inverse], TEST, TRAIN)


def draw_shifts(k: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """b_k: one stratum of [-spread, spread] per annotator, in random order, jittered inside its middle.

    Stratifying keeps any two annotators at least spread / k apart, so every seed gives visibly
    separated annotators (plain uniform draws sometimes put two on top of each other).
    """
    centers = -1 + (2 * rng.permutation(k) + 1) / k
    jitter = rng.uniform(-0.5, 0.5, size=k) / k
    return spread * (centers + jitter)


def draw_warp(warp: float, rng: np.random.Generator) -> np.ndarray:
    """g_k at KNOTS_X: positive log-normal increments rescaled to span [-3, 3], so g_k is strictly increasing."""
    steps = np.exp(warp * rng.standard_normal(WARP_SEGMENTS))
    y = np.concatenate([[0.0], np.cumsum(steps)])
    return KNOTS_X[0] + (KNOTS_X[-1] - KNOTS_X[0]) * y / y[-1]


def apply_warp(z: np.ndarray, knots_y: np.ndarray) -> np.ndarray:
    inside = np.interp(z, KNOTS_X, knots_y)
    return np.where(z < KNOTS_X[0], z, np.where(z > KNOTS_X[-1], z, inside))


def standardize(true: np.ndarray) -> tuple[np.ndarray, float, float]:
    """z = (t - center) / scale with center the mean and scale the standard deviation.

    The scores are first divided by their largest magnitude so that mean and variance cannot
    overflow for any finite input; constant scores give z = 0.
    """
    peak = float(np.max(np.abs(true))) if len(true) else 0.0
    peak = peak or 1.0
    t = true / peak
    center = float(np.mean(t))
    spread = float(np.std(t))
    if spread == 0 or not math.isfinite(spread):
        return np.zeros_like(t), center * peak, 0.0
    return (t - center) / spread, center * peak, spread * peak


def to_range(v: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, float, float]:
    v_min, v_max = float(np.min(v)), float(np.max(v))
    if v_max == v_min:
        return np.full_like(v, lo + (hi - lo) / 2), v_min, v_max
    p = (v - v_min) / (v_max - v_min)
    out = np.clip(lo + (hi - lo) * p, lo, hi)
    out[v == v_max] = hi  # lo + (hi - lo) can round below hi; the extremes land exactly on the ends
    return out, v_min, v_max


def enforce_order(true: np.ndarray, score: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Make `score` a strictly increasing function of `true` (ties stay ties), within [lo, hi].

    The model is strictly increasing in exact arithmetic, but float rounding can merge two true
    scores that differ by less than the resolution of the warped scale, or swap them by one ulp
    at a warp knot. Such neighbours are separated by single ulps, which changes nothing else.
    """
    order = np.argsort(true, kind="stable")
    t, s = true[order], score[order]
    first = np.concatenate([[True], t[1:] != t[:-1]])
    values = s[first]
    if np.all(values[1:] > values[:-1]):
        return score
    fixed = values.copy()
    for j in range(1, len(fixed)):
        fixed[j] = max(fixed[j], np.nextafter(fixed[j - 1], np.inf))
    fixed[-1] = min(fixed[-1], hi)
    for j in range(len(fixed) - 2, -1, -1):
        fixed[j] = min(fixed[j], np.nextafter(fixed[j + 1], -np.inf))
    if fixed[0] < lo:
        raise RankgenError(f"--range {lo!r} {hi!r} is too narrow to hold {len(fixed)} distinct scores")
    out = np.empty_like(score)
    out[order] = fixed[np.cumsum(first) - 1]
    return out


def simulate(true: np.ndarray, refs: np.ndarray, settings: Settings) -> Annotation:
    """Assign, split and annotate. Every random draw comes from rng_for(seed, "annotate", ...)."""
    settings.validate()
    true = np.asarray(true, dtype=np.float64)
    refs = np.asarray(refs, dtype=str)
    if true.ndim != 1 or refs.shape != true.shape:
        raise ValueError("true scores and refs must be 1-D and of equal length")
    if len(true) == 0:
        raise RankgenError("no scored items to annotate")
    bad = np.flatnonzero(~np.isfinite(true))
    if len(bad):
        raise RankgenError(f"true score of item {int(bad[0])} (ref {refs[bad[0]]!r}) is {true[bad[0]]}; every score must be a finite number")
    k, seed = int(settings.annotators), settings.seed
    annotator = assign(refs, k, settings.assign, rng_for(seed, "annotate", "assign"))
    split = split_by_reference(refs, settings.test_fraction, rng_for(seed, "annotate", "split"))
    shift = draw_shifts(k, settings.shift, rng_for(seed, "annotate", "shift"))
    knots_y = np.stack([draw_warp(settings.warp, rng_for(seed, "annotate", "warp", j)) for j in range(k)])
    z, center, scale = standardize(true)
    v = np.empty_like(z)
    for j in range(k):
        mine = annotator == j
        v[mine] = apply_warp(z[mine], knots_y[j]) + shift[j]
    score, v_min, v_max = to_range(v, settings.lo, settings.hi)
    for j in range(k):
        mine = annotator == j
        score[mine] = enforce_order(true[mine], score[mine], settings.lo, settings.hi)
    return Annotation(annotator, split, score, shift, knots_y, center, scale, v_min, v_max)


# -- measures for the report -----------------------------------------------------------------


def _ties(x: np.ndarray) -> int:
    _, counts = np.unique(x, return_counts=True)
    return int(np.sum(counts * (counts - 1) // 2))


def _pair_counts(x: np.ndarray, y: np.ndarray) -> tuple[int, int, int]:
    """(concordant, discordant, pairs with x_i != x_j) in O(n log n) with a Fenwick tree over ranks of y."""
    n = len(x)
    _, ry = np.unique(y, return_inverse=True)
    order = np.lexsort((ry, x))
    xs, ys = x[order], (ry[order] + 1).tolist()
    starts = np.flatnonzero(np.concatenate([[True], xs[1:] != xs[:-1], [True]])).tolist()
    size = max(ys, default=0)
    tree = [0] * (size + 1)
    concordant = discordant = inserted = 0
    for a, b in zip(starts[:-1], starts[1:]):
        group = ys[a:b]
        for r in group:  # compare with items of strictly smaller x only: the group is inserted after
            below, i = 0, r - 1
            while i > 0:
                below += tree[i]
                i -= i & -i
            at_or_below, i = 0, r
            while i > 0:
                at_or_below += tree[i]
                i -= i & -i
            concordant += below
            discordant += inserted - at_or_below
        for r in group:
            i = r
            while i <= size:
                tree[i] += 1
                i += i & -i
        inserted += len(group)
    return concordant, discordant, n * (n - 1) // 2 - _ties(x)


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b; exactly 1.0 when y orders the items exactly as x does, ties included."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    c, d, untied_x = _pair_counts(x, y)
    untied_y = len(y) * (len(y) - 1) // 2 - _ties(y)
    if untied_x == 0 or untied_y == 0:
        return float("nan")
    # Equal tie structure gives an exact 1.0 instead of a rounded square root of a square.
    denominator = untied_x if untied_x == untied_y else math.sqrt(untied_x * untied_y)
    return (c - d) / denominator


def cross_contradiction(true: np.ndarray, score: np.ndarray, annotator: np.ndarray) -> tuple[float, int]:
    """Among pairs from different annotators with different true scores: the fraction whose
    annotated order is not the true order (reversed or tied), and the number of such pairs."""
    true, score = np.asarray(true, dtype=np.float64), np.asarray(score, dtype=np.float64)
    c, _, pairs = _pair_counts(true, score)
    for j in np.unique(annotator):
        mine = annotator == j
        cj, _, pj = _pair_counts(true[mine], score[mine])
        c, pairs = c - cj, pairs - pj
    if pairs == 0:
        return float("nan"), 0
    return (pairs - c) / pairs, pairs


def per_annotator(true: np.ndarray, score: np.ndarray, annotator: np.ndarray, k: int) -> list[dict]:
    rows = []
    for j in range(k):
        mine = annotator == j
        s = score[mine]
        rows.append({
            "annotator": j,
            "count": int(mine.sum()),
            "mean": float(s.mean()) if len(s) else float("nan"),
            "std": float(s.std()) if len(s) else float("nan"),
            "tau": kendall_tau(true[mine], s),
        })
    return rows
