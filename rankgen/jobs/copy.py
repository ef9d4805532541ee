"""Copying items of finished corpora into a new one, as jobs: what `rankgen merge` (shards -> one
corpus) and `rankgen materialize` (compact -> full corpus) share."""

from __future__ import annotations

from dataclasses import dataclass

from ..corpus import open_corpus
from .base import JobResult


@dataclass(frozen=True)
class CopyJob:
    path: str                          # jobs carry the path: each process opens the corpus once
    start: int
    stop: int
    columns: tuple[str, ...]
    encodings: tuple[tuple[str, str], ...]  # ragged name -> the writer's encoding of it
    regenerate: bool = False           # write the pixels of a compact corpus's regenerated items


def copy_items(job: CopyJob) -> JobResult:
    """Items start..stop-1 of one corpus. Stored bytes and their CRCs move as they are (a damaged item
    stays detectable by `rankgen check` of the copy); other items are decoded, or regenerated and
    checked against their CRC, and encoded again by the pipeline."""
    corpus = open_corpus(job.path)
    rows = []
    for i in range(job.start, job.stop):
        row = {name: corpus.column(name)[i] for name in job.columns}
        for name, encoding in job.encodings:
            if job.regenerate and not corpus.is_stored(name, i):
                row[name] = corpus.ragged(name, i)
            else:
                row[name] = corpus.ragged_for_copy(name, i, encoding)
        rows.append(row)
    return JobResult(rows=rows)


def ranges(n: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, n)) for a in range(0, n, size)]
