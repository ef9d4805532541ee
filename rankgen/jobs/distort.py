"""`rankgen distort` as a library call: sources x recipe -> ranked IQA corpus (kind `distort`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from ..corpus import schema as S
from ..corpus.codec import absent
from ..distortions import DISTORTIONS, distort_recorded, load_recipe, pixel_versions
from ..errors import BadImage, RankgenError
from ..seeding import item_seed, rng_for
from ..sources import SOURCES, SourceItem, read_image
from .base import JobResult, Summary, replay_command, resolve_shard, shard_jobs, source_tables, write_corpus

REFERENCE = "reference"

COLUMNS = {"ref": "int64", "distortion": "str", "tid": "int64", "level": "int64", "param": "float64",
           "seed": "int64", "crop": "int64", "attempts": "int64"}
RAGGED = {"image": ("uint8", 3)}


# What `--pixels costly` stores: the types that take 15 ms or more per 512x384 call
# (docs/benchmarks.md, "Distortion kernels"), so a trainer reading a compact corpus is not starved.
COSTLY = ("image_denoising", "jpeg2000", "jpeg2000_transmission_errors", "comfort_noise", "color_quantization",
          "sparse_sampling")


@dataclass(frozen=True)
class DistortJob:
    index: int
    item: SourceItem
    names: tuple[str, ...]
    tids: tuple[int, ...]
    params: tuple[tuple[float, ...], ...]  # per distortion: levels 1..L-1
    seed: int
    crop: int | None
    crops_per_image: int
    stored: frozenset = frozenset()  # distortions whose pixels are written; the others only get a CRC
    reference: bool = True  # the source's first part, which writes its level-0 items


def split_at_costly(job: DistortJob) -> list[DistortJob]:
    """One source's work as consecutive parts, a new part at each COSTLY type (recipe order kept).

    The slow types of one source then run on several workers at once: 6 bundled photos as 6 jobs
    of 0.6-1.7 s capped the 2-worker speed-up at 1.85-1.91x, as 24 parts at 1.88-1.94x
    (docs/benchmarks.md, "Writing"). run_jobs still writes a source whole or not at all. Parts of
    one source decode it once per worker: `_decoded` keeps the last source a worker read.
    """
    starts = [0] + [i for i, name in enumerate(job.names) if name in COSTLY and i > 0]
    return [replace(job, names=job.names[a:b], tids=job.tids[a:b], params=job.params[a:b], reference=a == 0)
            for a, b in zip(starts, starts[1:] + [len(job.names)])]


def _decoded(item: SourceItem):
    """The source as read_image gives it, kept for the source's next part in this process: a worker
    that takes two parts of one source decodes it once."""
    try:
        stat = os.stat(item.path)
        version = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    except OSError:  # not a file (a bundled sample), or gone: read_image says which
        version = None
    return _decoded_version(item, version)


@lru_cache(maxsize=1)
def _decoded_version(item: SourceItem, version):
    # Keyed by the file's version too: a Dask worker outlives a run, and a file may be rewritten
    # between two runs.
    return read_image(item)


def crop_windows(shape, size: int, n: int, seed: int, ref_id: str) -> list[tuple[int, int]]:
    """Top-left corners of n aligned crop windows; the same windows serve every level of the reference."""
    h, w = shape[:2]
    rng = rng_for(seed, ref_id, "crop")
    return [(int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))) for _ in range(n)]


def distort_source(job: DistortJob) -> JobResult:
    """The job's distortions and levels of one source image, in a fixed order (and its level-0 items
    in its first part)."""
    try:
        image, notes = _decoded(job.item)
    except BadImage as exc:
        return JobResult(skipped=str(exc))
    if job.crop and min(image.shape[:2]) < job.crop:
        h, w = image.shape[:2]
        return JobResult(skipped=f"{job.item.path}: {w}x{h} px is smaller than --crop {job.crop}; lower --crop or drop it")
    if job.crop:
        views = [(c, image[y : y + job.crop, x : x + job.crop])
                 for c, (y, x) in enumerate(crop_windows(image.shape, job.crop, job.crops_per_image, job.seed, job.item.id))]
    else:
        views = [(0, image)]
    rows = []
    # A crop is distorted as an image of its own, not cut from a distorted whole: sparse distortions
    # (blocks, moved patches) could otherwise miss the window and leave a "worse" level pristine.
    for c, view in views:
        view = np.ascontiguousarray(view)
        if job.reference:
            rows.append({"ref": job.index, "distortion": REFERENCE, "tid": 0, "level": 0, "param": float("nan"),
                         "seed": 0, "crop": c, "attempts": 0, "image": view})
        for name, tid, params in zip(job.names, job.tids, job.params):
            for level, param in enumerate(params, start=1):
                seed = item_seed(job.seed, job.item.id, name, level, c)
                out, attempts = distort_recorded(view, name, param, np.random.default_rng(seed))
                rows.append({"ref": job.index, "distortion": name, "tid": tid, "level": level, "param": param,
                             "seed": seed, "crop": c, "attempts": attempts,
                             "image": out if name in job.stored else absent(out)})
    return JobResult(rows=rows, notes=notes if job.reference else [])


def build_groups(ref, distortion, level, crop, names, n_levels) -> np.ndarray:
    """One row per (reference, crop, distortion): the reference item then levels 1..L-1."""
    index = {}
    for i, key in enumerate(zip(ref.tolist(), crop.tolist(), distortion.tolist(), level.tolist())):
        index[key] = i
    rows = []
    for r, c in sorted({(r, c) for r, c in zip(ref.tolist(), crop.tolist())}):
        base = index[(r, c, REFERENCE, 0)]
        for name in names:
            members = [index.get((r, c, name, lv), -1) for lv in range(1, n_levels)]
            if -1 not in members:
                rows.append([base, *members])
    return np.array(rows, dtype=np.int64).reshape(-1, n_levels)


def parse_distortions(distortions: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """'a,b' as typed after --distortions, or a sequence of names; None (all of the recipe) only when
    the option is not given, so that an empty value or a stray comma is an error, not silently "all"."""
    if distortions is None:
        return None
    typed = distortions if isinstance(distortions, str) else ",".join(map(str, distortions))
    names = tuple(str(n).strip() for n in (distortions.split(",") if isinstance(distortions, str) else distortions))
    if not any(names):
        raise RankgenError(f"--distortions {typed!r} names no distortion; give names such as gaussian_blur,jpeg, "
                           "or leave the option out for all of the recipe")
    if not all(names):
        raise RankgenError(f"--distortions {typed!r} has an empty name (a stray comma?); give names such as "
                           "gaussian_blur,jpeg")
    return names


def parse_pixels(pixels: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """Which distortions' pixels are stored: all, references (none), costly (COSTLY), or a list."""
    if pixels == "all":
        return names
    if pixels == "references":
        return ()
    if pixels == "costly":
        return tuple(n for n in names if n in COSTLY)
    wanted = [p.strip() for p in pixels.split(",")]
    if "" in wanted:
        raise RankgenError(f"--pixels {pixels!r} has an empty name; give all, references, costly or distortion names")
    try:
        canonical = [DISTORTIONS.canonical(p) for p in wanted]
    except RankgenError as exc:
        raise RankgenError(f"--pixels {pixels!r}: all, references, costly or distortion names; {exc}") from None
    unknown = [p for p in canonical if p not in names]
    if unknown:
        raise RankgenError(f"--pixels names {', '.join(unknown)}, which this run does not make; it makes {', '.join(names)}")
    return tuple(n for n in names if n in canonical)


