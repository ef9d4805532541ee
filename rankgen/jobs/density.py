"""`rankgen density` as a library call: labeled crowd images -> images with density maps (kind `density`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..corpus import schema as S
from ..crowd import density as dmaps
from ..errors import BadImage, RankgenError
from ..sources import SOURCES, SourceItem
from ..sources.crowd import read_crowd
from .base import JobResult, Summary, replay_command, resolve_shard, shard_jobs, source_tables, write_corpus
from .crops import list_crowd_sources

COLUMNS = {"count": "float64", "source": "int64", "split": "str"}
RAGGED = {"image": ("uint8", 3), "density": ("float32", 2)}


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


def density(
    output: str | Path = "density.h5",
    *,
    dataset: str = "synthetic",
    root: str | None = None,
    split: str | None = None,
    n_images: int | None = None,
    sigma: float | str = "15",
    stride: int = 1,
    max_side: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    on_error: str = "skip",
    shard: str | tuple[int, int] | None = None,
    progress: bool = True,
) -> Summary:
    """Write labeled crowd images with density maps that sum to their head counts; `rankgen density`.

    sigma: Gaussian sigma in px per head, or "adaptive". stride: maps sum-pooled over stride x stride
    blocks. max_side: shrink images whose longer side exceeds it. Returns the run's Summary.

    >>> rankgen.density("sha_train.h5", dataset="shanghaitech-a", root="ShanghaiTech", split="train")
    """
    sig = _sigma(str(sigma))
    if stride < 1:
        raise RankgenError(f"--stride must be >= 1, got {stride}")
    if max_side is not None and max_side < 32:
        raise RankgenError(f"--max-side must be >= 32 px, got {max_side}")
    shard = resolve_shard(shard)
    items, kind = list_crowd_sources(dataset, root, split, n_images, seed, limit)
    if kind != "crowd":
        raise RankgenError(f"--dataset {dataset} has no head points; `rankgen density` needs one of "
                           f"{', '.join(e.name for e in SOURCES if e.info.get('kind') == 'crowd')}")
    jobs = shard_jobs([DensityJob(i, it, sig, stride, max_side) for i, it in enumerate(items)], shard)
    content = {"dataset": dataset, "root": str(root) if root else None, "split": split, "n_images": n_images,
               "sigma": sig, "stride": stride, "max_side": max_side, "limit": limit, "seed": seed,
               S.SHARD_PARAM: list(shard) if shard else None}
    command = replay_command("density", [
        ("--dataset", dataset), ("--n-images", n_images), ("--split", split), ("--root", root), ("--sigma", sigma),
        ("--stride", stride), ("--max-side", max_side), ("--limit", limit), ("--seed", seed),
        ("--on-error", on_error), ("--shard", "/".join(map(str, shard)) if shard else None)])
    return write_corpus(
        output, "density", jobs, density_source, columns=COLUMNS, ragged=RAGGED, command=command,
        content={**content, "sources": [it.id for it in items]},
        attrs={S.ATTR_SEED: seed, S.ATTR_PARAMS: content, "sigma": str(sig), "stride": stride,
               "max_side": max_side or 0},
        finish=lambda writer, summary: (source_tables(items), {}), overwrite=overwrite, workers=workers, progress=progress,
        on_error=on_error)
