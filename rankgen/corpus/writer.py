"""Crash-safe, resumable HDF5 writer (schema version 2).

A run writes `<out>.partial`, commits rows in order and records how many are committed in an
attribute; a killed run is resumed by re-running the same command (same fingerprint), which
truncates anything written after the last commit. Only `finish()` renames the file to its final
name, after setting `complete`, closing and fsyncing, so a file under the final name is whole.
Ragged items arrive encoded (rankgen.corpus.codec, done in the workers) and are stored as bytes,
so writing is I/O and bookkeeping only.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import signal
import stat
import sys
import threading
from pathlib import Path
from typing import IO, Iterable, Mapping

import h5py
import numpy as np

from .. import __version__
from ..errors import RankgenError
from ..locking import LockHeld, exclusive_lock
from . import schema as S
from .codec import Encoded, encode, encoding_for

STRING = h5py.string_dtype()


def _dtype(spec: str):
    return STRING if spec == "str" else np.dtype(spec)


def fingerprint(params: Mapping[str, object]) -> str:
    """What makes two runs produce the same content; a partial file is resumed only on a match."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def dataset_digests(f: h5py.File) -> dict[str, str]:
    """sha256 of every per-item column and table, so `rankgen check` can tell a silent change."""
    out = {}
    for group in (S.ITEMS, S.TABLES):
        for name, ds in f[group].items():
            data = ds.asstr()[...] if h5py.check_string_dtype(ds.dtype) else ds[...]
            h = hashlib.sha256(str(ds.dtype).encode() + str(ds.shape).encode())
            if data.dtype == object or data.dtype.kind == "U":
                h.update("\x1f".join(np.asarray(data).ravel().tolist()).encode())
            else:
                h.update(np.ascontiguousarray(data).tobytes())
            out[f"{group}/{name}"] = h.hexdigest()
    return out


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _held_elsewhere(exc: OSError) -> bool:
    """Whether HDF5 refused to open a file because another process holds its file lock, not because
    the file is broken. Only the errno and HDF5's own words decide: a truncated file's message names
    the superblock ("sblock"), and a loose match on "lock" once took a killed run's partial for a
    held one, refusing the re-run that should have resumed it."""
    return exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK) or "unable to lock file" in str(exc).lower()


def _disk_full(exc: Exception, path: Path) -> bool:
    # h5py raises a failed flush as a RuntimeError, with the errno only in HDF5's text; look at the disk as well.
    if getattr(exc, "errno", None) == errno.ENOSPC or os.strerror(errno.ENOSPC) in str(exc):
        return True
    try:
        return shutil.disk_usage(path.parent).free < 16 << 20
    except OSError:
        return False


def _disk_error(exc: Exception, path: Path, n_done: int | None) -> RankgenError:
    """n_done: the items committed in `path`, which a re-run resumes from; None for a file written whole."""
    if _disk_full(exc, path):
        if n_done is None:
            return RankgenError(f"disk full while writing {path}; free some space and re-run the same command.")
        return RankgenError(
            f"disk full while writing {path}. {n_done} items are committed in {path}; "
            "free some space and re-run the same command to resume from there."
        )
    return RankgenError(f"cannot write {path}: {_one_line(exc)}. Re-run the same command"
                        f"{'' if n_done is None else ' to resume'}.")


