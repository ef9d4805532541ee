"""`rankgen annotate`: options around rankgen.jobs.annotate (the model, the listing and the writing)."""

from __future__ import annotations

import click

from ..annotators import ASSIGN_MODES
from ..fr_metrics import SCORES
from ..jobs.annotate import annotate as run_annotate
from ..jobs.annotate import report
from ..sources import SOURCES
from ..sources.labeled import AFEW_TARGETS
from . import main
from .common import (echo_summary, guarded, on_error_option, output_option, overwrite_option, progress_option,
                     seed_option, workers_option)


@main.command()
@click.option("--dataset", help="Labeled set: " + ", ".join(e.name for e in SOURCES if e.info.get("kind") == "scores")
              + ". See docs/annotators.md for each layout.")
@click.option("--root", type=click.Path(), help="Folder of the dataset (the CSV file for csv and csiq).")
@click.option("--target", type=click.Choice(AFEW_TARGETS), help="afew-va: which label to rank (default valence).")
@click.option("--from", "from_", type=click.Path(dir_okay=False),
              help="A rankgen distort corpus to score against its own references instead of --dataset.")
@click.option("--score", type=click.Choice(SCORES), default=None,
              help="With --from: the true score (ssim, psnr capped at 100 dB, or minus the level). Default ssim.")
@click.option("--annotators", "k", default=4, show_default=True, type=click.IntRange(min=1), help="Number of annotators K.")
@click.option("--assign", type=click.Choice(ASSIGN_MODES), default="random", show_default=True,
              help="random: items dealt out evenly; reference: all versions of one reference go to one annotator.")
@click.option("--test-fraction", default=0.2, show_default=True, type=float,
              help="Fraction of scenes (a reference with all its versions, or both views of a stereo pair) held out as the test split.")
@click.option("--shift", default=1.0, show_default=True, type=float,
              help="Spread of the annotators' mean shifts b_k, in standard deviations of the true scores.")
@click.option("--warp", default=0.5, show_default=True, type=float,
              help="Strength of each annotator's random monotone warp (0 = none); order within an annotator is kept.")
@click.option("--range", "range_", nargs=2, type=float, default=None,
              help="LO HI of the annotated scores. Default 0 1 (IQA) or -1 1 (affect: afew-va).")
@seed_option
@workers_option
@output_option("annotate.h5")
@overwrite_option
@on_error_option
@progress_option
@guarded
def annotate(dataset, root, target, from_, score, k, assign, test_fraction, shift, warp, range_, seed, workers,
             output, overwrite, on_error, quiet):
    """Re-annotate a scored set with K disjoint, biased annotators (the paper's Fig. 4 setting).

    Each item goes to exactly one annotator. Annotator k reports g_k(true) + b_k: a mean shift and
    a random strictly increasing warp, so its own items keep their true order exactly while items
    of different annotators do not. One affine map puts all scores into --range. Stored: image,
    true score, annotator, annotated score, train/test split by scene (stereo twins together), model parameters.
    Without --dataset or --from, a small distort corpus of scikit-image's photos is built and scored
    by SSIM, so this runs anywhere. Model and layouts: docs/annotators.md.

    \b
    Examples:
      rankgen annotate --annotators 4                                   # embedded default, no download
      rankgen annotate --dataset tid2013 --root ~/tid2013 --annotators 4 --seed 0 -o tid2013_4ann.h5
      rankgen annotate --dataset csv --root ~/my_scores.csv --range 0 1 --annotators 3 -o mine.h5
      rankgen annotate --from corpus.h5 --score psnr --annotators 4 -o corpus_4ann.h5
      rankgen preview tid2013_4ann.h5 -o hist.png                       # per-annotator histograms
    """
    summary = run_annotate(output, dataset=dataset, root=root, target=target, from_corpus=from_, score=score,
                           annotators=k, assign=assign, test_fraction=test_fraction, shift=shift, warp=warp,
                           score_range=range_, seed=seed, workers=workers, overwrite=overwrite, on_error=on_error,
                           progress=not quiet)
    echo_summary(summary, output)
    for line in report(output):
        click.echo(line)
