"""Lazy reader: the h5py handle is opened on first use in each process, never carried across fork."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import h5py
import numpy as np

from ..errors import RankgenError
from . import schema as S
from .codec import Encoded, crc32, decode

# Decoded references a process keeps for regenerating the items of a compact corpus: a group's
# levels are usually read together, and each needs its reference.
REFERENCES_KEPT = 8

RAGGED_PARTS = {1: (S.DATA, S.OFFSET, S.SHAPE, S.CRC), 2: (S.DATA, S.OFFSET, S.SIZE, S.SHAPE, S.CRC, S.STORED)}


def damaged(path, what: str) -> RankgenError:
    """The one message for a corpus that is not what its attributes say."""
    return RankgenError(f"{path} is damaged: {what}; run `rankgen check {path}`")


def member_problem(f: h5py.File) -> str | None:
    """A top-level group, or a member of one, that is missing or of the wrong HDF5 type (a dangling
    link reads as None): what every other check would trip over with a TypeError or AttributeError."""
    for group, member_type in ((S.ITEMS, h5py.Dataset), (S.RAGGED, h5py.Group), (S.TABLES, h5py.Dataset)):
        if not isinstance(f.get(group), h5py.Group):
            return f"no /{group} group"
        for name, member in f[group].items():
            if not isinstance(member, member_type):
                return f"{group}/{name} is not a {member_type.__name__.lower()} (a dangling link?)"
    return None


def structure_problem(f: h5py.File, path: Path) -> str | None:
    """What is inconsistent in a finished file's layout, in checks that read no pixels (a few small
    datasets and the groups table), or None. Catches what would otherwise surface as an IndexError or
    a KeyError deep inside a reader, or as the zeros HDF5 fills in for a missing virtual source."""
    if S.ATTR_KIND not in f.attrs:
        return f"no {S.ATTR_KIND} attribute"
    if f.attrs.get(S.ATTR_KIND) not in S.KINDS:
        return f"kind {f.attrs.get(S.ATTR_KIND)!r} is none of {', '.join(S.KINDS)}"
    if S.ATTR_N_ITEMS not in f.attrs:
        return f"no {S.ATTR_N_ITEMS}"
    problem = member_problem(f)
    if problem:
        return problem
    n = int(f.attrs[S.ATTR_N_ITEMS])
    version = int(f.attrs[S.ATTR_VERSION])
    parts = RAGGED_PARTS[version]
    datasets = {f"{S.ITEMS}/{k}": ds for k, ds in f[S.ITEMS].items()}
    for name, g in f[S.RAGGED].items():
        lacking = [part for part in parts if part not in g]
        if lacking:
            return f"ragged/{name} has no {', '.join(lacking)}"
        datasets.update({f"{S.RAGGED}/{name}/{part}": g[part] for part in parts})
    for key, ds in datasets.items():
        if ds.is_virtual:
            for source in {m.file_name for m in ds.virtual_sources()}:
                if not (path.parent / source).exists():
                    return f"{key} reads from the shard {source}, which does not exist (next to {path.name})"
        if not key.endswith(S.DATA) and ds.shape[0] != n:
            return f"{key} has {ds.shape[0]} rows for {n} items"
    for name, g in f[S.RAGGED].items():
        # Schema 1 offsets count values (item i has prod(shape) of them); schema 2 counts bytes.
        size = 0 if n == 0 else int(np.prod(g[S.SHAPE][n - 1])) if version == 1 else int(g[S.SIZE][n - 1])
        end = int(g[S.OFFSET][n - 1]) + size if n else 0
        if end != g[S.DATA].shape[0]:
            return f"ragged/{name}/data has {g[S.DATA].shape[0]} values where offsets and sizes need {end}"
    if S.GROUPS in f[S.TABLES]:
        groups = f[S.TABLES][S.GROUPS][...]
        if groups.ndim != 2 or groups.size and (groups.min() < -1 or groups.max() >= n):
            return f"tables/groups holds item indices outside -1..{n - 1}"
    return None


def verified(path, name: str, index: int, item: np.ndarray, stored: int) -> np.ndarray:
    """The item, if its bytes still have the CRC written with them (far cheaper than using the item)."""
    actual = crc32(item)
    if actual != stored:
        raise damaged(path, f"item {index} of ragged/{name} fails its CRC (stored {stored:08x}, read {actual:08x})")
    return item


class Corpus:
    """Read a finished rankgen corpus. Safe to pickle into DataLoader workers, which refuse a file
    replaced at its path since it was opened here."""

    def __init__(self, path: str | os.PathLike, kind: str | tuple[str, ...] | None = None):
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._identity: tuple[str, ...] | None = None  # of the file first opened, which the caches describe
        self._cache: dict[str, object] = {}  # columns, tables, ragged parts, encodings and attrs, read once
        self._data: dict[str, h5py.Dataset] = {}  # ragged/<name>/data of this process's handle
        self._references: dict[int, np.ndarray] = {}
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
        if version not in S.READABLE_VERSIONS:
            raise RankgenError(
                f"{self.path} has schema version {version}; this rankgen reads versions "
                f"{', '.join(map(str, S.READABLE_VERSIONS))}. Install a rankgen that reads it, or regenerate the corpus."
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
            self._data = {}
            self._check_identity()
        return self._file

    def _check_identity(self) -> None:
        """The caches (and a parent's, in a worker) describe the file first opened: a file replaced at
        this path since (a re-run with --overwrite) once paired its new pixels with the old labels.
        Content, not inode, decides: a re-run of the same command writes the same content to a new
        file, and a network file system may report another device after a remount."""
        attrs = self._file.attrs
        identity = tuple(str(attrs.get(key)) for key in (S.ATTR_VERSION, S.ATTR_RANKGEN_VERSION, S.ATTR_COMMAND,
                                                         S.ATTR_FINGERPRINT, S.ATTR_N_ITEMS, S.ATTR_CHECKSUMS))
        # Each array's encoding as well: the fingerprint and the checksums leave out --compression (it
        # changes no pixel, but every offset and size), and a merge of shards does not spell it out.
        if member_problem(self._file) is None:  # else validation names the problem
            identity += tuple(f"{name}:{g.attrs.get(S.ATTR_ENCODING)}" for name, g in self._file[S.RAGGED].items())
        if self._identity is None:
            self._identity = identity
        elif identity != self._identity:
            self.close()
            raise RankgenError(f"{self.path} changed after it was opened (replaced by a re-run?); open it again "
                               "(a new Corpus, or a new DataLoader) to read the new file")

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        state["_pid"] = None
        state["_data"] = {}
        state["_references"] = {}
        return state

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._data = {}

    # -- metadata ------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return str(self.file.attrs[S.ATTR_KIND])

    @property
    def version(self) -> int:
        if "attr:version" not in self._cache:
            self._cache["attr:version"] = int(self.file.attrs[S.ATTR_VERSION])
        return self._cache["attr:version"]

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
        if "attr:len" not in self._cache:
            self._cache["attr:len"] = int(self.file.attrs[S.ATTR_N_ITEMS])
        return self._cache["attr:len"]

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
        """Item `index` of ragged array `name`, checked against the CRC written with it."""
        index = self._index(index)
        where = f"item {index} of ragged/{name}"
        # Each item's shape, offset and size come from arrays read whole once: three HDF5 lookups per
        # item were a fifth of reading a PNG item and most of reading a raw one (docs/benchmarks.md,
        # "Writing": reading 355-361 -> 460 and 1289-1341 -> 6346 images/s).
        shape = tuple(int(s) for s in self._part(name, S.SHAPE)[index])
        start = int(self._part(name, S.OFFSET)[index])
        data = self._dataset(name)
        if self.version == 1:  # raw typed values under an HDF5 filter; offsets count values
            item = self._read(where, lambda: data[start : start + int(np.prod(shape))].reshape(shape))
        elif not self._part(name, S.STORED)[index]:
            return self._regenerate(name, index)
        else:
            encoding, dtype = self.ragged_encoding(name)
            stop = start + int(self._part(name, S.SIZE)[index])
            buf = self._read(where, lambda: data[start:stop])
            try:
                item = decode(buf, shape, dtype, encoding)
            except ValueError as exc:
                raise damaged(self.path, f"{where} does not decode ({exc})") from None
        return verified(self.path, name, index, item, int(self._part(name, S.CRC)[index]))

    # -- compact corpora -----------------------------------------------------------------
    def is_stored(self, name: str, index: int) -> bool:
        """Whether item `index`'s bytes are in the file (schema 1 and full corpora: always)."""
        return self.version == 1 or bool(self._part(name, S.STORED)[int(index)])

    def stored_items(self, name: str) -> np.ndarray:
        """Indices of the items whose bytes are in the file."""
        return np.arange(len(self)) if self.version == 1 else np.flatnonzero(self._part(name, S.STORED))

    def stored_count(self, name: str) -> int:
        return len(self) if self.version == 1 else int(self._part(name, S.STORED).sum())

    def _part(self, name: str, part: str) -> np.ndarray:
        key = f"ragged:{name}:{part}"
        if key not in self._cache:
            self._cache[key] = self._read(f"ragged/{name}/{part}", lambda: self.file[S.RAGGED][name][part][...])
        return self._cache[key]

    def _regenerate(self, name: str, index: int) -> np.ndarray:
        """A compact corpus's item from its stored reference, distortion, parameter and seed,
        checked against the CRC recorded when it was made: drift is an error, never silent."""
        if self.kind != "distort" or name != "image":
            raise RankgenError(f"{self.path} is damaged: item {index} of {name!r} has no stored bytes; "
                               f"run `rankgen check {self.path}`")
        from ..distortions import distort_recorded

        reference = self._reference(self._reference_index(index))
        distortion, param, seed = self.column("distortion")[index], self.column("param")[index], self.column("seed")[index]
        image, _ = distort_recorded(reference, str(distortion), float(param), np.random.default_rng(int(seed)))
        if crc32(image) != int(self._part(name, S.CRC)[index]):
            raise RankgenError(self._drift(index))
        return image

    def _reference_index(self, index: int) -> int:
        if "reference_index" not in self._cache:
            ref, crop, distortion = self.column("ref"), self.column("crop"), self.column("distortion")
            first = {}
            for i in np.flatnonzero(distortion == "reference"):
                first[(int(ref[i]), int(crop[i]))] = int(i)
            self._cache["reference_index"] = np.array(
                [first.get((int(r), int(c)), -1) for r, c in zip(ref, crop)], dtype=np.int64)
        found = int(self._cache["reference_index"][index])
        if found < 0:
            raise RankgenError(f"{self.path} is damaged: item {index} has no reference item; run `rankgen check {self.path}`")
        return found

    def _reference(self, index: int) -> np.ndarray:
        if index not in self._references:
            if len(self._references) >= REFERENCES_KEPT:
                self._references.pop(next(iter(self._references)))
            self._references[index] = self.ragged("image", index)
        return self._references[index]

    def version_drift(self) -> list[str]:
        """What the pixels depended on when written and differs here, e.g. 'opencv 4.10.0 (here 5.0.0)'."""
        from ..distortions import pixel_versions

        written = self.attrs.get(S.ATTR_PIXEL_VERSIONS) or {}
        here = pixel_versions((written.get("kernels") or {}).keys())
        out = [f"kernel of {name} {v} (here {here['kernels'][name]})"
               for name, v in sorted((written.get("kernels") or {}).items()) if here["kernels"][name] != v]
        out += [f"{lib} {v} (here {here.get(lib)})" for lib, v in sorted(written.items())
                if lib != "kernels" and here.get(lib) != v]
        return out

    def _drift(self, index: int) -> str:
        item = (f"item {index} ({self.column('distortion')[index]} level {self.column('level')[index]} of reference "
                f"{self.table('ref_id')[self.column('ref')[index]]})")
        drift = self.version_drift()
        why = ("it was written with " + ", ".join(drift) if drift else
               "the recorded versions match, so a library build differs (e.g. another libjpeg inside OpenCV)")
        return (f"{self.path}: {item} regenerates to other pixels than were written; {why}. Write its pixels with "
                f"`rankgen materialize {self.path} -o FULL.h5` where it was made, or regenerate the corpus here")

    def ragged_encoded(self, name: str, index: int) -> Encoded:
        """Item `index` as stored (schema 2), so copies (merge, verify --drop) move bytes without
        re-encoding and keep the CRC that was computed where the item was made."""
        index = self._index(index)
        start = int(self._part(name, S.OFFSET)[index])
        data = self._dataset(name)[start : start + int(self._part(name, S.SIZE)[index])].tobytes()
        return Encoded(data, tuple(int(s) for s in self._part(name, S.SHAPE)[index]), int(self._part(name, S.CRC)[index]),
                       stored=bool(self._part(name, S.STORED)[index]))

    def ragged_for_copy(self, name: str, index: int, encoding: str) -> Encoded | np.ndarray:
        """Item `index` for a writer that stores `name` with `encoding`: the stored bytes when they
        are already in that encoding (CRC carried over), else the decoded array to re-encode. Either
        way the item is checked against its CRC first: a copy must not pass a damaged item on."""
        if self.version > 1 and self.ragged_encoding(name)[0] == encoding:
            item = self.ragged_encoded(name, index)
            if item.stored:
                self.ragged(name, index)
            return item
        return self.ragged(name, index)

    def copy_encoding(self) -> str:
        """The writer encoding that keeps this corpus's stored bytes (schema 1 is re-encoded as PNG)."""
        stored = {self.ragged_encoding(name)[0] for name in self.ragged_names()} if self.version > 1 else set()
        return S.NONE if stored == {S.NONE} else S.PNG

    def ragged_encoding(self, name: str) -> tuple[str, str]:
        """(encoding, dtype string) of a ragged array; schema 1 stored everything raw."""
        key = f"encoding:{name}"
        if key not in self._cache:  # read once: every item's read asks for it
            g = self.file[S.RAGGED][name]
            self._cache[key] = ((S.NONE, g[S.DATA].dtype.str) if self.version == 1 else
                                (str(g.attrs[S.ATTR_ENCODING]), str(g.attrs[S.ATTR_DTYPE])))
        return self._cache[key]

    def ragged_spec(self, name: str) -> tuple[str, int]:
        """(dtype, ndim) as a CorpusWriter takes it."""
        return self.ragged_encoding(name)[1], int(self.file[S.RAGGED][name][S.SHAPE].shape[1])

    def _index(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range for {self.path} ({len(self)} items)")
        return index

    def _dataset(self, name: str) -> h5py.Dataset:
        file = self.file  # (re)opened in this process first, which empties self._data
        if name not in self._data:
            self._data[name] = file[S.RAGGED][name][S.DATA]
        return self._data[name]

    def _read(self, what: str, read):
        """read(), with HDF5's failure on a damaged chunk (an lzf stream that does not decode) said as such."""
        try:
            return read()
        except OSError as exc:
            raise damaged(self.path, f"{what} cannot be read ({exc})") from None

    def ragged_shape(self, name: str, index: int) -> tuple[int, ...]:
        return tuple(int(s) for s in self._part(name, S.SHAPE)[self._index(index)])

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


# Jobs carry the path, not the Corpus: a Corpus pickles its cached columns, which would make every
# job as large as the whole index. Each process opens the file once.
open_corpus = functools.lru_cache(maxsize=None)(Corpus)
