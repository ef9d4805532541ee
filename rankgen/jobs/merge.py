"""`rankgen merge` as a library call: shards written with --shard I/N -> the corpus one run would have
written, copied item by item through the pipeline (progress bar, timed commits, resumable) or as HDF5
virtual datasets that point into the shards (rankgen.corpus.merge)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..corpus import open_corpus
from ..corpus import schema as S
from ..corpus.codec import encoding_for
from ..corpus.merge import merged_attrs, merged_tables, open_shards, write_virtual
from ..corpus.writer import fingerprint
from ..errors import RankgenError
from .base import replay_command, write_corpus
from .copy import CopyJob, copy_items, ranges

# Items per copy job: small enough that a job's rows are a few MB, large enough to amortize a job.
ITEMS_PER_JOB = 64


def merge(shards, output, *, virtual: bool = False, overwrite: bool = False, workers: int | None = None,
          progress: bool = True) -> Path:
    """Join shards into one corpus; `rankgen merge`. Returns the merged file's path.

    >>> rankgen.merge(["part-0.h5", "part-1.h5"], "corpus.h5")
    """
    paths = [Path(p) for p in shards]
    output = Path(output)
    if output.resolve() in {p.resolve() for p in paths}:
        raise RankgenError(f"-o {output} is also one of the shards to merge; write the merged corpus to another path")
    opened = open_shards(paths)
    command = replay_command("merge", [("--virtual", virtual)], arguments=[str(p) for p in paths])
    # What the shards hold, not only where they are: a partial merge resumed over shards regenerated
    # since (another seed, the same sizes) mixed the two runs.
    content = {"merge": [str(c.path.resolve()) for c in opened], "sizes": [len(c) for c in opened],
               "shards": [[c.attrs.get(S.ATTR_FINGERPRINT), c.attrs.get(S.ATTR_CHECKSUMS)] for c in opened]}
    if virtual:
        return write_virtual(opened, output, overwrite, command, fingerprint(content))
    first = opened[0]
    columns = {name: ("str" if h5py.check_string_dtype(ds.dtype) else ds.dtype.str)
               for name, ds in first.file[S.ITEMS].items()}
    ragged = {name: first.ragged_spec(name) for name in first.ragged_names()}
    encoding = first.copy_encoding()
    attrs, tables = merged_attrs(opened), merged_tables(opened)
    jobs = []
    # As the writer will store each array, so that bytes already in that encoding are carried over.
    encodings = tuple((name, encoding_for(encoding, np.dtype(spec), ndim)) for name, (spec, ndim) in ragged.items())
    for c in opened:
        jobs += [CopyJob(str(c.path.resolve()), a, b, tuple(columns), encodings) for a, b in ranges(len(c), ITEMS_PER_JOB)]
        c.close()  # no handle of this process may cross the fork into the workers
    try:
        write_corpus(output, first.kind, jobs, copy_items, columns=columns, ragged=ragged, command=command,
                     content={"fingerprint": fingerprint(content)}, attrs=attrs,
                     finish=lambda writer, summary: (tables, {}), encoding=encoding, overwrite=overwrite,
                     workers=workers, progress=progress, on_error="stop", what="item", desc="merge")
    finally:
        open_corpus.cache_clear()
    return output
