"""`rankgen materialize` as a library call: a compact distort corpus (`--pixels references|costly|...`)
-> the corpus `rankgen distort` writes without the option, identical in every dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..corpus import Corpus, open_corpus
from ..corpus import schema as S
from ..corpus.codec import encoding_for
from ..errors import RankgenError
from .base import Summary, write_corpus
from .copy import CopyJob, copy_items
from .distort import COLUMNS, RAGGED

# Attributes that describe how the compact file was written rather than the content.
REWRITTEN = {S.ATTR_FORMAT, S.ATTR_VERSION, S.ATTR_KIND, S.ATTR_RANKGEN_VERSION, S.ATTR_FINGERPRINT,
             S.ATTR_COMMITTED, S.ATTR_COMPLETE, S.ATTR_N_ITEMS, S.ATTR_CHECKSUMS, S.ATTR_COMMAND, S.ATTR_PARAMS,
             S.ATTR_JOBS_DONE, S.ATTR_STORED_TYPES}


def materialize(compact: str | Path, output: str | Path, *, workers: int | None = None, overwrite: bool = False,
                progress: bool = True) -> Summary:
    """Write every item's pixels of a compact distort corpus; `rankgen materialize`.

    >>> rankgen.materialize("waterloo-compact.h5", "waterloo.h5")
    """
    if Path(output).resolve() == Path(compact).resolve():
        raise RankgenError(f"-o {output} is the compact corpus itself; write the full corpus to another path")
    corpus = Corpus(compact, kind="distort")
    stored = corpus.attrs  # every attribute, decoded: read once
    shards = {(Path(compact).resolve().parent / name).resolve() for name in stored.get("virtual_sources") or ()}
    if Path(output).resolve() in shards:
        raise RankgenError(f"-o {output} is one of the shards {compact} reads from; write the full corpus to another path")
    ref = corpus.column("ref")
    starts = np.flatnonzero(np.r_[True, ref[1:] != ref[:-1]])
    stops = np.r_[starts[1:], len(ref)]
    path = str(Path(compact).resolve())
    encodings = tuple((name, encoding_for(corpus.copy_encoding(), np.dtype(spec), ndim)) for name, (spec, ndim) in RAGGED.items())
    # One job per source: its levels are regenerated from its reference, decoded once per job.
    jobs = [CopyJob(path, int(a), int(b), tuple(COLUMNS), encodings, regenerate=True) for a, b in zip(starts, stops)]
    attrs = {k: v for k, v in stored.items() if k not in REWRITTEN}
    params = {k: v for k, v in (stored.get(S.ATTR_PARAMS) or {}).items() if k != "pixels"}
    command = " ".join(w for w in _without_pixels(stored.get(S.ATTR_COMMAND) or ""))
    tables = {name: corpus.table(name) for name in corpus.tables()}
    names = [str(n) for n in corpus.table("distortions")]
    encoding = corpus.copy_encoding()
    corpus.close()  # no handle of this process may cross the fork into the workers
    try:
        return write_corpus(
            output, "distort", jobs, copy_items, columns=COLUMNS, ragged=RAGGED, command=command,
            # The checksums as well: a virtual merge once had no fingerprint, and a partial
            # materialization of one compact corpus was resumed from another.
            content={"materialize": stored.get(S.ATTR_FINGERPRINT), "checksums": stored.get(S.ATTR_CHECKSUMS)},
            attrs={**attrs, S.ATTR_PARAMS: params, S.ATTR_STORED_TYPES: names},
            finish=lambda writer, summary: (tables, {}), encoding=encoding, overwrite=overwrite,
            workers=workers, progress=progress, on_error="stop", what="item", desc="materialize")
    finally:
        open_corpus.cache_clear()


def _without_pixels(command: str):
    """The stored command line minus its --pixels option: the command that writes the full corpus."""
    import shlex

    words = shlex.split(command)
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word == "--pixels":
            skip = True
            continue
        yield shlex.quote(word)

