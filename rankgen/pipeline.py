"""Parallel, ordered, resumable execution of per-source jobs into a CorpusWriter.

Each job is independent and carries its own seed key, so results do not depend on the worker
count. Results are written in job order; the writer records how many jobs are committed so a
re-run skips them.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import ctypes
import functools
import itertools
import json
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import pickle
import platform
import signal
import struct
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Sequence

import cv2
from tqdm import tqdm

from .corpus import schema as S
from .corpus.writer import CorpusWriter, encode_rows, held_interrupts
from .errors import RankgenError
from .locking import die_with_parent


@dataclass
class JobResult:
    rows: list = field(default_factory=list)
    skipped: str | None = None  # why the job produced nothing (a bad input file), shown in the summary
    notes: list = field(default_factory=list)  # harmless conversions worth one log line


@dataclass
class Summary:
    sources: int  # a source whose work was split into several jobs counts once
    rows: int
    seconds: float
    skipped: list
    notes: list
    resumed_from: int

    def lines(self, path) -> list[str]:
        size = os.path.getsize(path) if os.path.exists(path) else 0
        out = [
            f"wrote {path}: {self.rows} items from {self.sources - len(self.skipped)} sources, "
            f"{size / 1e6:.1f} MB, {self.seconds:.1f} s"
            + (f" (resumed after {self.resumed_from} sources)" if self.resumed_from else "")
        ]
        out += [f"note: {n}" for n in self.notes]
        if self.skipped:
            out.append(f"skipped {len(self.skipped)} sources:")
            out += [f"  {s}" for s in self.skipped]
        return out


def nothing_usable(summary: Summary, what: str = "source image") -> RankgenError:
    """The error for a run whose every source was skipped, with the reasons: the summary that would
    list them is never printed, because the command stops."""
    shown = summary.skipped[:5]
    more = f"\n  ... and {len(summary.skipped) - len(shown)} more" if len(summary.skipped) > len(shown) else ""
    return RankgenError(f"no {what} could be used; skipped:" + "".join(f"\n  {s}" for s in shown) + more)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'I/N' -> (I, N) with 0 <= I < N: this machine's part of the job list."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise RankgenError(f"--shard {text!r}: expected I/N, e.g. 0/4 (shards are numbered from 0)") from None
    if not (n >= 1 and 0 <= i < n):
        raise RankgenError(f"--shard {text!r}: need 0 <= I < N (shards are numbered from 0)")
    return i, n


def shard_jobs(jobs: Sequence, shard: tuple[int, int] | None) -> list:
    """A contiguous block of the job list, so shards concatenated in order give the single-run order."""
    jobs = list(jobs)
    if shard is None:
        return jobs
    i, n = shard
    return jobs[len(jobs) * i // n : len(jobs) * (i + 1) // n]


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """None means every core this process may use, as on the command line."""
    if workers is None:
        return default_workers()
    if int(workers) < 1:
        raise RankgenError(f"--workers {workers}: need at least 1 worker process")
    return int(workers)


def resolve_shard(shard: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """'I/N' (as typed on the command line) or (I, N)."""
    if shard is None or isinstance(shard, str):
        return parse_shard(shard)
    return parse_shard("/".join(map(str, shard)))


@dataclass(frozen=True)
class Executor:
    """Where jobs run: "local" (a process pool here) or "dask" (a Dask cluster; the writer stays here)."""

    kind: str = "local"
    scheduler: str | None = None  # tcp://HOST:8786; None with "dask" starts a LocalCluster


EXECUTOR: contextvars.ContextVar[Executor] = contextvars.ContextVar("rankgen_executor", default=Executor())


def _ordered_results(work, todo: list, workers: int):
    """Results of work(job) in job order, with at most a few jobs in flight per worker.

    The window is what keeps memory flat: a writer slower than the workers makes them wait instead
    of letting finished results pile up (multiprocessing's imap would run ahead without bound)."""
    executor = EXECUTOR.get()
    if executor.kind == "dask":
        yield from _dask_results(work, todo, workers, executor.scheduler)
    else:
        yield from ordered_map(work, todo, workers)


def ordered_map(work, items: Sequence, workers: int):
    """work(item) for every item, in order: on `workers` processes (run_jobs' jobs, verify's and
    score's series), or here when there is one worker or one item."""
    items = list(items)
    if workers > 1 and len(items) > 1:
        yield from _process_results(work, items, workers, IN_FLIGHT_PER_WORKER * workers)
    else:
        # --workers N is N cores: here as OpenCV's threads (without this, --workers 1 used every core).
        with _opencv_threads(workers):
            yield from map(work, items)


class _RemoteTraceback(Exception):
    def __str__(self):
        return self.args[0]


def _serve(conn, work, parent: int) -> None:
    """A worker process: one job at a time from `conn`, its result (or its exception) sent back."""
    _start_worker(parent)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        try:
            conn.send((True, work(job)))
        except Exception as exc:  # raised in the parent, with this traceback
            conn.send((False, _portable(exc)))


def _portable(exc: Exception) -> tuple[Exception, str]:
    """The exception and its traceback as text, the exception replaced by a RuntimeError naming it
    where it would not arrive whole (an exception class whose __init__ takes other arguments than
    its args unpickles as a TypeError)."""
    text = "".join(traceback.format_exception(exc))
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc, text


class _Inbox:
    """Messages sent with Connection.send, read straight into one buffer kept across messages.

    Connection.recv reads a message chunk by chunk into a growing BytesIO, copying each chunk there
    and again as the buffer grows, for the tens of MB of a job's encoded items. The framing is
    multiprocessing's own (a 4-byte size, or -1 and an 8-byte size).
    """

    def __init__(self):
        self._buffer = bytearray()

    def _read(self, fd: int, size: int) -> memoryview:
        if len(self._buffer) < size:
            self._buffer = bytearray(size)
        view = memoryview(self._buffer)[:size]
        got = 0
        while got < size:
            n = os.readv(fd, [view[got:]])
            if n == 0:
                raise EOFError
            got += n
        return view

    def receive(self, conn):
        if not hasattr(os, "readv"):
            return conn.recv()
        fd = conn.fileno()
        (size,) = struct.unpack("!i", self._read(fd, 4))
        if size == -1:
            (size,) = struct.unpack("!Q", self._read(fd, 8))
        return pickle.loads(self._read(fd, size))


def _process_results(work, todo: Sequence, workers: int, window: int):
    """work(job) for every job on `workers` forked processes, yielded in job order.

    Each worker takes one job at a time over a pipe of its own, and the next job goes to whichever
    is free, so a slow job holds up no other; at most `window` jobs are running or finished and
    waiting for their turn, which keeps memory flat whatever the writer's pace. Results are read
    here, in the thread that writes them: multiprocessing.Pool's worker-handler thread polled the
    result pipe in a loop while a large result was being read, and its result thread added a
    hand-over per result. A worker that dies (killed, out of
    memory) is an error here, where Pool would wait for it forever.
    """
    context = mp.get_context("fork" if os.name == "posix" else "spawn")
    processes, free, running = [], [], {}
    done: dict[int, object] = {}
    # One core per worker: OpenCV's own thread pool (all cores by default) in every worker would
    # oversubscribe the machine. Set here, before the fork, and inherited: calling
    # cv2.setNumThreads in a forked child whose parent had started OpenCV's threads deadlocks.
    try:
        with _opencv_threads(1):
            for _ in range(min(workers, len(todo))):
                here, there = context.Pipe()
                process = context.Process(target=_serve, args=(there, work, os.getpid()), daemon=True)
                try:
                    process.start()
                except BaseException:
                    here.close()
                    raise
                finally:
                    there.close()  # so that the worker's death reads as end-of-file here
                processes.append((process, here))
                free.append(here)
        owner = {conn: process for process, conn in processes}
        inbox = _Inbox()
        sent = returned = 0
        while returned < len(todo):
            while free and sent < len(todo) and sent - returned < window:
                conn = free.pop()
                running[conn] = sent
                try:
                    conn.send(todo[sent])
                except OSError:  # it died waiting for this job
                    raise _died(owner[conn], sent) from None
                sent += 1
            if returned in done:
                yield done.pop(returned)
                returned += 1
                continue
            for conn in mp_connection.wait(list(running)):
                try:
                    ok, value = inbox.receive(conn)
                except (EOFError, OSError):
                    raise _died(owner[conn], running[conn]) from None
                if not ok:
                    exc, text = value
                    raise exc from _RemoteTraceback(text)
                done[running.pop(conn)] = value
                free.append(conn)
    finally:
        # Workers ignore Ctrl-C, so terminating never waits on a worker stuck in its handler.
        for process, conn in processes:
            conn.close()
            process.terminate()
        for process, _ in processes:
            process.join()
            process.close()


def _died(process, job: int) -> RankgenError:
    process.join(1)
    return RankgenError(
        f"a worker process died (exit code {process.exitcode}) while making job {job + 1} of this run: killed, or "
        "out of memory? What was committed is kept; re-run to resume, with fewer --workers if memory is short")


@contextlib.contextmanager
def _opencv_threads(n: int):
    """OpenCV's thread count set to n, and the caller's restored afterwards."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


IN_FLIGHT_PER_WORKER = 2


def _start_worker(parent: int) -> None:
    # Ctrl-C reaches the whole process group; only the parent acts on it (commits, then exits 130).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)


# glibc's largest mmap threshold; larger blocks are still mapped and unmapped on every use.
_MMAP_THRESHOLD = 32 << 20
_TRIM_THRESHOLD = 256 << 20
_reusing = False  # set once per process


def reuse_freed_memory() -> None:
    """Have glibc keep freed blocks of up to 32 MB in the heap for the next allocation.

    A kernel allocates several image-sized arrays per call (a float copy, CIELAB, the result) and
    frees them; glibc's default could give such blocks back to the system, so a call page-faulted its
    arrays in anew: sparse_sampling took 2.3x and saturation_increase 1.6x their time with the setting
    (docs/benchmarks.md, `--system-allocator`), and the writer paid the same for what it receives.
    Set in every worker (pool or Dask) and in the process that calls run_jobs; it stays for the life
    of that process (mallopt has no undo), whose memory is then its peak rather than its current use.
    Elsewhere than glibc: nothing."""
    global _reusing
    if _reusing or not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return
    _reusing = True
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, _MMAP_THRESHOLD)
    libc.mallopt(m_trim_threshold, _TRIM_THRESHOLD)


def _windowed(submit, todo: Sequence, window: int):
    """submit(job) -> a function that waits for its result; at most `window` jobs submitted ahead."""
    pending: collections.deque = collections.deque()
    jobs = iter(todo)
    for job in itertools.islice(jobs, window):
        pending.append(submit(job))
    while pending:
        result = pending.popleft()()
        for job in itertools.islice(jobs, 1):
            pending.append(submit(job))
        yield result


def _dask_results(work, todo: list, workers: int, scheduler: str | None):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise RankgenError("--executor dask needs Dask: pip install 'rankgen[dask]'") from None
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout=30)
        except OSError as exc:
            raise RankgenError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)

    def submit(job):
        future = client.submit(work, job, pure=False)

        def result():
            value = future.result()
            future.release()
            return value

        return result

    try:
        window = 2 * IN_FLIGHT_PER_WORKER * max(1, len(client.scheduler_info()["workers"]))
        yield from _windowed(submit, todo, window)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _encoded_work(work, encoders, job) -> JobResult:
    """work(job) with its ragged arrays encoded here, in the worker: compression scales with the
    workers and only encoded bytes travel to the writing process."""
    reuse_freed_memory()  # here, so that Dask's workers get it as well as the pool's
    result = work(job)
    result.rows = encode_rows(result.rows, encoders)
    return result


def run_jobs(
    jobs: Sequence,
    work: Callable[[object], JobResult],
    writer: CorpusWriter,
    *,
    workers: int = 1,
    desc: str = "jobs",
    unit: str = "img",
    commit_every: int = 8,
    commit_bytes: int = 64 << 20,
    commit_seconds: float = 30.0,
    progress: bool = True,
    on_error: str = "skip",
    source_of: Callable[[object], object] | None = None,
) -> Summary:
    """Run `work` over `jobs` (picklable, module-level `work`) and append their rows in order.

    Rows are committed every `commit_every` sources, `commit_bytes` of buffered (encoded) arrays or
    `commit_seconds` since the last commit, whichever comes first: memory does not grow with the
    number or the size of the sources, and a killed run loses at most about that much time.
    on_error="stop" turns the first skipped job into an error (after committing what came before).
    source_of(job): the source a job is part of, where one source's work is split into consecutive
    jobs (one source per job without). A source's rows are written together once its last job is
    in, or not at all if one of its jobs skipped it; commits, the progress bar and the summary count
    sources.
    """
    reuse_freed_memory()
    start = int(writer.attr(S.ATTR_JOBS_DONE, 0))
    skipped = json.loads(writer.attr(S.ATTR_SKIPPED, "[]"))
    notes: list[str] = list(writer.notes)
    jobs = list(jobs)
    todo = jobs[start:]
    keys = [source_of(job) for job in jobs] if source_of else list(range(len(jobs)))
    # ends[i]: job i is its source's last, so finishing it finishes a source
    ends = [i + 1 == len(keys) or keys[i + 1] != keys[i] for i in range(len(keys))]
    t0 = time.perf_counter()
    bar = tqdm(total=sum(ends), initial=sum(ends[:start]), desc=desc, unit=unit, disable=not progress,
               dynamic_ncols=True)
    results = _ordered_results(functools.partial(_encoded_work, work, writer.encoders()), todo, workers)
    done = start  # jobs whose rows are in the writer (committed or buffered): always a source's last
    rows, reason, source_notes = [], None, []  # the source in progress
    since_commit, last_commit = 0, time.monotonic()
    try:
        for i, result in enumerate(results, start):
            if result.skipped and reason is None:
                if on_error == "stop":
                    _commit(writer, done, skipped)
                    raise RankgenError(f"stopped: {result.skipped} (use --on-error skip to keep going)")
                reason = result.skipped
            rows.extend(result.rows)
            source_notes.extend(result.notes)
            if not ends[i]:
                continue
            # A source goes in whole or not at all: a part that could not read it drops the others' rows
            # (a read can fail once and not again), and its reason is listed once.
            with held_interrupts():  # rows in the writer but not in `done` would be made twice on resume
                if reason is None:
                    writer.append(rows)
                else:
                    skipped.append(reason)
                notes.extend(source_notes)
                done = i + 1
            rows, reason, source_notes = [], None, []
            since_commit += 1
            bar.update(1)
            if (since_commit >= commit_every or writer.buffered_bytes > commit_bytes
                    or time.monotonic() - last_commit > commit_seconds):
                _commit(writer, done, skipped)
                since_commit, last_commit = 0, time.monotonic()
        _commit(writer, done, skipped)
    except KeyboardInterrupt:
        # Keep every finished source: the re-run resumes right after it.
        _commit(writer, done, skipped)
        raise
    finally:
        bar.close()
        results.close()
    return Summary(sum(ends), writer.n_done, time.perf_counter() - t0, skipped, notes, sum(ends[:start]))


def _commit(writer: CorpusWriter, jobs_done: int, skipped: list) -> None:
    writer.commit(progress={S.ATTR_JOBS_DONE: jobs_done, S.ATTR_SKIPPED: json.dumps(skipped)})
