"""Join shards written with --shard I/N into the corpus one run would have written.

Shards are contiguous blocks of the same job list, so concatenating their items in shard order
reproduces the single-run order; group indices are shifted by the items before each shard, and
every other table must be identical in all shards (each shard stores the full source tables).
The copy (rankgen.jobs.merge) runs through the pipeline like every generating command; this module
checks the shards, builds the merged tables and attributes, and writes the virtual merge: HDF5
virtual datasets that point into the shards, with only offsets and groups copied.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from ..errors import RankgenError
from . import schema as S
from .reader import Corpus
from .writer import (_UNCLOSABLE, STRING, _disk_error, _fsync_path, check_replaceable, dataset_digests, output_lock,
                     release_output_lock, writing)


def _content_params(c: Corpus) -> dict:
    return {k: v for k, v in (c.attrs.get(S.ATTR_PARAMS) or {}).items() if k != S.SHARD_PARAM}


def open_shards(paths) -> list[Corpus]:
    if not paths:
        raise RankgenError("no shards given")
    shards = [Corpus(p) for p in paths]
    first = shards[0]
    index = {}
    for c in shards:
        shard = (c.attrs.get(S.ATTR_PARAMS) or {}).get(S.SHARD_PARAM)
        if not shard:
            raise RankgenError(f"{c.path} was not written with --shard; only shards can be merged")
        if c.version != first.version:
            raise RankgenError(f"{c.path} has schema version {c.version} and {first.path} {first.version}; "
                               "merge shards written by the same rankgen")
        if c.kind != first.kind or _content_params(c) != _content_params(first):
            raise RankgenError(f"{c.path} and {first.path} come from different commands (kind or arguments differ)")
        kernels = (c.attrs.get(S.ATTR_PIXEL_VERSIONS) or {}).get("kernels")
        if kernels != (first.attrs.get(S.ATTR_PIXEL_VERSIONS) or {}).get("kernels"):
            raise RankgenError(f"{c.path} and {first.path} were made by different distortion kernels (their "
                               "pixel_versions differ: docs/distortions.md, \"Kernel versions\"); write every shard "
                               "with the same rankgen")
        if tuple(shard) in index:
            raise RankgenError(f"{c.path} and {index[tuple(shard)].path} are both shard {shard[0]}/{shard[1]}")
        index[tuple(shard)] = c
    n = next(iter(index))[1]
    missing = [i for i in range(n) if (i, n) not in index]
    if missing:
        raise RankgenError(f"shards {', '.join(f'{i}/{n}' for i in missing)} are missing; all {n} are needed")
    ordered = [index[(i, n)] for i in range(n)]
    for c in ordered[1:]:
        for name in c.tables():
            a, b = c.table(name), ordered[0].table(name)
            same = np.array_equal(a, b, equal_nan=a.dtype.kind == "f" and b.dtype.kind == "f")
            if name != S.GROUPS and not same:
                raise RankgenError(f"table {name!r} differs between {ordered[0].path} and {c.path}")
    return ordered


def _merged_groups(shards: list[Corpus]) -> np.ndarray | None:
    if S.GROUPS not in shards[0].tables():
        return None
    parts, base = [], 0
    for c in shards:
        g = c.groups.copy()
        g[g >= 0] += base
        parts.append(g)
        base += len(c)
    return np.concatenate(parts)


# Attributes that describe one shard's writing rather than the content: the merge sets its own.
PER_FILE = {S.ATTR_FORMAT, S.ATTR_VERSION, S.ATTR_KIND, S.ATTR_RANKGEN_VERSION, S.ATTR_FINGERPRINT,
            S.ATTR_COMMITTED, S.ATTR_COMPLETE, S.ATTR_N_ITEMS, S.ATTR_CHECKSUMS, S.ATTR_PARAMS, S.ATTR_COMMAND,
            S.ATTR_JOBS_DONE, S.ATTR_SKIPPED}


def merged_attrs(shards: list[Corpus]) -> dict:
    """The content's attributes, with every shard's skipped sources."""
    out = {k: v for k, v in shards[0].attrs.items() if k not in PER_FILE}
    out[S.ATTR_PARAMS] = _content_params(shards[0])
    out[S.ATTR_SKIPPED] = json.dumps([s for c in shards for s in (c.attrs.get(S.ATTR_SKIPPED) or [])])
    return out


def merged_tables(shards: list[Corpus]) -> dict:
    """The tables of the first shard (all shards hold the same) with the groups of all of them."""
    tables = {name: shards[0].table(name) for name in shards[0].tables() if name != S.GROUPS}
    groups = _merged_groups(shards)
    if groups is not None:
        tables[S.GROUPS] = groups
    return tables


def write_virtual(shards: list[Corpus], output: Path, overwrite: bool, command: str, fingerprint: str) -> Path:
    if output.exists():
        check_replaceable(output, overwrite)
    # A name of its own: the virtual file is rebuilt whole by every run, while `<out>.partial` may be
    # another command's unfinished output, with committed items (opening it for writing emptied it).
    partial = output.with_name(output.name + ".virtual" + S.PARTIAL_SUFFIX)
    lock = output_lock(output)  # the lock every writer of `output` holds
    try:
        return _write_virtual(shards, output, partial, command, fingerprint)
    except OSError as exc:  # reading the file back, syncing or renaming it
        raise _disk_error(exc, partial, None) from None
    finally:
        if partial.exists() and partial.resolve() not in _UNCLOSABLE:
            partial.unlink()  # written whole by every run: a failed one's is of no use
        release_output_lock(lock)


def _write_virtual(shards: list[Corpus], output: Path, partial: Path, command: str, fingerprint: str) -> Path:
    files = [c.file for c in shards]
    n_total = sum(len(c) for c in shards)

    def source_name(c: Corpus) -> str:
        # Relative to the merged file, so the shards and the merged file can move together.
        return os.path.relpath(c.path.resolve(), output.parent.resolve())

    def virtual(dset_path: str, out: h5py.File, dtype, lengths, width=None):
        shape = (sum(lengths),) if width is None else (sum(lengths), width)
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        start = 0
        for c, f, n in zip(shards, files, lengths):
            if n:
                src_shape = (n,) if width is None else (n, width)
                layout[start : start + n] = h5py.VirtualSource(source_name(c), dset_path, shape=src_shape)
            start += n
        out.create_virtual_dataset(dset_path, layout, fillvalue=None if h5py.check_string_dtype(dtype) else 0)

    tables = merged_tables(shards)
    # Offsets and tables are the file's bulk; the rest is HDF5's metadata (in DISK_HEADROOM).
    nbytes = 8 * n_total * len(files[0][S.RAGGED]) + sum(value.nbytes for value in tables.values())
    what = f"the merged file's offsets and tables ({n_total} items)"
    with writing(partial, "w", nbytes, what) as out:
        out.attrs[S.ATTR_FORMAT] = S.FORMAT
        out.attrs[S.ATTR_VERSION] = shards[0].version  # the layout of the data it points to
        out.attrs[S.ATTR_KIND] = shards[0].kind
        from .. import __version__

        out.attrs[S.ATTR_RANKGEN_VERSION] = __version__
        # A fingerprint of its own, as every corpus has: `materialize` keys its resume on it.
        for key, value in {**merged_attrs(shards), S.ATTR_COMMAND: command, S.ATTR_FINGERPRINT: fingerprint}.items():
            out.attrs[key] = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value
        out.attrs["virtual_sources"] = json.dumps([source_name(c) for c in shards])
        lengths = [len(c) for c in shards]
        for name, ds in files[0][S.ITEMS].items():
            virtual(f"{S.ITEMS}/{name}", out, ds.dtype, lengths)
        for name, g in files[0][S.RAGGED].items():
            base = f"{S.RAGGED}/{name}"
            data_lengths = [f[base][S.DATA].shape[0] for f in files]
            virtual(f"{base}/{S.DATA}", out, g[S.DATA].dtype, data_lengths)
            virtual(f"{base}/{S.SHAPE}", out, g[S.SHAPE].dtype, lengths, width=g[S.SHAPE].shape[1])
            virtual(f"{base}/{S.CRC}", out, g[S.CRC].dtype, lengths)
            for part in (S.SIZE, S.STORED):  # schema 2
                if part in g:
                    virtual(f"{base}/{part}", out, g[part].dtype, lengths)
            for key, value in g.attrs.items():
                out[base].attrs[key] = value
            offsets = np.concatenate([f[base][S.OFFSET][...] + sum(data_lengths[:k]) for k, f in enumerate(files)])
            out.create_dataset(f"{base}/{S.OFFSET}", data=offsets.astype(np.int64), track_times=False)
        out.create_group(S.TABLES)
        for name, value in tables.items():
            dtype = STRING if value.dtype.kind in "UO" else value.dtype
            out[S.TABLES].create_dataset(name, data=value.astype(object) if dtype is STRING else value, dtype=dtype,
                                         track_times=False)
        out.attrs[S.ATTR_N_ITEMS] = n_total
        out.attrs[S.ATTR_COMMITTED] = n_total
    # HDF5 opens virtual sources with the access mode of the virtual file and refuses a file this
    # process already has open, so digest read-only with the shards closed, then write the result.
    for c in shards:
        c.close()
    with h5py.File(partial, "r") as out:
        digests = dataset_digests(out)
    with writing(partial, "r+", 0, "its checksums") as out:
        out.attrs[S.ATTR_CHECKSUMS] = json.dumps(digests, sort_keys=True)
        out.attrs[S.ATTR_COMPLETE] = True
    _fsync_path(partial)
    os.replace(partial, output)
    _fsync_path(output.parent)
    return output
