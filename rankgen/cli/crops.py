"""`rankgen crops` (ranked crop sets, Algorithm 2) and `rankgen density` (labeled counting set),
plus their previews. Work functions are module-level so the process pool can pickle them."""

from __future__ import annotations

from dataclasses import dataclass

import click
import numpy as np

from .. import crops as geometry
from .. import density as dmaps
from ..corpus import CorpusWriter
from ..corpus import schema as S
from ..corpus.writer import fingerprint
from ..errors import BadImage, RankgenError
from ..pipeline import JobResult, nothing_usable, parse_shard, run_jobs, shard_jobs
from ..seeding import item_seed
from ..sources import SOURCES, SourceItem
from ..sources.crowd import list_items, read_crowd
from . import main
from .common import command_line, echo_summary, generation_options, guarded, resolve_workers

CROP_COLUMNS = {"set": "int64", "rank": "int64", "source": "int64", "seed": "int64",
                "box_x0": "float64", "box_y0": "float64", "box_x1": "float64", "box_y1": "float64",
                "ibox_x0": "int64", "ibox_y0": "int64", "ibox_x1": "int64", "ibox_y1": "int64",
                "anchor_x": "float64", "anchor_y": "float64"}
# Resized patches barely compress (lzf saves about 11 %) but lzf makes writing 8x slower, and the
# single writing process is the bottleneck: see docs/crops.md, "Throughput".
CROP_COMPRESSION = None
DENSITY_COLUMNS = {"count": "float64", "source": "int64", "split": "str"}


def _dataset_options(f):
    f = click.option("--n-images", type=int, default=None,
                     help="--dataset synthetic: how many scenes (default 24, 384x512 each).")(f)
    f = click.option("--split", default=None,
                     help="train|test (shanghaitech-a/b, ucf-qnrf, synthetic; default train); ucf-cc-50 has only 'all'.")(f)
    f = click.option("--root", type=click.Path(), help="Folder of the dataset (all but synthetic).")(f)
    return f


def _items(dataset, root, split, n_images, seed, limit):
    items, kind = list_items(dataset, root, split, n_images=n_images, seed=seed)
    return (items[:limit] if limit is not None else items), kind


def _source_tables(items: list[SourceItem]) -> dict:
    return {"source_id": np.array([it.id for it in items], dtype=object),
            "source_path": np.array([it.path for it in items], dtype=object)}


# -- crops -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CropJob:
    index: int
    item: SourceItem
    k: int
    s: float
    r: float
    size: int
    per_image: int
    seed: int
    labeled: bool


def crop_source(job: CropJob) -> JobResult:
    """Every crop set of one source image: decoded once, sets in index order, patches largest first."""
    try:
        image, points, notes = read_crowd(job.item)
    except BadImage as exc:
        return JobResult(skipped=str(exc))
    h, w = image.shape[:2]
    name = job.item.path
    best = geometry.best_smallest_side(w, h, job.k, job.s)
    if best < geometry.MIN_PATCH:
        return JobResult(skipped=(
            f"{name}: {w}x{h} px is too small for k={job.k}, s={job.s}: even a centred anchor gives a smallest patch "
            f"of {best:.1f} px (< {geometry.MIN_PATCH}); lower --k or raise --s"))
    if min(w, h) < job.size:
        notes.append(f"{name}: {w}x{h} px is smaller than --size {job.size}; every patch is upscaled")
    rows, dropped = [], 0
    for j in range(job.per_image):
        seed = item_seed(job.seed, job.item.id, j)
        cs = geometry.crop_set(w, h, job.k, job.s, job.r, np.random.default_rng(seed))
        if cs.smallest_side < geometry.MIN_PATCH:
            dropped += 1
            continue
        counts = geometry.points_in_boxes(points, cs.iboxes) if job.labeled else None
        for rank, (box, ibox) in enumerate(zip(cs.boxes, cs.iboxes)):
            row = {"set": j, "rank": rank, "source": job.index, "seed": seed, "anchor_x": cs.anchor[0], "anchor_y": cs.anchor[1],
                   "image": geometry.cut(image, ibox, job.size)}
            row.update(zip(("box_x0", "box_y0", "box_x1", "box_y1"), box.tolist()))
            row.update(zip(("ibox_x0", "ibox_y0", "ibox_x1", "ibox_y1"), ibox.tolist()))
            if counts is not None:
                row["count"] = int(counts[rank])
            rows.append(row)
    if dropped:
        notes.append(f"{name}: {dropped} of {job.per_image} crop sets dropped, their smallest patch was under "
                     f"{geometry.MIN_PATCH} px (anchor near the border; raise --r)")
    return JobResult(rows=rows, notes=notes)


