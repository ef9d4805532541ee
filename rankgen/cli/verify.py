"""`rankgen verify`: prove that every series of a distort corpus is ranked."""

from __future__ import annotations

import math

import click

from . import main
from ..pipeline import resolve_workers
from .common import command_line, guarded, overwrite_option, workers_option


def _fmt(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.4g}"


@main.command()
@click.argument("corpus", type=click.Path(dir_okay=False))
@click.option("--max-violations", default=0, show_default=True, type=click.IntRange(min=0),
              help="Exit with status 1 when more series than this are out of order.")
@click.option("--drop", is_flag=True, help="Write the corpus without the violating series to -o.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Corpus written by --drop.")
@click.option("--plot", type=click.Path(dir_okay=False), help="PNG of the mean score per level of every distortion.")
@workers_option
@overwrite_option
@guarded
def verify(corpus, max_violations, drop, output, plot, workers, overwrite):
    """Score every series of a distort corpus against its reference and report the unranked ones.

    Each level is compared with the reference (level 0) by PSNR, SSIM and the distortion's
    registered metric (docs/distortions.md); a series is violated when that metric does not fall
    strictly from level to level. Prints one table row per distortion (violations / series) and
    exits with status 1 above --max-violations.

    \b
    Examples:
      rankgen verify corpus.h5
      rankgen verify corpus.h5 --plot curves.png
      rankgen verify corpus.h5 --max-violations 3 --drop -o ranked.h5
    """
    from ..corpus import Corpus
    from ..errors import RankgenError
    from ..verify import drop_series, plot_curves, score_series, summary

    if drop and not output:
        raise RankgenError("--drop needs -o/--output: the corpus to write without the violating series")
    if output and not drop:
        raise RankgenError("-o/--output is only written with --drop")
    source = Corpus(corpus, kind="distort")
    result = score_series(source, workers=resolve_workers(workers))
    rows = summary(result)
    levels = result.scores["metric"].shape[1]
    click.echo(f"{'tid':>3}  {'distortion':28s} {'metric':15s} {'violated':>9s}  {'psnr':>5s} {'ssim':>5s}  "
               f"mean metric, levels 1..{levels - 1}")
    for r in rows:
        click.echo(f"{r.tid:3d}  {r.distortion:28s} {r.metric:15s} {r.violations:4d}/{r.series:<4d}  "
                   f"{r.psnr_violations:5d} {r.ssim_violations:5d}  {' '.join(_fmt(v) for v in r.mean_metric)}")
    bad = result.violations()
    click.echo(f"{int(bad.sum())} of {len(bad)} series out of order in their metric "
               f"(psnr, ssim columns: series out of order in those, for information)")
    if plot:
        plot_curves(result, plot)
        click.echo(f"wrote {plot}")
    if drop:
        series, items = drop_series(source, bad, output, overwrite=overwrite, command=command_line())
        click.echo(f"wrote {output}: {series} series, {items} items ({int(bad.sum())} series dropped)")
    raise SystemExit(1 if bad.sum() > max_violations else 0)
