"""Lazy reader: the h5py handle is opened on first use in each process, never carried across fork."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from ..errors import RankgenError
from . import schema as S
from .writer import item_crc

RAGGED_PARTS = (S.DATA, S.OFFSET, S.SHAPE, S.CRC)


def damaged(path, what: str) -> RankgenError:
    """The one message for a corpus that is not what its attributes say."""
    return RankgenError(f"{path} is damaged: {what}; run `rankgen check {path}`")


def structure_problem(f: h5py.File, path: Path) -> str | None:
    """What is inconsistent in a finished file's layout, in checks that read no pixels (a few small
    datasets and the groups table), or None. Catches what would otherwise surface as an IndexError or
    a KeyError deep inside a reader, or as the zeros HDF5 fills in for a missing virtual source."""
    if S.ATTR_KIND not in f.attrs:
        return f"no {S.ATTR_KIND} attribute"
    if f.attrs.get(S.ATTR_KIND) not in S.KINDS:
        return f"kind {f.attrs.get(S.ATTR_KIND)!r} is none of {', '.join(S.KINDS)}"
    missing = [g for g in (S.ITEMS, S.RAGGED, S.TABLES) if g not in f]
    if missing or S.ATTR_N_ITEMS not in f.attrs:
        return "no " + ", ".join([f"/{g}" for g in missing] + ([S.ATTR_N_ITEMS] if S.ATTR_N_ITEMS not in f.attrs else []))
    n = int(f.attrs[S.ATTR_N_ITEMS])
    datasets = {f"{S.ITEMS}/{k}": ds for k, ds in f[S.ITEMS].items()}
    for name, g in f[S.RAGGED].items():
        lacking = [part for part in RAGGED_PARTS if part not in g]
        if lacking:
            return f"ragged/{name} has no {', '.join(lacking)}"
        datasets.update({f"{S.RAGGED}/{name}/{part}": g[part] for part in RAGGED_PARTS})
    for key, ds in datasets.items():
        if ds.is_virtual:
            for source in {m.file_name for m in ds.virtual_sources()}:
                if not (path.parent / source).exists():
                    return f"{key} reads from the shard {source}, which does not exist (next to {path.name})"
        if not key.endswith(S.DATA) and ds.shape[0] != n:
            return f"{key} has {ds.shape[0]} rows for {n} items"
    for name, g in f[S.RAGGED].items():
        end = int(g[S.OFFSET][n - 1]) + int(np.prod(g[S.SHAPE][n - 1])) if n else 0
        if end != g[S.DATA].shape[0]:
            return f"ragged/{name}/data has {g[S.DATA].shape[0]} values where offsets and shapes need {end}"
    if S.GROUPS in f[S.TABLES]:
        groups = f[S.TABLES][S.GROUPS][...]
        if groups.ndim != 2 or groups.size and (groups.min() < -1 or groups.max() >= n):
            return f"tables/groups holds item indices outside -1..{n - 1}"
    return None


def verified(path, name: str, index: int, item: np.ndarray, stored: int) -> np.ndarray:
    """The item, if its bytes still have the CRC written with them (far cheaper than using the item)."""
    actual = item_crc(item)
    if actual != stored:
        raise damaged(path, f"item {index} of ragged/{name} fails its CRC (stored {stored:08x}, read {actual:08x})")
    return item


class Corpus:
    """Read a finished rankgen corpus. Safe to pickle into DataLoader workers."""

    def __init__(self, path: str | os.PathLike, kind: str | tuple[str, ...] | None = None):
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._cache: dict[str, np.ndarray] = {}
        self._validate(kind)

    def _validate(self, kind) -> None:
        if not self.path.exists():
            partial = self.path.with_name(self.path.name + S.PARTIAL_SUFFIX)
            if partial.exists():
                raise RankgenError(f"{self.path} is not finished: only {partial} exists. Re-run the command that made it to resume.")
            raise RankgenError(f"{self.path} does not exist")
        try:
            f = self.file
        except OSError as exc:
            if h5py.is_hdf5(self.path):
                raise damaged(self.path, f"HDF5 cannot open it ({exc})") from None
            raise RankgenError(f"{self.path} is not an HDF5 file, so not a rankgen corpus ({exc})") from None
        attrs = f.attrs
        if attrs.get(S.ATTR_FORMAT) != S.FORMAT:
            raise RankgenError(f"{self.path} is not a rankgen corpus (no format={S.FORMAT!r} attribute)")
        version = int(attrs.get(S.ATTR_VERSION, -1))
        if version != S.SCHEMA_VERSION:
            raise RankgenError(
                f"{self.path} has schema version {version}; this rankgen reads version {S.SCHEMA_VERSION}. "
                "Regenerate the corpus with this rankgen, or install the rankgen version that wrote it."
            )
        if not bool(attrs.get(S.ATTR_COMPLETE, False)):
            raise RankgenError(f"{self.path} is marked incomplete; regenerate it")
        try:
            problem = structure_problem(f, self.path)
        except (OSError, KeyError, ValueError, IndexError) as exc:
            problem = f"its layout cannot be read ({exc})"
        actual = self.kind if problem is None else None
        # Validation must not leave a handle in the parent that forked DataLoader workers would inherit.
        self.close()
        if problem:
            raise damaged(self.path, problem)
        wanted = (kind,) if isinstance(kind, str) else kind
        if wanted and actual not in wanted:
            raise RankgenError(f"{self.path} is a {actual!r} corpus; this needs {' or '.join(map(repr, wanted))}")

    @property
    def file(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        state["_pid"] = None
        return state

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    # -- metadata ------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return str(self.file.attrs[S.ATTR_KIND])

    @property
    def attrs(self) -> dict:
        out = {}
        for key, value in self.file.attrs.items():
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, str) and value[:1] in "[{":
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            out[key] = value
        return out

    def __len__(self) -> int:
        return int(self.file.attrs[S.ATTR_N_ITEMS])

    # -- data ----------------------------------------------------------------------------
    def columns(self) -> list[str]:
        return sorted(self.file[S.ITEMS])

    def column(self, name: str) -> np.ndarray:
        if name not in self._cache:
            if name not in self.file[S.ITEMS]:
                raise RankgenError(f"{self.path} has no column {name!r}; it has {', '.join(self.columns())}")
            ds = self.file[S.ITEMS][name]
            data = self._read(f"items/{name}", lambda: ds.asstr()[...] if h5py.check_string_dtype(ds.dtype) else ds[...])
            self._cache[name] = np.asarray(data)
        return self._cache[name]

    def ragged_names(self) -> list[str]:
        return sorted(self.file[S.RAGGED])

    def ragged(self, name: str, index: int) -> np.ndarray:
        g = self.file[S.RAGGED][name]
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range for {self.path} ({len(self)} items)")
        where = f"item {index} of ragged/{name}"
        start, shape, crc = self._read(where, lambda: (int(g[S.OFFSET][index]), tuple(int(s) for s in g[S.SHAPE][index]),
                                                       int(g[S.CRC][index])))
        item = self._read(where, lambda: g[S.DATA][start : start + int(np.prod(shape))].reshape(shape))
        return verified(self.path, name, index, item, crc)

    def _read(self, what: str, read):
        """read(), with HDF5's failure on a damaged chunk (an lzf stream that does not decode) said as such."""
        try:
            return read()
        except OSError as exc:
            raise damaged(self.path, f"{what} cannot be read ({exc})") from None

    def ragged_shape(self, name: str, index: int) -> tuple[int, ...]:
        return tuple(int(s) for s in self.file[S.RAGGED][name][S.SHAPE][int(index)])

    def image(self, index: int) -> np.ndarray:
        return self.ragged("image", index)

    def tables(self) -> list[str]:
        return sorted(self.file[S.TABLES])

    def table(self, name: str) -> np.ndarray:
        key = "table:" + name
        if key not in self._cache:
            if name not in self.file[S.TABLES]:
                raise RankgenError(f"{self.path} has no table {name!r}; it has {', '.join(self.tables())}")
            ds = self.file[S.TABLES][name]
            data = self._read(f"tables/{name}", lambda: ds.asstr()[...] if h5py.check_string_dtype(ds.dtype) else ds[...])
            self._cache[key] = np.asarray(data)
        return self._cache[key]

    @property
    def groups(self) -> np.ndarray:
        """(G, L) item indices; within a row the target does not increase left to right; -1 pads."""
        return self.table(S.GROUPS)
