"""Verify a corpus file end to end: structure, counts, per-item CRCs and dataset digests."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from . import schema as S
from .codec import crc32, decode
from .reader import member_problem
from .writer import dataset_digests


# A compact corpus's regenerated items are checked 1 in REGENERATE_EVERY by default (all with
# --all): regenerating costs what writing them would have cost.
REGENERATE_EVERY = 16


def check(path: str | Path, *, regenerate_all: bool = False) -> list[str]:
    """Everything wrong with the file, as sentences; an empty list means it is sound."""
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        return [f"{path} cannot be opened as HDF5 ({exc}): regenerate it"]
    with f:
        attrs = f.attrs
        if attrs.get(S.ATTR_FORMAT) != S.FORMAT:
            return [f"{path} is not a rankgen corpus"]
        try:
            problems, absent = _check_open(f, path)
        except OSError as exc:  # HDF5 failing on a damaged block it had to read
            return [f"cannot be read ({exc})"]
    if not problems and any(len(a) for a in absent.values()):
        problems += _check_regenerated(path, absent, regenerate_all)
    return problems


def _check_open(f: h5py.File, path: Path) -> tuple[list[str], dict]:
    """(problems, the regenerated items of each ragged array) of an open file."""
    attrs = f.attrs
    problems: list[str] = []
    version = int(attrs.get(S.ATTR_VERSION, -1))
    if version not in S.READABLE_VERSIONS:
        problems.append(f"schema version {attrs.get(S.ATTR_VERSION)} (this rankgen checks "
                        f"{', '.join(map(str, S.READABLE_VERSIONS))})")
    if not attrs.get(S.ATTR_COMPLETE, False):
        problems.append("not marked complete: a run that did not finish")
    if attrs.get(S.ATTR_KIND) not in S.KINDS:
        problems.append(f"kind {attrs.get(S.ATTR_KIND)!r} is none of {', '.join(S.KINDS)}")
    problem = member_problem(f)
    if problem:
        problems.append(problem)
    if problems:
        return problems, {}
    for ds in _datasets(f):
        gone = sorted({m.file_name for m in ds.virtual_sources() if not (path.parent / m.file_name).exists()}
                      if ds.is_virtual else ())
        if gone:
            problems.append(f"{ds.name[1:]} reads from {', '.join(gone)}, which does not exist: a deleted shard")
    if problems:
        return problems, {}
    n = int(attrs.get(S.ATTR_N_ITEMS, -1))
    for name, ds in f[S.ITEMS].items():
        if ds.shape != (n,):
            problems.append(f"items/{name} has {ds.shape[0]} values for {n} items")
    for name, g in f[S.RAGGED].items():
        problems += _check_ragged(name, g, n, version)
    if S.GROUPS in f[S.TABLES]:
        groups = f[S.TABLES][S.GROUPS][...]
        bad = (groups < -1) | (groups >= n)
        if bad.any():
            problems.append(f"tables/groups has {int(bad.sum())} indices outside 0..{n - 1}")
    stored = json.loads(attrs.get(S.ATTR_CHECKSUMS, "{}"))
    if not stored:
        problems.append("no stored checksums (written by an older rankgen?)")
    actual = dataset_digests(f)
    for key in sorted(set(stored) | set(actual)):
        if stored.get(key) != actual.get(key):
            what = "missing" if key not in actual else "added" if key not in stored else "changed since it was written"
            problems.append(f"{key}: {what}")
    absent = {name: np.flatnonzero(g[S.STORED][...] == 0) for name, g in f[S.RAGGED].items()
              if version > 1 and S.STORED in g}
    return problems, absent


def _datasets(f: h5py.File) -> list[h5py.Dataset]:
    out = []
    f.visititems(lambda _, obj: out.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return out


def _check_regenerated(path: Path, absent: dict, regenerate_all: bool) -> list[str]:
    """Regenerate a compact corpus's items (a sample, or all) and compare them with their CRCs."""
    from ..errors import RankgenError
    from .reader import Corpus

    corpus = Corpus(path)
    problems = []
    for name, indices in absent.items():
        for i in indices if regenerate_all else indices[::REGENERATE_EVERY]:
            try:
                corpus.ragged(name, int(i))
            except RankgenError as exc:
                problems.append(str(exc))
                break  # the first names the item and the versions; the rest would repeat it
    corpus.close()
    return problems


def _check_ragged(name: str, g: h5py.Group, n: int, version: int) -> list[str]:
    parts = (S.DATA, S.OFFSET, S.SHAPE, S.CRC) if version == 1 else (S.DATA, S.OFFSET, S.SIZE, S.SHAPE, S.CRC, S.STORED)
    for part in parts:
        if part not in g:
            return [f"ragged/{name}/{part} is missing"]
    offsets, shapes, crcs = g[S.OFFSET][...], g[S.SHAPE][...], g[S.CRC][...]
    if version == 1:  # offsets and sizes count typed values
        sizes = np.prod(shapes.astype(np.int64), axis=1) if n else np.zeros(0, np.int64)
        encoding, dtype = S.NONE, g[S.DATA].dtype
    else:
        sizes = g[S.SIZE][...]
        encoding, dtype = str(g.attrs.get(S.ATTR_ENCODING)), str(g.attrs.get(S.ATTR_DTYPE))
        if encoding not in S.ENCODINGS:
            return [f"ragged/{name}: unknown encoding {encoding!r}"]
    if not (len(offsets) == len(shapes) == len(crcs) == len(sizes) == n):
        return [f"ragged/{name}: {len(offsets)} offsets, {len(sizes)} sizes, {len(shapes)} shapes, {len(crcs)} CRCs "
                f"for {n} items"]
    ends = offsets + sizes
    if n and (offsets[0] != 0 or np.any(offsets[1:] != ends[:-1]) or ends[-1] != g[S.DATA].shape[0]):
        return [f"ragged/{name}: offsets and sizes do not tile the data array"]
    data = g[S.DATA]
    stored = g[S.STORED][...] if version > 1 else np.ones(n, dtype=np.uint8)
    if len(stored) != n or np.any(sizes[stored == 0] != 0):
        return [f"ragged/{name}: the stored flags do not match the sizes"]
    bad, undecodable = [], []
    for i in np.flatnonzero(stored):
        try:
            raw = data[offsets[i] : ends[i]]
            if version > 1:
                raw = decode(raw, tuple(int(s) for s in shapes[i]), dtype, encoding)
        except (OSError, ValueError):  # a damaged lzf chunk (schema 1) or PNG (schema 2)
            undecodable.append(i)
            continue
        if crc32(raw) != int(crcs[i]):
            bad.append(i)
    out = []
    if bad:
        out.append(f"ragged/{name}: {len(bad)} items fail their CRC, first at item {bad[0]}")
    if undecodable:
        out.append(f"ragged/{name}: {len(undecodable)} items cannot be decoded (damaged compressed data), "
                   f"first at item {undecodable[0]}")
    return out