def generate_crops(output, *, dataset="synthetic", root=None, split=None, n_images=None, k=5, s=0.75, r=8.0,
                   size=224, per_image=10, limit=None, seed=0, workers=1, overwrite=False, on_error="skip",
                   progress=True, command="", shard=None):
    geometry.validate(k, s, r, size)
    if per_image < 1:
        raise RankgenError(f"--per-image must be >= 1, got {per_image}")
    items, kind = _items(dataset, root, split, n_images, seed, limit)
    if kind not in ("images", "crowd"):
        raise RankgenError(f"--dataset {dataset} is a {kind} set; `rankgen crops` needs photographs or crowd images")
    labeled = kind == "crowd"
    columns = dict(CROP_COLUMNS, **({"count": "int64"} if labeled else {}))
    jobs = shard_jobs([CropJob(i, it, k, s, r, size, per_image, seed, labeled) for i, it in enumerate(items)], shard)
    content = {"dataset": dataset, "root": str(root) if root else None, "split": split, "n_images": n_images, "k": k,
               "s": s, "r": r, "size": size, "per_image": per_image, "limit": limit, "seed": seed,
               S.SHARD_PARAM: list(shard) if shard else None}
    writer = CorpusWriter(
        output, "crops", columns=columns, ragged={"image": ("uint8", 3)}, overwrite=overwrite, compression=CROP_COMPRESSION,
        fingerprint=fingerprint({**content, "sources": [it.id for it in items]}),
        attrs={S.ATTR_COMMAND: command, S.ATTR_SEED: seed, S.ATTR_PARAMS: content, "labeled": labeled},
    )
    with writer:
        # A source yields per_image * k full-size patches; committing often keeps the buffer small.
        summary = run_jobs(jobs, crop_source, writer, workers=workers, desc="crops", unit="img",
                           progress=progress, on_error=on_error, commit_every=2)
        if summary.rows == 0 and jobs:
            raise nothing_usable(summary)
        rank = writer.read_column("rank")
        # Rows arrive whole sets at a time, ranks 0..k-1, so set g is rows g*k .. g*k+k-1.
        if len(rank) % k or (rank.reshape(-1, k) != np.arange(k)).any():
            raise RankgenError(f"{writer.partial} has incomplete crop sets; delete it and run again")
        groups = np.arange(len(rank), dtype=np.int64).reshape(-1, k)
        if labeled:
            summary.notes.append(_count_check(writer.read_column("count").reshape(-1, k)))
        writer.finish(tables={S.GROUPS: groups, **_source_tables(items)})
    return summary


def _count_check(counts: np.ndarray) -> str:
    bad = int((np.diff(counts, axis=1) > 0).any(axis=1).sum())
    if bad:
        raise RankgenError(f"{bad} crop sets have a count that increases with rank; this is a bug, please report it")
    return (f"head counts never increase along any of the {len(counts)} crop sets "
            f"(largest patch: mean {counts[:, 0].mean():.1f}, smallest: mean {counts[:, -1].mean():.1f})")


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
    summary = generate_crops(output, dataset=dataset, root=root, split=split, n_images=n_images, k=k, s=s, r=r,
                             size=size, per_image=per_image, limit=limit, seed=seed, workers=resolve_workers(workers),
                             overwrite=overwrite, on_error=on_error, progress=not quiet, command=command_line(),
                             shard=parse_shard(shard))
    echo_summary(summary, output)


