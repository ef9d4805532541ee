"""`rankgen crops` (ranked crop sets, Algorithm 2) and `rankgen density` (labeled counting set):
options around rankgen.jobs.crops and rankgen.jobs.density."""

from __future__ import annotations

import click

from ..jobs.crops import crops as run_crops
from ..jobs.density import density as run_density
from . import main
from .common import echo_summary, generation_options, guarded


def _dataset_options(f):
    f = click.option("--n-images", type=int, default=None,
                     help="--dataset synthetic: how many scenes (default 24, 384x512 each).")(f)
    f = click.option("--split", default=None,
                     help="train|test (shanghaitech-a/b, ucf-qnrf, synthetic; default train); ucf-cc-50 has only 'all'.")(f)
    f = click.option("--root", type=click.Path(), help="Folder of the dataset (all but synthetic).")(f)
    return f


@main.command("crops")
@click.option("--dataset", default="synthetic", show_default=True,
              help="synthetic (embedded, no download), folder (unlabeled), shanghaitech-a, shanghaitech-b, ucf-cc-50, "
                   "ucf-qnrf. See `rankgen list sources`.")
@_dataset_options
@click.option("--k", default=5, show_default=True, type=int, help="Patches per crop set (>= 2).")
@click.option("--s", default=0.75, show_default=True, type=float, help="Side scale factor between patches (0 < s < 1).")
@click.option("--r", default=8.0, show_default=True, type=float,
              help="Anchor region: the centred box of sides W/r and H/r (r divides the sides, not the area; r >= 1).")
@click.option("--size", default=224, show_default=True, type=int, help="Output patch side (>= 8), the network input.")
@click.option("--per-image", default=10, show_default=True, type=int, help="Crop sets per image, each from a fresh anchor.")
@generation_options("crops.h5")
@guarded
def crops_command(dataset, root, split, n_images, k, s, r, size, per_image, limit, seed, workers, output, overwrite,
                  on_error, shard, quiet):
    """Cut nested square crop sets whose person counts cannot increase (Algorithm 2 of the paper).

    Each set: an anchor drawn uniformly in the centred anchor region, the largest square centred on
    it inside the image, then k-1 squares each s times smaller, same centre; all resized to
    --size. Labeled sources also store the true count of every patch. Schema: docs/schema.md.

    \b
    Examples:
      rankgen crops --k 5 --s 0.75 --r 8                 # synthetic crowds, no download
      rankgen crops --dataset folder --root ~/crowd_keyword --per-image 10 -o crops.h5
      rankgen crops --dataset shanghaitech-a --root ~/ShanghaiTech --split train -o crops_sha.h5
    """
    summary = run_crops(output, dataset=dataset, root=root, split=split, n_images=n_images, k=k, s=s, r=r, size=size,
                        per_image=per_image, limit=limit, seed=seed, workers=workers, overwrite=overwrite,
                        on_error=on_error, shard=shard, progress=not quiet)
    echo_summary(summary, output)


@main.command("density")
@click.option("--dataset", default="synthetic", show_default=True,
              help="A labeled crowd set: synthetic (embedded, no download), shanghaitech-a, shanghaitech-b, ucf-cc-50, ucf-qnrf.")
@_dataset_options
@click.option("--sigma", default="15", show_default=True,
              help="Gaussian sigma in px per head (15 = the paper), or 'adaptive': 0.3 x mean distance to the 3 "
                   "nearest heads, clipped to [1, 60] px.")
@click.option("--stride", default=1, show_default=True, type=int,
              help="Store maps sum-pooled over stride x stride blocks (8 for a VGG16 conv5 head); the sum is kept.")
@click.option("--max-side", type=int, help="Shrink images whose longer side exceeds this (the paper uses 1024 on UCF-QNRF).")
@generation_options("density.h5")
@guarded
def density_command(dataset, root, split, n_images, sigma, stride, max_side, limit, seed, workers, output, overwrite,
                    on_error, shard, quiet):
    """Write images with crowd density maps that sum to their head counts (labeled set for counting).

    \b
    Examples:
      rankgen density                                     # synthetic crowds, no download
      rankgen density --dataset shanghaitech-a --root ~/ShanghaiTech --split train -o sha_train.h5
      rankgen density --dataset ucf-qnrf --root ~/UCF-QNRF_ECCV18 --max-side 1024 --sigma adaptive --stride 8
    """
    summary = run_density(output, dataset=dataset, root=root, split=split, n_images=n_images, sigma=sigma,
                          stride=stride, max_side=max_side, limit=limit, seed=seed, workers=workers,
                          overwrite=overwrite, on_error=on_error, shard=shard, progress=not quiet)
    echo_summary(summary, output)