def distort(
    output: str | Path = "corpus.h5",
    *,
    dataset: str = "samples",
    root: str | None = None,
    recipe: str = "tid2013",
    distortions: str | Sequence[str] | None = None,
    levels: int = 5,
    crop: int | None = None,
    crops_per_image: int = 1,
    limit: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    on_error: str = "skip",
    compression: str = S.PNG,
    pixels: str = "all",
    shard: str | tuple[int, int] | None = None,
    progress: bool = True,
) -> Summary:
    """Distort every source image at increasing levels and write a ranked corpus; `rankgen distort`.

    Each source yields its pristine version (level 0) and, per distortion of the recipe, levels
    1..levels-1 of increasing strength. `workers=None` uses every core; the output is the same for
    any worker count. pixels: whose pixels the file stores: "all"; "references" (a compact corpus:
    every other item is regenerated, byte for byte, when it is read); "costly" (references and the
    COSTLY types); or comma-separated distortion names. Returns the run's Summary.

    >>> rankgen.distort("mine.h5", dataset="folder", root="photos", distortions="gaussian_blur,jpeg")
    """
    if levels < 2:
        raise RankgenError(f"--levels {levels}: need at least 2 (the reference and one distorted level)")
    if crop is not None and crop < 32:
        raise RankgenError(f"--crop {crop}: crops must be at least 32 px")
    if crops_per_image < 1:
        raise RankgenError(f"--crops-per-image {crops_per_image}: must be at least 1")
    if compression not in S.ENCODINGS:
        raise RankgenError(f"--compression {compression!r}: choose {' or '.join(S.ENCODINGS)} (lzf and gzip were "
                           "schema 1's HDF5 filters; png replaces both, smaller and compressed in the workers)")
    wanted_names = parse_distortions(distortions)
    shard = resolve_shard(shard)
    entry = SOURCES.entry(dataset)
    if entry.info.get("kind") not in ("images", "crowd"):
        raise RankgenError(f"--dataset {dataset} is a labeled {entry.info.get('kind')} set; `rankgen distort` needs photographs")
    items = entry.obj(root)
    if limit is not None:
        items = items[:limit]
    rec = load_recipe(recipe)
    names = tuple(rec.names)
    if wanted_names:
        wanted = [DISTORTIONS.canonical(d) for d in wanted_names]
        missing = [d for d in wanted if d not in rec.names]
        if missing:
            raise RankgenError(f"recipe {rec.name} has no table for {', '.join(missing)}; it has {', '.join(rec.names)}")
        names = tuple(n for n in rec.names if n in wanted)
    params = tuple(tuple(float(p) for p in rec.params(n, levels)) for n in names)
    tids = tuple(rec.tid(n) for n in names)
    stored = parse_pixels(pixels, names)
    versions = pixel_versions(names)
    sources = shard_jobs([DistortJob(i, item, names, tids, params, seed, crop, crops_per_image, frozenset(stored))
                          for i, item in enumerate(items)], shard)
    jobs = [part for job in sources for part in split_at_costly(job)]
    content = {"dataset": dataset, "root": str(root) if root else None, "recipe": rec.name, "recipe_text": rec.text,
               "distortions": list(names), "levels": levels, "seed": seed, "crop": crop,
               "crops_per_image": crops_per_image if crop else 1, "limit": limit, "sources": [it.id for it in items],
               S.SHARD_PARAM: list(shard) if shard else None, **({"pixels": pixels} if pixels != "all" else {}),
               # a partial that other kernels or libraries began is not resumed with these
               "pixel_versions": versions,
               # not the items but what a partial file's count of finished jobs means: a partial whose
               # jobs were cut otherwise (whole sources, before 2026-12-06) is not resumed
               "jobs": [len(part.names) for part in split_at_costly(sources[0])] if sources else []}
    command = replay_command("distort", [
        ("--dataset", dataset), ("--root", root), ("--recipe", recipe),
        ("--distortions", ",".join(wanted_names) if wanted_names else None), ("--levels", levels), ("--crop", crop),
        ("--crops-per-image", crops_per_image), ("--limit", limit), ("--seed", seed), ("--on-error", on_error),
        ("--compression", compression), ("--pixels", pixels if pixels != "all" else None),
        ("--shard", "/".join(map(str, shard)) if shard else None)])

    def finish(writer, summary):
        groups = build_groups(writer.read_column("ref"), writer.read_column("distortion"),
                              writer.read_column("level"), writer.read_column("crop"), names, levels)
        table = np.full((len(names), levels), np.nan)
        for i, p in enumerate(params):
            table[i, 1:] = p
        return {S.GROUPS: groups, **source_tables(items, "ref"), "distortions": np.array(names, dtype=object),
                "params": table}, {}

    try:
        return write_corpus(
            output, "distort", jobs, distort_source, columns=COLUMNS, ragged=RAGGED, content=content, command=command,
            attrs={S.ATTR_SEED: seed, S.ATTR_RECIPE: rec.text,
                   S.ATTR_PARAMS: {k: v for k, v in content.items()
                                   if k not in ("recipe_text", "sources", "jobs", "pixel_versions")},
                   S.ATTR_PIXEL_VERSIONS: versions, S.ATTR_STORED_TYPES: list(stored)},
            finish=finish, encoding=compression, overwrite=overwrite,
            workers=workers, progress=progress, on_error=on_error, source_of=lambda job: job.index)
    finally:
        _decoded_version.cache_clear()  # the last source read here (--workers 1): let it go
