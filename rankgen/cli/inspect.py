"""Looking at things: `rankgen info`, `rankgen preview`, `rankgen list`."""

from __future__ import annotations

import collections
import os

import click

from . import main
from .common import guarded, overwrite_option, progress_option, workers_option


@main.command()
@click.argument("corpus", type=click.Path(dir_okay=False))
@guarded
def info(corpus):
    """Summarize a corpus: kind, provenance, items, groups, per-distortion counts.

    \b
    Example:
      rankgen info corpus.h5
    """
    from ..corpus import Corpus

    c = Corpus(corpus)
    attrs = c.attrs
    checked = {name: spot_check(c, name) for name in c.ragged_names()}  # before any output: damage is one line
    click.echo(f"{corpus}: rankgen {attrs.get('kind')} corpus, schema {attrs.get('schema_version')}, "
               f"{len(c)} items, {os.path.getsize(corpus) / 1e6:.1f} MB")
    click.echo(f"  written by rankgen {attrs.get('rankgen_version')}: {attrs.get('command') or '(no command recorded)'}")
    click.echo(f"  seed {attrs.get('seed')}")
    if "groups" in c.tables():
        g = c.groups
        click.echo(f"  groups: {g.shape[0]} ranked groups of {g.shape[1]} (left to right: target does not increase)")
    if "distortion" in c.columns():
        counts = collections.Counter(c.column("distortion").tolist())
        click.echo("  items per distortion:")
        for name, n in sorted(counts.items()):
            click.echo(f"    {name:28s} {n}")
    for name in c.ragged_names():
        shapes = {c.ragged_shape(name, i) for i in range(min(len(c), 2000))}
        encoding = c.ragged_encoding(name)[0]
        click.echo(f"  ragged {name}: {len(shapes)} distinct shapes, e.g. {sorted(shapes)[:3]}; stored as {encoding}")
        stored = c.stored_count(name)
        if stored < len(c):
            kept = ", ".join(["references", *(attrs.get("stored_types") or [])])
            click.echo(f"  compact: pixels of {stored} items stored ({kept}); the other {len(c) - stored} are "
                       "regenerated when read, each checked against its recorded CRC")
        click.echo(f"  spot check: {checked[name]} stored items of {name} decoded and CRC-checked, ok "
                   "(`rankgen check` reads them all)")
    skipped = attrs.get("skipped") or []
    if skipped:
        click.echo(f"  {len(skipped)} sources were skipped:")
        for s in skipped:
            click.echo(f"    {s}")


# `info` reads the metadata; a few stored items, decoded and checked against their CRCs, catch most
# damage (a cut or overwritten pixel chunk) for ~10 ms each, so the summary never vouches for a file
# whose pixels no longer read, while `rankgen check` stays the full verification.
SPOT_CHECKS = 8


def spot_check(c, name: str) -> int:
    """Read (decode + CRC) the first, the last and evenly spaced stored items of ragged `name`; a damaged
    one raises the reader's "is damaged" error. Returns how many were read."""
    import numpy as np

    stored = c.stored_items(name)
    picks = np.unique(stored[np.linspace(0, len(stored) - 1, min(SPOT_CHECKS, len(stored))).astype(int)])
    for i in picks:
        c.ragged(name, int(i))
    return len(picks)


@main.command()
@click.argument("corpus", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default="preview.png", show_default=True, help="PNG to write.")
@click.option("--ref", help="Reference id to show (distort corpora; default: the first).")
@guarded
def preview(corpus, output, ref):
    """Draw a picture of a corpus (contact sheet, nested boxes, histograms: by kind).

    \b
    Example:
      rankgen preview corpus.h5 -o sheet.png     # one row per distortion, one column per level
    """
    from ..preview import render

    options = {"ref": ref} if ref else {}
    click.echo(f"wrote {render(corpus, output, **options)}")


@main.command("list")
@click.argument("what", type=click.Choice(["distortions", "sources", "recipes"]))
@guarded
def list_(what):
    """List registered distortions, sources or distortion recipes.

    \b
    Example:
      rankgen list distortions
    """
    if what == "distortions":
        from ..distortions import DISTORTIONS

        for e in DISTORTIONS:
            tid = e.info.get("tid")
            aliases = ", ".join(DISTORTIONS.aliases_of(e.name))
            click.echo(f"{e.name:28s} TID2013 #{tid:02d}  {e.info.get('family', ''):12s} {aliases}" if tid else e.name)
    elif what == "sources":
        from ..sources import SOURCES

        for e in SOURCES:
            click.echo(f"{e.name:16s} {e.info.get('kind', ''):8s} {e.info.get('help', '')}")
    else:
        import yaml

        from ..distortions.recipes import RECIPES_DIR, available_recipes, load_recipe

        # data_recipes/ also holds training recipes (for `train`); list the distortion tables.
        for name in available_recipes():
            if "distortions" in (yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text()) or {}):
                recipe = load_recipe(name)
                click.echo(f"{name:16s} {len(recipe.names):3d} series")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--all", "regenerate_all", is_flag=True,
              help="Compact corpora: regenerate every item whose pixels are not stored (default: 1 in 16).")
def check(files, regenerate_all):
    """Verify corpora: structure, item counts, per-item CRCs, column and table digests.

    Exit status 0 when every file is sound, 1 otherwise; each problem is printed. In a compact
    corpus (`distort --pixels ...`) the regenerated items are remade and compared with the CRCs
    recorded when they were made: a sample of 1 in 16, or all with --all.

    \b
    Example:
      rankgen check corpus.h5 shards/*.h5
      rankgen check waterloo-compact.h5 --all
    """
    from ..corpus.check import check as check_file

    failed = False
    for path in files:
        problems = check_file(path, regenerate_all=regenerate_all)
        if problems:
            failed = True
            click.echo(f"{path}: {len(problems)} problem(s)")
            for p in problems:
                click.echo(f"  {p}")
        else:
            click.echo(f"{path}: ok")
    raise SystemExit(1 if failed else 0)


@main.command()
@click.argument("shards", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Merged corpus to write.")
@click.option("--virtual", is_flag=True,
              help="Write HDF5 virtual datasets that point into the shards (instant, no copy; keep the shards "
                   "beside the merged file) instead of copying.")
@workers_option
@overwrite_option
@progress_option
@guarded
def merge(shards, output, virtual, workers, overwrite, quiet):
    """Join shards written with --shard I/N into one corpus.

    The result has the same content (items, pixels, tables, checksums) as one run of the same
    command without --shard. The copy keeps each item's stored bytes and CRC, is committed as it
    goes and resumes like every generating command; compact shards give a compact corpus.

    \b
    Examples:
      rankgen merge shards/part-*.h5 -o corpus.h5
      rankgen merge shards/part-*.h5 -o corpus.h5 --virtual
    """
    from ..jobs.merge import merge as merge_files

    path = merge_files(shards, output, virtual=virtual, overwrite=overwrite, workers=workers, progress=not quiet)
    click.echo(f"wrote {path} from {len(shards)} shards{' (virtual)' if virtual else ''}")
