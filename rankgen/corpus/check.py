"""Verify a corpus file end to end: structure, counts, per-item CRCs and dataset digests."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from . import schema as S
from .writer import dataset_digests, item_crc


def check(path: str | Path) -> list[str]:
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
            return _check_open(f, path)
        except OSError as exc:  # HDF5 failing on a damaged block it had to read
            return [f"cannot be read ({exc})"]


def _check_open(f: h5py.File, path: Path) -> list[str]:
    attrs = f.attrs
    problems: list[str] = []
    if int(attrs.get(S.ATTR_VERSION, -1)) != S.SCHEMA_VERSION:
        problems.append(f"schema version {attrs.get(S.ATTR_VERSION)} (this rankgen checks {S.SCHEMA_VERSION})")
    if not attrs.get(S.ATTR_COMPLETE, False):
        problems.append("not marked complete: a run that did not finish")
    if attrs.get(S.ATTR_KIND) not in S.KINDS:
        problems.append(f"kind {attrs.get(S.ATTR_KIND)!r} is none of {', '.join(S.KINDS)}")
    for group in (S.ITEMS, S.RAGGED, S.TABLES):
        if group not in f:
            problems.append(f"missing group /{group}")
    if problems:
        return problems
    for ds in _datasets(f):
        gone = sorted({m.file_name for m in ds.virtual_sources() if not (path.parent / m.file_name).exists()}
                      if ds.is_virtual else ())
        if gone:
            problems.append(f"{ds.name[1:]} reads from {', '.join(gone)}, which does not exist: a deleted shard")
    if problems:
        return problems
    n = int(attrs.get(S.ATTR_N_ITEMS, -1))
    for name, ds in f[S.ITEMS].items():
        if ds.shape != (n,):
            problems.append(f"items/{name} has {ds.shape[0]} values for {n} items")
    for name, g in f[S.RAGGED].items():
        problems += _check_ragged(name, g, n)
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
    return problems


def _datasets(f: h5py.File) -> list[h5py.Dataset]:
    out = []
    f.visititems(lambda _, obj: out.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return out


def _check_ragged(name: str, g: h5py.Group, n: int) -> list[str]:
    out = []
    for part in (S.DATA, S.OFFSET, S.SHAPE, S.CRC):
        if part not in g:
            return [f"ragged/{name}/{part} is missing"]
    offsets, shapes, crcs = g[S.OFFSET][...], g[S.SHAPE][...], g[S.CRC][...]
    if len(offsets) != n or len(shapes) != n or len(crcs) != n:
        return [f"ragged/{name}: {len(offsets)} offsets, {len(shapes)} shapes, {len(crcs)} CRCs for {n} items"]
    sizes = np.prod(shapes.astype(np.int64), axis=1) if n else np.zeros(0, np.int64)
    ends = offsets + sizes
    if n and (offsets[0] != 0 or np.any(offsets[1:] != ends[:-1]) or ends[-1] != g[S.DATA].shape[0]):
        return [f"ragged/{name}: offsets and shapes do not tile the data array"]
    data = g[S.DATA]
    bad, unreadable = [], []
    for i in range(n):
        try:
            if item_crc(data[offsets[i] : ends[i]]) != int(crcs[i]):
                bad.append(i)
        except OSError:  # a compressed chunk that no longer decodes
            unreadable.append(i)
    if bad:
        out.append(f"ragged/{name}: {len(bad)} items fail their CRC, first at item {bad[0]}")
    if unreadable:
        out.append(f"ragged/{name}: {len(unreadable)} items cannot be decoded (damaged compressed data), "
                   f"first at item {unreadable[0]}")
    return out