def _ensure_space(path: Path, needed: int, what: str, then: str) -> None:
    """Refuse a write the disk cannot hold before starting it: HDF5 interrupted by a full disk can
    leave a file it cannot flush or even close, and committed items with it."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return
    if free < needed + DISK_HEADROOM:
        raise RankgenError(f"disk full: {free / 1e6:.0f} MB free in {path.parent}, and {what} need about "
                           f"{(needed + DISK_HEADROOM) / 1e6:.0f} MB with headroom. {then}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "strerror", None) or exc).split())  # HDF5's texts span lines


# HDF5 can neither flush nor close a file after a write to it failed, and closing it (at the latest
# when Python exits) crashed the interpreter (h5py#914): such a file's objects are held open until
# the process exits, and the process writes to that path no more. Path -> what failed.
_UNCLOSABLE: dict[Path, str] = {}


def _hold_open(f: h5py.File, path: Path, failure: BaseException) -> None:
    if not f.id.valid:
        return  # closed before the failure (finish's fsync or rename): nothing of it is left open
    for id_ in h5py.h5f.get_obj_ids(f.id, h5py.h5f.OBJ_ALL):
        h5py.h5i.inc_ref(id_)
    _UNCLOSABLE[path.resolve()] = _one_line(failure)


def _refuse_if_unclosable(path: Path) -> None:
    failure = _UNCLOSABLE.get(path.resolve())
    if failure is not None:
        raise RankgenError(f"writing {path} failed earlier in this process ({failure}), and HDF5 cannot reopen it "
                           "here; re-run the same command in a new process to resume")


# Free space kept beyond a commit's own bytes: HDF5 allocates whole chunks and metadata as it goes.
DISK_HEADROOM = 16 << 20
# The writing process's buffer for items' bytes (CorpusWriter._write_bytes): large enough that an
# HDF5 write carries about 20 images of 512x384, small enough to keep resident all run.
GATHER_BYTES = 8 << 20

_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 1, 2


def _fallocate(fd: int, mode: int, offset: int, length: int) -> bool:
    """Linux fallocate(2); False where the system or the file system does not offer it."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    if libc.fallocate(fd, mode, offset, length) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def held_interrupts():
    """A Ctrl-C that lands inside the block is raised as it ends: steps that belong together (rows
    and the bookkeeping that records them) then happen all or not at all. Python runs signal handlers
    in the main thread only, so elsewhere there is nothing to hold."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return
    frames = []
    signal.signal(signal.SIGINT, lambda signum, frame: frames.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if frames:
            previous(signal.SIGINT, frames[0])


class _NotReserved(OSError):
    """The file system refused to reserve the blocks (a full disk): nothing was written."""


@contextlib.contextmanager
def _reserved(path: Path, nbytes: int):
    """Disk blocks for the next `nbytes` past the end of `path`, held while the body writes and
    released after (the file's size is left to HDF5). The free-space check alone races with other
    processes filling the disk, and HDF5 failing mid-flush leaves a partial it cannot open (committed
    items lost) and h5py objects that crash the interpreter; a write into reserved blocks cannot fail
    for want of space. ENOSPC here means the disk is full; file systems without fallocate rely on the check."""
    fd, held = None, False
    try:
        try:
            fd = os.open(path, os.O_WRONLY)
            held = _fallocate(fd, _FALLOC_FL_KEEP_SIZE, os.fstat(fd).st_size, nbytes)
        except OSError as exc:
            raise _NotReserved(exc.errno, exc.strerror) from None
        yield
    finally:
        if held:
            _fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, os.fstat(fd).st_size, nbytes)
        if fd is not None:
            os.close(fd)


def output_lock(path: Path) -> IO:
    """The lock every writer of `path` holds (its .partial included) while it writes."""
    try:
        return exclusive_lock(path.with_name(path.name + ".lock"))
    except LockHeld as held:
        raise RankgenError(f"another process (pid {held.owner}) is writing {path}; wait for it to finish "
                           "or choose another -o") from None
    except OSError as exc:  # /proc, /sys and the like pass an os.access check
        if exc.errno == errno.ENOSPC:
            raise RankgenError(f"disk full: cannot create {path.name}.lock in {path.parent}; free some space and "
                               "re-run the same command") from None
        raise RankgenError(f"cannot create files in {path.parent} ({exc.strerror}); choose another -o path") from None


def release_output_lock(lock: IO | None) -> None:
    if lock is not None and not lock.closed:
        Path(lock.name).unlink(missing_ok=True)
        lock.close()


@contextlib.contextmanager
def writing(path: Path, mode: str, nbytes: int, what: str):
    """h5py.File(path, mode) for writing a file whole (`what`: about `nbytes`), closed at the end. As
    in CorpusWriter.commit, the space is checked and reserved first, and a write refused anyway is one
    line and leaves the file held open (closing it crashed the interpreter, h5py#914)."""
    _refuse_if_unclosable(path)
    _ensure_space(path, nbytes, what, "Free some space and re-run the same command")
    f = h5py.File(path, mode)
    try:
        with _reserved(path, nbytes + DISK_HEADROOM):
            yield f
            f.close()
    except _NotReserved as exc:
        f.close()
        raise _disk_error(exc, path, None) from None
    except (OSError, RuntimeError) as exc:
        _hold_open(f, path, exc)
        raise _disk_error(exc, path, None) from None
    except BaseException:
        f.close()
        raise


NOT_REGULAR = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def check_replaceable(path: Path, overwrite: bool) -> None:
    """An existing output is replaced only with --overwrite, and only if it is a rankgen corpus (a
    damaged one too): os.replace onto a device file such as /dev/null would put a regular file in its
    place, and onto someone's other data would destroy it."""
    mode = os.stat(path).st_mode
    what = next((name for test, name in NOT_REGULAR if test(mode)), None)
    if what:
        raise RankgenError(f"{path} is {what}, not a corpus file; --overwrite only replaces a rankgen corpus: "
                           "choose another -o path")
    if not h5py.is_hdf5(path):
        raise RankgenError(f"{path} is not an HDF5 file, so not a rankgen corpus; --overwrite only replaces a corpus: "
                           "move or delete it yourself, or choose another -o path")
    try:
        with h5py.File(path, "r") as f:
            format_ = f.attrs.get(S.ATTR_FORMAT)
    except OSError:
        format_ = S.FORMAT  # an HDF5 file too damaged to open: a corpus that a re-run is meant to replace
    if format_ != S.FORMAT:
        raise RankgenError(f"{path} is an HDF5 file but not a rankgen corpus (no format={S.FORMAT!r}); --overwrite only "
                           "replaces a corpus: move or delete it yourself, or choose another -o path")
    if not overwrite:
        raise RankgenError(f"{path} already exists; pass --overwrite to replace it (it is kept until the new file is complete)")


class CorpusWriter:
    """Append rows of scalar columns and ragged arrays; `finish()` publishes the file.

    columns: name -> dtype ("int64", "float64", "str", ...), one value per row.
    ragged: name -> (dtype, ndim), one array of any shape with that ndim per row; a row holds the
    array itself or its `Encoded` form (made by `encoders()` in a worker process).
    encoding: "png" (lossless PNG where the array allows it, else raw) or "none" (raw bytes).
    fingerprint: identifies the work (command arguments that change content); a partial file
    with another fingerprint is not resumed but replaced.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        kind: str,
        *,
        columns: Mapping[str, str],
        ragged: Mapping[str, tuple[str, int]],
        attrs: Mapping[str, object],
        fingerprint: str,
        overwrite: bool = False,
        encoding: str = S.PNG,
        chunk_bytes: int = 1 << 18,
    ):
        if kind not in S.KINDS:
            raise ValueError(f"unknown corpus kind {kind!r}")
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + S.PARTIAL_SUFFIX)
        self.kind = kind
        self.columns = dict(columns)
        self.ragged = dict(ragged)
        self.fingerprint = fingerprint
        self.encodings = {name: encoding_for(encoding, np.dtype(spec), ndim) for name, (spec, ndim) in self.ragged.items()}
        self.chunk_bytes = chunk_bytes
        self.notes: list[str] = []
        self._buffer: list[dict] = []
        self._scratch = np.empty(0, np.uint8)
        self._datasets: dict[str, h5py.Dataset] = {}
        if self.path.exists():
            check_replaceable(self.path, overwrite)
        if not self.path.parent.exists():
            raise RankgenError(f"output folder {self.path.parent} does not exist; create it or choose another -o path")
        if not os.access(self.path.parent, os.W_OK):
            raise RankgenError(f"output folder {self.path.parent} is not writable; choose another -o path")
        _refuse_if_unclosable(self.partial)
        self._lock = self._acquire_lock()
        try:
            self._file = self._open_partial(overwrite) or self._create(attrs)
        except BaseException:
            self._release_lock()
            raise

    def _acquire_lock(self):
        return output_lock(self.path)

    def _release_lock(self) -> None:
        release_output_lock(self._lock)

    # -- opening -------------------------------------------------------------------------
    def _open_partial(self, overwrite: bool) -> h5py.File | None:
        """The partial file to resume, or None to start over. Committed items are never discarded
        silently: a partial that another process holds, or that another command wrote, is an error
        unless --overwrite says to start over."""
        if not self.partial.exists():
            return None
        try:
            f = h5py.File(self.partial, "a")
        except OSError as exc:
            if _held_elsewhere(exc):
                raise RankgenError(f"{self.partial} is open in another process (HDF5 file lock); close it there, "
                                   "then re-run the same command to resume") from None
            size = self.partial.stat().st_size
            if size >= self._first_commit_bytes() and not overwrite:
                raise RankgenError(f"{self.partial} cannot be resumed: HDF5 cannot open it ({exc}), and at {size} bytes "
                                   "it holds committed items. Pass --overwrite to start over (its items are then lost)") from None
            # Smaller than any commit makes it: killed while being created, nothing in it to lose.
            why = "--overwrite" if overwrite else "killed before anything was committed"
            self.notes.append(f"{self.partial} could not be opened ({why}); starting over")
            self.partial.unlink()
            return None
        n = None  # unknown until the attributes are read
        try:
            same = (
                f.attrs.get(S.ATTR_FORMAT) == S.FORMAT
                and f.attrs.get(S.ATTR_VERSION) == S.SCHEMA_VERSION
                and f.attrs.get(S.ATTR_KIND) == self.kind
                and f.attrs.get(S.ATTR_FINGERPRINT) == self.fingerprint
            )
            n = int(f.attrs.get(S.ATTR_COMMITTED, 0))
            problem = None if same else "it was written by another command (other arguments or another rankgen)"
            if same:
                self._truncate(f, n)
        except (OSError, KeyError, ValueError) as exc:
            problem = f"its last commit cannot be restored ({exc})"
        if problem:
            f.close()
            # Nothing committed, nothing to lose: a run killed while it created the file leaves one
            # without attributes (h5py's "a" even turns an empty file into a new one).
            if not overwrite and n != 0:
                raise RankgenError(f"{self.partial} cannot be resumed: {problem}. Re-run the command that wrote it to "
                                   "finish it, or pass --overwrite to start over (its items are then lost)")
            why = "--overwrite" if overwrite else "nothing was committed in it"
            self.notes.append(f"{self.partial}: {problem}; starting over ({why})")
            self.partial.unlink()
            return None
        if n:
            self.notes.append(f"resuming {self.partial}: {n} items already committed")
        return f

    def _first_commit_bytes(self) -> int:
        """The least a partial grows by at its first commit: HDF5 allocates a whole chunk of every
        dataset written (a created file without commits is a few kB of metadata)."""
        return sum(4096 * _dtype(spec).itemsize for spec in self.columns.values()) + (self.chunk_bytes if self.ragged else 0)

    def _truncate(self, f: h5py.File, n: int) -> None:
        for name in self.columns:
            ds = f[S.ITEMS][name]
            if ds.shape[0] < n:
                raise ValueError("short column")
            ds.resize((n,))
        for name in self.ragged:
            g = f[S.RAGGED][name]
            if min(g[part].shape[0] for part in (S.OFFSET, S.SIZE, S.SHAPE, S.CRC, S.STORED)) < n:
                raise ValueError("short ragged")
            if g.attrs.get(S.ATTR_ENCODING) != self.encodings[name]:
                raise ValueError("other encoding")
            end = int(g[S.OFFSET][n - 1]) + int(g[S.SIZE][n - 1]) if n else 0
            for part in (S.OFFSET, S.SIZE, S.CRC, S.STORED):
                g[part].resize((n,))
            g[S.SHAPE].resize((n, g[S.SHAPE].shape[1]))
            g[S.DATA].resize((end,))

    def _create(self, attrs: Mapping[str, object]) -> h5py.File:
        try:
            f = h5py.File(self.partial, "w")
        except OSError as exc:
            raise RankgenError(f"cannot create {self.partial}: {exc}") from None
        f.attrs[S.ATTR_FORMAT] = S.FORMAT
        f.attrs[S.ATTR_VERSION] = S.SCHEMA_VERSION
        f.attrs[S.ATTR_KIND] = self.kind
        f.attrs[S.ATTR_RANKGEN_VERSION] = __version__
        f.attrs[S.ATTR_FINGERPRINT] = self.fingerprint
        f.attrs[S.ATTR_COMMITTED] = 0
        f.attrs[S.ATTR_COMPLETE] = False
        for key, value in attrs.items():
            f.attrs[key] = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value
        items = f.create_group(S.ITEMS)
        for name, spec in self.columns.items():
            items.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(4096,), dtype=_dtype(spec), track_times=False)
        ragged = f.create_group(S.RAGGED)
        for name, (spec, ndim) in self.ragged.items():
            g = ragged.create_group(name)
            g.attrs[S.ATTR_ENCODING] = self.encodings[name]
            g.attrs[S.ATTR_DTYPE] = np.dtype(spec).str
            # No HDF5 filter: the items are already encoded, and plain chunks make writing pure I/O.
            g.create_dataset(S.DATA, shape=(0,), maxshape=(None,), dtype=np.uint8, track_times=False,
                             chunks=(self.chunk_bytes,))
            for part in (S.OFFSET, S.SIZE):
                g.create_dataset(part, shape=(0,), maxshape=(None,), chunks=(4096,), dtype=np.int64, track_times=False)
            g.create_dataset(S.SHAPE, shape=(0, ndim), maxshape=(None, ndim), chunks=(4096, ndim), dtype=np.int32, track_times=False)
            g.create_dataset(S.CRC, shape=(0,), maxshape=(None,), chunks=(4096,), dtype=np.uint32, track_times=False)
            g.create_dataset(S.STORED, shape=(0,), maxshape=(None,), chunks=(4096,), dtype=np.uint8, track_times=False)
        f.create_group(S.TABLES)
        f.flush()
        return f

    # -- writing -------------------------------------------------------------------------
    @property
    def n_done(self) -> int:
        """Rows committed so far (on resume: where to continue)."""
        return int(self._file.attrs[S.ATTR_COMMITTED]) + len(self._buffer)

    def encoders(self) -> dict[str, tuple[str, str]]:
        """name -> (encoding, dtype) of every ragged array: what `encode_rows` needs, picklable for workers."""
        return {name: (self.encodings[name], np.dtype(spec).str) for name, (spec, _) in self.ragged.items()}

    def append(self, rows: Iterable[Mapping[str, object]]) -> None:
        rows = encode_rows(list(rows), self.encoders())
        for row in rows:
            missing = (set(self.columns) | set(self.ragged)) - set(row)
            if missing:
                raise ValueError(f"row lacks {sorted(missing)}")
            for name, (_, ndim) in self.ragged.items():
                if len(row[name].shape) != ndim:
                    raise ValueError(f"ragged {name!r} expects {ndim}-D arrays, got shape {row[name].shape}")
        self._buffer.extend(rows)  # all of a job's rows or none, even under Ctrl-C

    def commit(self, progress: Mapping[str, object] = ()) -> None:
        """Write buffered rows and mark them committed; what is committed survives a kill.

        progress: attributes recorded in the same step as the row count (e.g. jobs done), so a
        resume never sees rows without the bookkeeping that produced them.
        """
        # Also the commit that an interrupted run makes on its way out: after a failed write it would
        # record the jobs of rows that never reached the file.
        _refuse_if_unclosable(self.partial)
        rows, f = self._buffer, self._file
        n0 = int(f.attrs[S.ATTR_COMMITTED])
        n1 = n0 + len(rows)
        needed = (sum(len(row[name].data) for row in rows for name in self.ragged)
                  + 16 * len(rows) * len(self.columns))
        if rows:
            self._ensure_space(needed, f"the next {len(rows)} items", n0)
        try:
            self._buffer = []  # here, not above: a Ctrl-C before this line leaves the rows buffered
            with _reserved(self.partial, needed + DISK_HEADROOM):
                self._write(f, rows, n0, n1, progress)
        except _NotReserved as exc:  # nothing written: the rows stay for a retry
            self._buffer[:0] = rows
            raise _disk_error(exc, self.partial, n0) from None
        # h5py reports a write the disk refused at the flush, as a RuntimeError.
        except (OSError, RuntimeError) as exc:
            _hold_open(f, self.partial, exc)
            raise _disk_error(exc, self.partial, n0) from None
        except BaseException as exc:
            if isinstance(exc.__context__, (OSError, RuntimeError)):
                # A write failed while a Ctrl-C was held (held_interrupts), which raised that instead.
                _hold_open(f, self.partial, exc.__context__)
            elif self._buffer is not rows and int(f.attrs[S.ATTR_COMMITTED]) == n0:
                # A Ctrl-C mid-write: these rows are not committed, so they stay for the commit that the
                # interrupted run makes on its way out, which would otherwise record their jobs as done.
                self._buffer[:0] = rows
            raise

    def _dataset(self, path: str) -> h5py.Dataset:
        # Looked up once per run: h5py's path lookups were a large share of the writing process's
        # time in `crops`, which commits every 2 sources (py-spy).
        if path not in self._datasets:
            self._datasets[path] = self._file[path]
        return self._datasets[path]

    def _write(self, f: h5py.File, rows: list, n0: int, n1: int, progress: Mapping[str, object]) -> None:
        for name, spec in (self.columns if rows else {}).items():
            ds = self._dataset(f"{S.ITEMS}/{name}")
            ds.resize((n1,))
            values = [row[name] for row in rows]
            ds[n0:n1] = np.asarray(values, dtype=object if spec == "str" else spec)
        for name, (_, ndim) in (self.ragged if rows else {}).items():
            group = f"{S.RAGGED}/{name}"
            items: list[Encoded] = [row[name] for row in rows]
            data = self._dataset(f"{group}/{S.DATA}")
            # From the end of the committed items, not of the dataset: a commit interrupted after its
            # resize left bytes there that no item points to, and a retry overwrites them.
            start = 0
            if n0:
                start = int(self._dataset(f"{group}/{S.OFFSET}")[n0 - 1]) + int(self._dataset(f"{group}/{S.SIZE}")[n0 - 1])
            sizes = np.array([len(e.data) for e in items], dtype=np.int64)
            data.resize((start + int(sizes.sum()),))
            self._write_bytes(data, start, items)
            for part, values in ((S.OFFSET, start + np.concatenate([[0], np.cumsum(sizes)[:-1]])), (S.SIZE, sizes),
                                 (S.CRC, np.array([e.crc for e in items], dtype=np.uint32)),
                                 (S.STORED, np.array([e.stored for e in items], dtype=np.uint8))):
                ds = self._dataset(f"{group}/{part}")
                ds.resize((n1,))
                ds[n0:n1] = values
            ds = self._dataset(f"{group}/{S.SHAPE}")
            ds.resize((n1, ndim))
            ds[n0:n1] = np.array([e.shape for e in items], dtype=np.int32).reshape(-1, ndim)
        f.flush()
        with held_interrupts():  # the count without its progress would redo or skip jobs on resume
            f.attrs[S.ATTR_COMMITTED] = n1
            for key, value in dict(progress).items():
                f.attrs[key] = value
        f.flush()

    def _write_bytes(self, data: h5py.Dataset, start: int, items: list[Encoded]) -> None:
        """The items' bytes end to end from `start`, gathered into writes of about GATHER_BYTES.

        One HDF5 write per item cost more than copying; gathering a whole commit (64 MB and more) in
        one buffer kept that buffer resident all run and paid first-touch page faults for all of it.
        The buffer is kept from commit to commit: a fresh one each time was faulted in anew."""
        if self._scratch.size == 0:
            self._scratch = np.empty(GATHER_BYTES, np.uint8)
        at, filled = start, 0
        for e in items:
            size = len(e.data)
            if filled + size > self._scratch.size and filled:
                data[at : at + filled] = self._scratch[:filled]
                at, filled = at + filled, 0
            if size > self._scratch.size:  # copying it would not save a write
                data[at : at + size] = np.frombuffer(e.data, np.uint8)
                at += size
                continue
            self._scratch[filled : filled + size] = np.frombuffer(e.data, np.uint8)
            filled += size
        if filled:
            data[at : at + filled] = self._scratch[:filled]

    def _ensure_space(self, needed: int, what: str, n_done: int) -> None:
        _ensure_space(self.partial, needed, what,
                      f"{n_done} items are committed in {self.partial}; free some space and re-run the same command "
                      "to resume from there")

    @property
    def buffered_bytes(self) -> int:
        return sum(len(row[name].data) for row in self._buffer for name in self.ragged)

    def attr(self, key: str, default=None):
        value = self._file.attrs.get(key, default)
        return value.item() if isinstance(value, np.generic) else value

    def read_column(self, name: str) -> np.ndarray:
        """A committed column, for building tables at the end (also after a resume)."""
        self.commit()
        data = self._file[S.ITEMS][name][...]
        return data.astype(str) if self.columns[name] == "str" else data

    def finish(self, tables: Mapping[str, np.ndarray] = (), attrs: Mapping[str, object] = ()) -> Path:
        """Write the tables, mark complete, and atomically publish under the final name."""
        self.commit()
        f = self._file
        n = int(f.attrs[S.ATTR_COMMITTED])  # read now: after a failed close, touching f crashes h5py
        needed = sum(np.asarray(v).nbytes for v in dict(tables).values() if np.asarray(v).dtype.kind != "O")
        self._ensure_space(needed, "the tables", n)
        try:
            with _reserved(self.partial, needed + DISK_HEADROOM):
                self._publish(f, tables, attrs)
            _fsync_path(self.partial)
            os.replace(self.partial, self.path)
        except _NotReserved as exc:
            raise _disk_error(exc, self.partial, n) from None
        except (OSError, RuntimeError) as exc:  # RuntimeError: h5py's, as in commit
            _hold_open(f, self.partial, exc)
            raise _disk_error(exc, self.partial, n) from None
        try:
            _fsync_path(self.path.parent)
        except OSError as exc:  # published already: "re-run to resume" would start it over
            raise RankgenError(f"{self.path} is complete, but its folder could not be synced to disk ({exc.strerror}); "
                               f"a power cut before the system syncs it could undo the rename: `rankgen check {self.path}` "
                               "tells") from None
        finally:
            self._release_lock()
        return self.path

    def _publish(self, f: h5py.File, tables: Mapping[str, np.ndarray], attrs: Mapping[str, object]) -> None:
        for name, value in dict(tables).items():
            value = np.asarray(value)
            if name in f[S.TABLES]:
                del f[S.TABLES][name]
            dtype = STRING if value.dtype.kind in "UO" else value.dtype
            f[S.TABLES].create_dataset(name, data=value.astype(object) if dtype is STRING else value, dtype=dtype, track_times=False)
        for key, value in dict(attrs).items():
            f.attrs[key] = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value
        f.attrs[S.ATTR_N_ITEMS] = int(f.attrs[S.ATTR_COMMITTED])
        f.attrs[S.ATTR_CHECKSUMS] = json.dumps(dataset_digests(f), sort_keys=True)
        f.attrs[S.ATTR_COMPLETE] = True
        f.close()

    def close(self) -> None:
        """Leave the partial file resumable (used on errors and Ctrl-C).

        Uncommitted rows are dropped, not committed: only the caller knows the bookkeeping that
        belongs with them (see `commit(progress=...)`), and rows without it would be redone twice.
        """
        self._buffer = []
        try:
            if self._file.id.valid and self.partial.resolve() not in _UNCLOSABLE:
                self._file.close()
        except (OSError, RuntimeError) as exc:
            _hold_open(self._file, self.partial, exc)  # the close's own flush failed: as after a failed write
        finally:
            self._release_lock()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def encode_rows(rows: list, encoders: Mapping[str, tuple[str, str]]) -> list:
    """Rows with every ragged array replaced by its Encoded form (rows already encoded pass through).

    The pipeline calls this in the worker that made the rows, so PNG compression runs on every
    core and only bytes travel to the writer."""
    out = []
    for row in rows:
        done = {name: value if isinstance(value, Encoded) else encode(np.asarray(value, encoders[name][1]), encoders[name][0])
                for name, value in row.items() if name in encoders}
        out.append({**row, **done} if done else row)
    return out