# -- density ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DensityJob:
    index: int
    item: SourceItem
    sigma: float | str
    stride: int
    max_side: int | None


def density_source(job: DensityJob) -> JobResult:
    try:
        image, points, notes = read_crowd(job.item)
    except BadImage as exc:
        return JobResult(skipped=str(exc))
    if points is None:
        return JobResult(skipped=f"{job.item.path}: no head points; `rankgen density` needs a labeled crowd dataset")
    image, points = dmaps.fit_max_side(image, points, job.max_side)
    h, w = image.shape[:2]
    d = dmaps.sum_pool(dmaps.density_map(points, h, w, job.sigma), job.stride)
    row = {"image": image, "density": d, "count": float(len(points)), "source": job.index,
           "split": job.item.meta.get("split", "")}
    return JobResult(rows=[row], notes=notes)


def _sigma(value: str) -> float | str:
    if value == "adaptive":
        return value
    try:
        sigma = float(value)
    except ValueError:
        raise RankgenError(f"--sigma must be a number of pixels or 'adaptive', got {value!r}") from None
    if not sigma > 0:
        raise RankgenError(f"--sigma must be > 0 px, got {value}")
    return sigma


def generate_density(output, *, dataset="synthetic", root=None, split=None, n_images=None, sigma="15", stride=1,
                     max_side=None, limit=None, seed=0, workers=1, overwrite=False, on_error="skip", progress=True,
                     command="", shard=None):
    sig = _sigma(str(sigma))
    if stride < 1:
        raise RankgenError(f"--stride must be >= 1, got {stride}")
    if max_side is not None and max_side < 32:
        raise RankgenError(f"--max-side must be >= 32 px, got {max_side}")
    items, kind = _items(dataset, root, split, n_images, seed, limit)
    if kind != "crowd":
        raise RankgenError(f"--dataset {dataset} has no head points; `rankgen density` needs one of "
                           f"{', '.join(e.name for e in SOURCES if e.info.get('kind') == 'crowd')}")
    jobs = shard_jobs([DensityJob(i, it, sig, stride, max_side) for i, it in enumerate(items)], shard)
    content = {"dataset": dataset, "root": str(root) if root else None, "split": split, "n_images": n_images,
               "sigma": sig, "stride": stride, "max_side": max_side, "limit": limit, "seed": seed,
               S.SHARD_PARAM: list(shard) if shard else None}
    writer = CorpusWriter(
        output, "density", columns=DENSITY_COLUMNS, ragged={"image": ("uint8", 3), "density": ("float32", 2)},
        overwrite=overwrite, fingerprint=fingerprint({**content, "sources": [it.id for it in items]}),
        attrs={S.ATTR_COMMAND: command, S.ATTR_SEED: seed, S.ATTR_PARAMS: content, "sigma": str(sig), "stride": stride,
               "max_side": max_side or 0},
    )
    with writer:
        summary = run_jobs(jobs, density_source, writer, workers=workers, desc="density", unit="img",
                           progress=progress, on_error=on_error)
        if summary.rows == 0 and jobs:
            raise nothing_usable(summary)
        writer.finish(tables=_source_tables(items))
    return summary


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
    summary = generate_density(output, dataset=dataset, root=root, split=split, n_images=n_images, sigma=sigma,
                               stride=stride, max_side=max_side, limit=limit, seed=seed,
                               workers=resolve_workers(workers), overwrite=overwrite, on_error=on_error,
                               progress=not quiet, command=command_line(), shard=parse_shard(shard))
    echo_summary(summary, output)
