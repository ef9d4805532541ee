"""`rankgen crops` as a library call: Algorithm 2's nested crop sets -> ranked counting corpus (kind `crops`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..corpus import schema as S
from ..crowd import crops as geometry
from ..errors import BadImage, RankgenError
from ..seeding import item_seed
from ..sources import SourceItem
from ..sources.crowd import list_items, read_crowd
from .base import JobResult, Summary, replay_command, resolve_shard, shard_jobs, source_tables, write_corpus

COLUMNS = {"set": "int64", "rank": "int64", "source": "int64", "seed": "int64",
           "box_x0": "float64", "box_y0": "float64", "box_x1": "float64", "box_y1": "float64",
           "ibox_x0": "int64", "ibox_y0": "int64", "ibox_x1": "int64", "ibox_y1": "int64",
           "anchor_x": "float64", "anchor_y": "float64"}
RAGGED = {"image": ("uint8", 3)}


def list_crowd_sources(dataset, root, split, n_images, seed, limit) -> tuple[list[SourceItem], str]:
    """The sources of a crowd-family dataset (crops and density share them) and their kind."""
    items, kind = list_items(dataset, root, split, n_images=n_images, seed=seed)
    return (items[:limit] if limit is not None else items), kind


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


def crops(
    output: str | Path = "crops.h5",
    *,
    dataset: str = "synthetic",
    root: str | None = None,
    split: str | None = None,
    n_images: int | None = None,
    k: int = 5,
    s: float = 0.75,
    r: float = 8.0,
    size: int = 224,
    per_image: int = 10,
    limit: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    on_error: str = "skip",
    shard: str | tuple[int, int] | None = None,
    progress: bool = True,
) -> Summary:
    """Cut nested square crop sets whose person counts cannot increase (Algorithm 2); `rankgen crops`.

    Each set: an anchor drawn in the centred region of sides W/r x H/r, the largest square centred
    on it inside the image, then k-1 squares each s times smaller; all resized to size x size.
    Labeled crowd sources also store each patch's head count. Returns the run's Summary.

    >>> rankgen.crops("crops.h5", k=5, s=0.75, r=8)
    """
    geometry.validate(k, s, r, size)
    if per_image < 1:
        raise RankgenError(f"--per-image must be >= 1, got {per_image}")
    shard = resolve_shard(shard)
    items, kind = list_crowd_sources(dataset, root, split, n_images, seed, limit)
    if kind not in ("images", "crowd"):
        raise RankgenError(f"--dataset {dataset} is a {kind} set; `rankgen crops` needs photographs or crowd images")
    labeled = kind == "crowd"
    columns = dict(COLUMNS, **({"count": "int64"} if labeled else {}))
    jobs = shard_jobs([CropJob(i, it, k, s, r, size, per_image, seed, labeled) for i, it in enumerate(items)], shard)
    content = {"dataset": dataset, "root": str(root) if root else None, "split": split, "n_images": n_images, "k": k,
               "s": s, "r": r, "size": size, "per_image": per_image, "limit": limit, "seed": seed,
               S.SHARD_PARAM: list(shard) if shard else None}
    command = replay_command("crops", [
        ("--dataset", dataset), ("--n-images", n_images), ("--split", split), ("--root", root), ("--k", k), ("--s", s),
        ("--r", r), ("--size", size), ("--per-image", per_image), ("--limit", limit), ("--seed", seed),
        ("--on-error", on_error), ("--shard", "/".join(map(str, shard)) if shard else None)])

    def finish(writer, summary):
        rank = writer.read_column("rank")
        # Rows arrive whole sets at a time, ranks 0..k-1, so set g is rows g*k .. g*k+k-1.
        if len(rank) % k or (rank.reshape(-1, k) != np.arange(k)).any():
            raise RankgenError(f"{writer.partial} has incomplete crop sets; delete it and run again")
        if labeled:
            summary.notes.append(_count_check(writer.read_column("count").reshape(-1, k)))
        return {S.GROUPS: np.arange(len(rank), dtype=np.int64).reshape(-1, k), **source_tables(items)}, {}

    # A source yields per_image * k full-size patches; committing often keeps the buffer small.
    return write_corpus(
        output, "crops", jobs, crop_source, columns=columns, ragged=RAGGED, command=command,
        content={**content, "sources": [it.id for it in items]},
        attrs={S.ATTR_SEED: seed, S.ATTR_PARAMS: content, "labeled": labeled}, finish=finish,
        commit_every=2, overwrite=overwrite, workers=workers, progress=progress,
        on_error=on_error)


def _count_check(counts: np.ndarray) -> str:
    bad = int((np.diff(counts, axis=1) > 0).any(axis=1).sum())
    if bad:
        raise RankgenError(f"{bad} crop sets have a count that increases with rank; this is a bug, please report it")
    return (f"head counts never increase along any of the {len(counts)} crop sets "
            f"(largest patch: mean {counts[:, 0].mean():.1f}, smallest: mean {counts[:, -1].mean():.1f})")
