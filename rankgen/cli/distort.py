"""`rankgen distort`: the ranked IQA corpus."""

from __future__ import annotations

import click

from ..errors import RankgenError
from . import main
from .common import command_line, echo_summary, generation_options, guarded, resolve_workers


def distortion_names(value: str | None) -> tuple[str, ...] | None:
    """--distortions as names; None (all of the recipe) only when the option is not given, so that an
    empty value or an empty name (a stray comma) is an error rather than silently "all"."""
    if value is None:
        return None
    names = tuple(d.strip() for d in value.split(","))
    if not any(names):
        raise RankgenError(f"--distortions {value!r} names no distortion; give names such as gaussian_blur,jpeg, "
                           "or leave the option out for all of the recipe")
    if not all(names):
        raise RankgenError(f"--distortions {value!r} has an empty name (a stray comma?); give names such as "
                           "gaussian_blur,jpeg")
    return names


@main.command()
@click.option("--dataset", default="samples", show_default=True,
              help="Source of pristine images: samples (scikit-image photos, no download), folder, waterloo. "
                   "See `rankgen list sources`.")
@click.option("--root", type=click.Path(), help="Folder of the dataset (folder, waterloo).")
@click.option("--recipe", default="tid2013", show_default=True,
              help="Distortion table: a name in data_recipes/ (tid2013: the paper's 17 types; tid2013-full: all 24; "
                   "live: LIVE's 4; kadid10k: KADID-10k's 25) or a YAML path. `rankgen list recipes`.")
@click.option("--distortions", help="Comma-separated subset of the recipe (names or aliases like tid08). Default: all.")
@click.option("--levels", default=5, show_default=True, type=int,
              help="Levels per series including the pristine reference (level 0). 5 = the paper's four "
                   "parameter values; other values interpolate the table monotonically.")
@click.option("--crop", type=int, help="Store aligned SIZE x SIZE crops instead of whole images (same window for every level).")
@click.option("--crops-per-image", default=1, show_default=True, type=int, help="Crop windows per reference with --crop.")
@generation_options("corpus.h5", compression=True)
@guarded
def distort(dataset, root, recipe, distortions, levels, crop, crops_per_image, limit, seed, workers, output,
            overwrite, on_error, compression, shard, quiet):
    """Distort every source image at increasing levels and write a ranked corpus.

    Each source yields its pristine version (level 0) and, per distortion, levels 1..L-1 of
    increasing strength: within one (reference, distortion) series quality strictly decreases,
    which is all a ranking loss needs. Output: HDF5, schema in docs/schema.md.

    \b
    Examples:
      rankgen distort                                      # samples, the paper's 17 TID2013 types, 5 levels
      rankgen distort --recipe tid2013-full -o all24.h5    # all 24 TID2013 types
      rankgen distort --dataset waterloo --root ~/exploration_database_and_code --levels 5 --workers 8 -o waterloo.h5
      rankgen distort --dataset folder --root ~/photos --distortions gaussian_blur,jpeg -o mine.h5
      rankgen distort --recipe live --crop 224 --crops-per-image 4 -o live_rank.h5
    """
    from ..generate import generate
    from ..pipeline import parse_shard

    names = distortion_names(distortions)
    summary = generate(output, dataset=dataset, root=root, recipe=recipe, distortions=names, levels=levels, seed=seed,
                       workers=resolve_workers(workers), crop=crop, crops_per_image=crops_per_image, limit=limit,
                       overwrite=overwrite, on_error=on_error, progress=not quiet, command=command_line(),
                       compression=compression, shard=parse_shard(shard))
    echo_summary(summary, output)
