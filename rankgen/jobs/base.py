"""What every generating job shares: argument parsing that the CLI and Python callers both get, the
command line stored in the corpus, and the one write path jobs -> run_jobs -> CorpusWriter -> finish."""

from __future__ import annotations

import shlex
from typing import Callable, Mapping, Sequence

import numpy as np

from ..corpus import CorpusWriter
from ..corpus import schema as S
from ..corpus.writer import fingerprint
from ..errors import RankgenError
from ..pipeline import JobResult, Summary, nothing_usable, resolve_shard, resolve_workers, run_jobs, shard_jobs
from ..sources import SourceItem

__all__ = ["JobResult", "Summary", "replay_command", "resolve_shard", "resolve_workers", "shard_jobs", "source_tables",
           "write_corpus"]


def replay_command(command: str, options: Sequence[tuple[str, object]], arguments: Sequence[str] = ()) -> str:
    """The command line that writes this content, every content option spelled out.

    Stored in the corpus, so a file says how to make it again, whether it was written by the CLI or
    by a Python call. Options that cannot change the content (output name, workers, overwrite,
    progress) are left out, so such files are identical byte for byte.
    """
    words = ["rankgen", command]
    for flag, value in options:
        if value is None or value is False:
            continue
        if value is True:
            words.append(flag)
        elif isinstance(value, (tuple, list)):
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return shlex.join([*words, *arguments])


def source_tables(items: Sequence[SourceItem], prefix: str = "source") -> dict[str, np.ndarray]:
    """One row per listed source, skipped ones included, so item -> source indices stay valid."""
    return {f"{prefix}_id": np.array([it.id for it in items], dtype=object),
            f"{prefix}_path": np.array([it.path for it in items], dtype=object)}


def write_corpus(
    output,
    kind: str,
    jobs: Sequence,
    work: Callable[[object], JobResult],
    *,
    columns: Mapping[str, str],
    ragged: Mapping[str, tuple[str, int]],
    content: Mapping[str, object],
    attrs: Mapping[str, object],
    finish: Callable[[CorpusWriter, Summary], tuple[dict, dict]],
    command: str,
    overwrite: bool,
    workers: int | None,
    progress: bool,
    on_error: str,
    encoding: str = S.PNG,
    commit_every: int = 8,
    what: str = "source image",
    desc: str | None = None,
    source_of: Callable[[object], object] | None = None,
) -> Summary:
    """Run `work` over `jobs` into `output` and publish it.

    content: everything that determines the items (its hash decides whether a partial file is
    resumed); finish(writer, summary) -> (tables, attrs) builds what is written once all items are in.
    """
    if on_error not in ("skip", "stop"):
        raise RankgenError(f"--on-error {on_error!r}: choose skip or stop")
    writer = CorpusWriter(output, kind, columns=columns, ragged=ragged, overwrite=overwrite,
                          encoding=encoding, fingerprint=fingerprint(content),
                          attrs={S.ATTR_COMMAND: command, **attrs})
    with writer:
        summary = run_jobs(jobs, work, writer, workers=resolve_workers(workers), desc=desc or kind,
                           unit="img" if desc is None else "job",
                           commit_every=commit_every, progress=progress, on_error=on_error, source_of=source_of)
        if summary.rows == 0 and jobs:
            raise nothing_usable(summary, what)
        tables, final_attrs = finish(writer, summary)
        writer.finish(tables=tables, attrs=final_attrs)
    return summary
