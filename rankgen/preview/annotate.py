"""Per-annotator score histograms (the DCR paper's Fig. 4) of an annotate corpus."""

from __future__ import annotations

import numpy as np

from ..corpus import Corpus
from . import PREVIEWS


@PREVIEWS.register("annotate")
def annotator_histograms(corpus: Corpus, out_path, bins: int | None = None, **_) -> None:
    """Left: per-annotator histograms of annotated scores (the paper's Fig. 4). Right: annotated
    against true score, one colour per annotator: each is an increasing curve, offset by its bias."""
    from matplotlib.figure import Figure

    score, true, annotator = corpus.column("score"), corpus.column("true_score"), corpus.column("annotator")
    shift = corpus.table("annotator_shift")
    model_attrs = corpus.attrs.get("annotator_model", {})
    lo, hi = model_attrs.get("lo", score.min()), model_attrs.get("hi", score.max())
    # About two bins per sqrt(items per annotator): 20 for 100 items each, 50 for TID2013's 750.
    bins = bins or int(np.clip(2 * np.sqrt(len(score) / len(shift)), 10, 50))
    edges = np.linspace(lo, hi, bins + 1)
    fig = Figure(figsize=(11, 4.2), dpi=110)
    left, right = fig.subplots(1, 2)
    for j in range(len(shift)):
        mine = annotator == j
        colour = f"C{j % 10}"
        left.hist(score[mine], bins=edges, histtype="stepfilled", alpha=0.35, color=colour)
        left.hist(score[mine], bins=edges, histtype="step", linewidth=1.5, color=colour,
                  label=f"annotator {j}: n={mine.sum()}, mean {score[mine].mean():.3f}, b={shift[j]:+.2f}")
        right.scatter(true[mine], score[mine], s=6, alpha=0.6, color=colour, label=f"annotator {j}")
    left.set(xlabel="annotated score", ylabel="items", title="Annotated score per annotator")
    left.legend(fontsize=7, loc="upper left")
    right.set(xlabel="true score (higher = better)", ylabel="annotated score", title="Annotated vs true score")
    right.legend(fontsize=7, loc="upper left", markerscale=2)
    fig.suptitle(f"{corpus.path.name}: {len(score)} items, {len(shift)} disjoint annotators", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_path)
