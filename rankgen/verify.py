"""Proof that a `distort` corpus is ranked: full-reference scores of every series, its violations,
and a copy of the corpus without the violating series.

A series is one row of `tables/groups`: the reference (level 0) and levels 1..L-1 of one
distortion. Each level is scored against the reference with PSNR, SSIM (scikit-image) and the
distortion's registered `metric` (the measure in which it promises to fall strictly; PSNR cannot
see a pure brightness shift or a chroma rotation). A series violates the promise when its
registered metric does not fall strictly from each level to the next; PSNR and SSIM orders are
reported beside it, for information.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .corpus import Corpus, CorpusWriter
from .corpus import schema as S
from .distortions import DISTORTIONS, metric
from .errors import RankgenError
from .corpus import open_corpus
from .fr_metrics import psnr, ssim
from .pipeline import ordered_map

MEASURES = ("metric", "psnr", "ssim")


@dataclass(frozen=True)
class SeriesScores:
    """Scores of every series: arrays of shape (G, L), column 0 the reference against itself."""

    distortion: np.ndarray      # (G,) str
    metric_name: np.ndarray     # (G,) str: the registered metric used for each series
    scores: dict[str, np.ndarray]

    def violations(self, measure: str = "metric") -> np.ndarray:
        """(G,) bool: the measure does not fall strictly along levels 0..L-1."""
        values = self.scores[measure]
        return ~np.all(np.diff(values, axis=1) < 0, axis=1)


def metric_of(distortion: str) -> str:
    """The registered metric; psnr for names this rankgen does not know (a newer corpus)."""
    return DISTORTIONS.entry(distortion).info["metric"] if distortion in DISTORTIONS else "psnr"


def _score_series(job: tuple[str, tuple[int, ...], str]) -> list[tuple[float, float, float]]:
    path, members, metric_name = job
    corpus = open_corpus(path)
    measure = metric(metric_name)
    reference = corpus.image(members[0])
    out = []
    for index in members:
        image = corpus.image(index)
        if image.shape != reference.shape:
            raise RankgenError(f"{path}: item {index} is {image.shape}, its reference (item {members[0]}) is {reference.shape}")
        out.append((measure(reference, image), psnr(reference, image), ssim(reference, image)))
    return out


def score_series(corpus: Corpus, *, workers: int = 1) -> SeriesScores:
    """Score every complete series of a distort corpus (rows with -1 padding are refused)."""
    if corpus.kind != "distort":
        raise RankgenError(f"{corpus.path} is a {corpus.kind!r} corpus; verify checks distort corpora")
    groups = corpus.groups
    if groups.size and (groups < 0).any():
        raise RankgenError(f"{corpus.path}: groups have -1 padding; a distort corpus has only complete series")
    distortion = corpus.column("distortion")
    names = distortion[groups[:, 1]] if groups.shape[0] else np.array([], dtype=str)
    metric_names = np.array([metric_of(str(n)) for n in names], dtype=object)
    jobs = [(str(corpus.path), tuple(int(i) for i in row), str(m)) for row, m in zip(groups, metric_names)]
    try:
        results = list(ordered_map(_score_series, jobs, workers))
    finally:
        open_corpus.cache_clear()  # a handle kept open would read an old file once this path is rewritten
    table = np.array(results, dtype=np.float64).reshape(len(jobs), groups.shape[1], 3)
    scores = {name: table[:, :, k] for k, name in enumerate(MEASURES)}
    return SeriesScores(names.astype(str), metric_names.astype(str), scores)


@dataclass(frozen=True)
class Row:
    distortion: str
    tid: int
    metric: str
    series: int
    violations: int
    psnr_violations: int
    ssim_violations: int
    mean_metric: tuple[float, ...]   # per level 1..L-1


def summary(result: SeriesScores) -> list[Row]:
    """One row per distortion, in order of first appearance."""
    rows = []
    bad = {m: result.violations(m) for m in MEASURES}
    for name in dict.fromkeys(result.distortion.tolist()):
        mask = result.distortion == name
        tid = int(DISTORTIONS.entry(name).info["tid"]) if name in DISTORTIONS else 0
        rows.append(Row(name, tid, str(result.metric_name[mask][0]), int(mask.sum()), int(bad["metric"][mask].sum()),
                        int(bad["psnr"][mask].sum()), int(bad["ssim"][mask].sum()),
                        tuple(float(v) for v in result.scores["metric"][mask, 1:].mean(axis=0))))
    return rows


def drop_series(corpus: Corpus, drop: np.ndarray, output: str | Path, *, overwrite: bool = False,
                command: str = "") -> tuple[int, int]:
    """Write `corpus` without the series (group rows) where `drop` is True.

    Items that no remaining series uses are left out and item indices in the groups are remapped.
    Returns (series kept, items kept).
    """
    groups = corpus.groups
    drop = np.asarray(drop, dtype=bool)
    if drop.shape != (groups.shape[0],):
        raise ValueError(f"drop has shape {drop.shape}, the corpus has {groups.shape[0]} series")
    kept_groups = groups[~drop]
    used = np.zeros(len(corpus), dtype=bool)
    used[kept_groups[kept_groups >= 0]] = True
    kept_items = np.flatnonzero(used)
    new_index = np.full(len(corpus), -1, dtype=np.int64)
    new_index[kept_items] = np.arange(len(kept_items))
    remapped = np.where(kept_groups >= 0, new_index[np.maximum(kept_groups, 0)], -1).reshape(-1, groups.shape[1])

    file = corpus.file
    columns = {}
    for name in corpus.columns():
        dtype = file[S.ITEMS][name].dtype
        columns[name] = "str" if dtype.kind in "OSU" else dtype.name
    ragged = {name: corpus.ragged_spec(name) for name in corpus.ragged_names()}
    source = corpus.attrs
    digest = hashlib.sha256(str(source.get(S.ATTR_FINGERPRINT)).encode() + np.packbits(drop).tobytes()).hexdigest()[:16]
    attrs = {key: source[key] for key in (S.ATTR_SEED, S.ATTR_RECIPE, S.ATTR_PARAMS) if key in source}
    attrs[S.ATTR_COMMAND] = command
    attrs["verified_from"] = str(corpus.path)
    attrs["dropped_series"] = int(drop.sum())
    writer = CorpusWriter(output, corpus.kind, columns=columns, ragged=ragged, attrs=attrs, fingerprint=digest,
                          overwrite=overwrite, encoding=corpus.copy_encoding())
    with writer:
        start = writer.n_done
        values = {name: corpus.column(name) for name in columns}
        for count, old in enumerate(kept_items[start:], start=start):
            row = {name: values[name][old] for name in columns}
            row.update({name: corpus.ragged_for_copy(name, old, writer.encodings[name]) for name in ragged})
            writer.append([row])
            if count % 256 == 255:
                writer.commit()
        tables = {name: corpus.table(name) for name in corpus.tables() if name != S.GROUPS}
        tables[S.GROUPS] = remapped
        writer.finish(tables=tables)
    return int(remapped.shape[0]), int(len(kept_items))


def plot_curves(result: SeriesScores, path: str | Path) -> None:
    """Mean score per level, one panel per distortion: its registered metric (solid) and SSIM (dashed).

    Level 0 (the reference) is drawn where the score is finite; PSNR of the reference is infinite.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(result.distortion.tolist()))
    if not names:
        raise RankgenError("no series to plot")
    cols = 6
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        mask = result.distortion == name
        levels = np.arange(result.scores["metric"].shape[1])
        mean = result.scores["metric"][mask].mean(axis=0)
        finite = np.isfinite(mean)
        bad = int(result.violations("metric")[mask].sum())
        ax.plot(levels[finite], mean[finite], "o-", color="tab:blue")
        ax.set_ylabel(str(result.metric_name[mask][0]), color="tab:blue", fontsize=8)
        twin = ax.twinx()
        twin.plot(levels, result.scores["ssim"][mask].mean(axis=0), "s--", color="tab:orange", markersize=3)
        twin.set_ylim(0, 1.02)
        twin.tick_params(labelsize=7, colors="tab:orange")
        ax.tick_params(labelsize=7)
        ax.set_xticks(levels)
        tid = DISTORTIONS.entry(name).info["tid"] if name in DISTORTIONS else 0
        title = f"#{tid:02d} {name}" if tid else name
        ax.set_title(f"{title}\n{mask.sum()} series, {bad} violated", fontsize=8, color="red" if bad else "black")
    fig.suptitle("mean full-reference score per level (solid: registered metric, dashed: SSIM); level 0 = reference",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
