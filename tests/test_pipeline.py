"""rankgen.pipeline: bounded work in flight, timed commits, encoding in the workers, Ctrl-C with a pool."""

import functools
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rankgen import pipeline
from rankgen.corpus import Corpus, CorpusWriter
from rankgen.corpus import schema as S
from rankgen.corpus.codec import Encoded
from rankgen.errors import RankgenError
from rankgen.pipeline import JobResult, run_jobs


def test_windowed_never_has_more_than_the_window_in_flight():
    submitted, consumed = [], []

    def submit(job):
        submitted.append(job)
        # the window, plus the one result being handed to the consumer
        assert len(submitted) - len(consumed) <= 3 + 1
        return lambda: job * 10

    for result in pipeline._windowed(submit, range(20), 3):
        consumed.append(result)
    assert consumed == [j * 10 for j in range(20)]


def started_job(job, folder):
    (folder / f"{job}.started").touch()
    time.sleep(0.02 * (job % 3))  # unequal durations, so results come back out of order
    return job * 10


def test_worker_processes_return_results_in_order_with_at_most_the_window_started(tmp_path):
    work = functools.partial(started_job, folder=tmp_path)
    results = []
    for result in pipeline._process_results(work, range(12), 2, 3):
        results.append(result)
        # the consumer holds result k: at most the window of jobs beyond the k already handed over
        assert len(list(tmp_path.glob("*.started"))) <= len(results) - 1 + 3
        time.sleep(0.03)  # a slow writer: the workers must wait, not run ahead
    assert results == [j * 10 for j in range(12)]


def fails_on_third(job):
    if job == 2:
        raise ValueError(f"job {job} has a bad input")
    return job


def test_an_exception_in_a_worker_is_raised_here_with_its_traceback():
    with pytest.raises(ValueError, match="job 2 has a bad input") as info:
        list(pipeline._process_results(fails_on_third, range(6), 2, 4))
    assert "fails_on_third" in str(info.value.__cause__)


def dies_on_third(job):
    if job == 2:
        os._exit(9)  # as the kernel's OOM killer would end it: no exception, no reply
    time.sleep(0.05)
    return job


def test_a_worker_that_dies_is_an_error_not_a_hang():
    # multiprocessing.Pool waited forever for a killed worker's result; the alarm fails this test if so.
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("the run hung on a dead worker"))
    signal.alarm(60)
    try:
        with pytest.raises(RankgenError, match=r"worker process died \(exit code 9\) while making job 3"):
            list(pipeline._process_results(dies_on_third, range(6), 2, 4))
    finally:
        signal.alarm(0)


def its_pid(job):
    return os.getpid()


def test_a_worker_killed_while_waiting_for_its_next_job_is_an_error_naming_it():
    results = pipeline._process_results(its_pid, range(3), 1, 1)
    os.kill(next(results), signal.SIGKILL)
    time.sleep(0.3)
    with pytest.raises(RankgenError, match=r"worker process died \(exit code -9\) while making job 2"):
        next(results)


class NeedsTwoArguments(Exception):
    def __init__(self, path, why):
        super().__init__(f"{path}: {why}")

    # BaseException's own reduction, spelled out: once `distributed` is imported (test_shards does),
    # tblib's pickling support makes such exceptions unpickle, and this test would depend on order.
    def __reduce__(self):
        return type(self), self.args


def raises_what_does_not_unpickle(job):
    raise NeedsTwoArguments("a.png", "bad")


def test_an_exception_that_would_not_unpickle_arrives_as_a_runtime_error_naming_it():
    with pytest.raises(RuntimeError, match="NeedsTwoArguments: a.png: bad") as info:
        list(pipeline._process_results(raises_what_does_not_unpickle, range(2), 2, 2))
    assert "raises_what_does_not_unpickle" in str(info.value.__cause__)


def slow_job(job):
    time.sleep(0.05)
    if job == 25:
        raise RuntimeError("the machine went away")
    return JobResult(rows=[{"i": job, "image": np.full((4, 5, 3), job, np.uint8)}])


def test_a_run_killed_late_resumes_from_its_last_timed_commit(tmp_path):
    path = tmp_path / "t.h5"
    # Commits by count or size would never happen in 26 jobs: only the clock commits.
    kw = dict(columns={"i": "int64"}, ragged={"image": ("uint8", 3)}, attrs={}, fingerprint="t")
    with pytest.raises(RuntimeError):
        with CorpusWriter(path, "distort", **kw) as w:
            run_jobs(range(30), slow_job, w, commit_every=1000, commit_seconds=0.3, progress=False)
    with CorpusWriter(path, "distort", **kw) as w:
        kept = int(w.attr(S.ATTR_JOBS_DONE))
        assert 10 <= kept < 25 and w.n_done == kept


def encoded_rows_seen(job):
    return JobResult(rows=[{"i": job, "image": np.zeros((3, 3, 3), np.uint8)}])


@pytest.mark.parametrize("workers", [1, 2])
def test_rows_reach_the_writer_encoded(tmp_path, monkeypatch, workers):
    seen = []
    real_append = CorpusWriter.append

    def append(self, rows):
        seen.extend(isinstance(row["image"], Encoded) for row in rows)
        return real_append(self, rows)

    monkeypatch.setattr(CorpusWriter, "append", append)
    with CorpusWriter(tmp_path / "e.h5", "distort", columns={"i": "int64"}, ragged={"image": ("uint8", 3)}, attrs={},
                      fingerprint="e") as w:
        run_jobs(range(6), encoded_rows_seen, w, workers=workers, progress=False)
        w.finish()
    assert seen == [True] * 6
    assert Corpus(tmp_path / "e.h5").image(5).shape == (3, 3, 3)


def opencv_threads_seen(job):
    import cv2

    return JobResult(rows=[{"i": cv2.getNumThreads(), "image": np.zeros((3, 3, 3), np.uint8)}])


@pytest.mark.parametrize("workers, jobs", [(1, 4), (2, 4), (2, 1)])
def test_workers_n_is_n_cores_of_opencv_threads_and_the_caller_keeps_its_setting(tmp_path, workers, jobs):
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        with CorpusWriter(tmp_path / "t.h5", "distort", columns={"i": "int64"}, ragged={"image": ("uint8", 3)},
                          attrs={}, fingerprint="t") as w:
            run_jobs(range(jobs), opencv_threads_seen, w, workers=workers, progress=False)
            w.finish()
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)
    # In a pool each worker is one core; one job (or --workers 1) runs here with `workers` threads.
    expected = 1 if jobs > 1 else workers
    assert Corpus(tmp_path / "t.h5").column("i").tolist() == [expected] * jobs


POOL_AFTER_OPENCV_THREADS = """
import sys, numpy as np, cv2
from rankgen.corpus import CorpusWriter
from rankgen.pipeline import JobResult, run_jobs

def blurred(job):
    return JobResult(rows=[{"i": job, "image": cv2.GaussianBlur(np.full((256, 256, 3), job, np.uint8), (0, 0), 3)}])

cv2.setNumThreads(4)
cv2.GaussianBlur(np.zeros((2048, 2048, 3), np.uint8), (0, 0), 5)  # the caller's OpenCV threads now run
with CorpusWriter(sys.argv[1], "distort", columns={"i": "int64"}, ragged={"image": ("uint8", 3)}, attrs={},
                  fingerprint="t") as w:
    run_jobs(range(4), blurred, w, workers=2, progress=False)
    w.finish()
print(cv2.getNumThreads())
"""


def test_a_pool_after_the_callers_opencv_threads_ran_does_not_deadlock(tmp_path):
    # Setting OpenCV's thread count inside a forked worker, once the parent had started OpenCV's
    # threads, hung every worker in a futex.
    r = subprocess.run([sys.executable, "-c", POOL_AFTER_OPENCV_THREADS, str(tmp_path / "t.h5")], capture_output=True,
                       text=True, timeout=60, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert r.returncode == 0 and r.stdout.strip() == "4", r.stderr


@pytest.mark.skipif(os.name != "posix", reason="process groups and SIGINT")
def test_ctrl_c_with_a_pool_exits_130_and_keeps_a_resumable_partial(tmp_path, photo):
    from PIL import Image

    root = tmp_path / "photos"
    root.mkdir()
    for i in range(24):
        Image.fromarray(photo[i : i + 64, i : i + 80]).save(root / f"p{i}.png")
    out = tmp_path / "c.h5"
    partial = out.with_name("c.h5.partial")
    cmd = [sys.executable, "-m", "rankgen", "distort", "--dataset", "folder", "--root", str(root), "--workers", "2",
           "--distortions", "image_denoising,jpeg2000", "--quiet", "-o", str(out)]
    for trial in range(3):
        before = partial.stat().st_mtime_ns if partial.exists() else None
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 30
        # Wait until this run has opened (or created) the partial file: past the imports, into the work.
        while (not partial.exists() or partial.stat().st_mtime_ns == before) and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3 * (trial + 1))  # into the pool's work, at a different point each time
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C does: the whole group
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"trial {trial}: Ctrl-C with --workers 2 hung")
        if proc.returncode == 0:
            break  # finished before the signal: nothing left to interrupt
        assert proc.returncode == 130, err.decode()
        assert b"interrupted" in err and b"Traceback" not in err
        assert not out.exists() and partial.exists()
    else:
        assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert len(Corpus(out)) == 24 * 9


def faults_on_reuse(job):
    """Minor page faults of image-sized blocks allocated again after being freed: what a kernel paid
    on every call while glibc gave such blocks back to the system."""
    import resource

    def allocate():
        blocks = [np.ones(3 << 20, np.uint8) for _ in range(4)]  # several at once, as a kernel's arrays
        del blocks

    allocate()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        allocate()
    return JobResult(notes=[str(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.parametrize("workers", [1, 2])
def test_jobs_reuse_freed_memory_instead_of_faulting_it_in_again(tmp_path, workers):
    """In pool workers and in the calling process alike (a subprocess here, as the setting outlives the run)."""
    code = f"""
import sys
sys.path.insert(0, {str(os.path.dirname(__file__))!r})
from test_pipeline import faults_on_reuse
from rankgen.corpus import CorpusWriter
from rankgen.pipeline import run_jobs
with CorpusWriter({str(tmp_path / "f.h5")!r}, "distort", columns={{}}, ragged={{}}, attrs={{}}, fingerprint="f") as w:
    print(max(int(n) for n in run_jobs(range(4), faults_on_reuse, w, workers={workers}, progress=False).notes))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) < 100, "freed blocks were faulted in again (thousands of pages without the setting)"


def one_row(job):
    return JobResult(rows=[{"ref": job, "image": np.full((4, 4 + job), job, np.uint8)}])


def test_ctrl_c_during_a_commit_loses_no_rows_and_the_resume_is_byte_identical(tmp_path, monkeypatch):
    """The rows of the commit a Ctrl-C interrupts go out with the commit the run makes on its way out
    (they were once dropped while their jobs were recorded as done), and the bytes that commit had
    written are overwritten, not left behind."""
    import h5py

    kw = dict(columns={"ref": "int64"}, ragged={"image": ("uint8", 2)}, attrs={}, fingerprint="f")

    def corpus(path):
        with CorpusWriter(path, "distort", **kw) as w:
            run_jobs(list(range(6)), one_row, w, workers=1, commit_every=1, progress=False)
            w.finish(tables={S.GROUPS: np.arange(6).reshape(1, -1), "ref_id": np.array(["r"], dtype=object)})
        with h5py.File(path, "r") as f:
            return {name: f[name][...].tobytes() for name in ("items/ref", "ragged/image/data", "ragged/image/offset")}

    expected = corpus(tmp_path / "whole.h5")
    real, calls = CorpusWriter._write_bytes, [0]

    def interrupted(self, data, start, items):
        calls[0] += 1
        real(self, data, start, items)
        if calls[0] == 3:  # the third commit's bytes are written, its count not yet
            raise KeyboardInterrupt

    monkeypatch.setattr(CorpusWriter, "_write_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with CorpusWriter(tmp_path / "cut.h5", "distort", **kw) as w:
            run_jobs(list(range(6)), one_row, w, workers=1, commit_every=1, progress=False)
    monkeypatch.undo()
    assert corpus(tmp_path / "cut.h5") == expected
    assert Corpus(tmp_path / "cut.h5").column("ref").tolist() == list(range(6))


def _ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)  # a real signal, handled where Python next checks for one


@pytest.mark.parametrize("where", ["before a commit writes", "between an append and its bookkeeping"])
def test_a_ctrl_c_at_any_point_loses_no_source_and_repeats_none(tmp_path, monkeypatch, where):
    """A SIGINT that landed before a commit detached its rows lost them (their jobs recorded as done),
    and one between a source's append and `done` made it twice on resume."""
    kw = dict(columns={"ref": "int64"}, ragged={"image": ("uint8", 2)}, attrs={}, fingerprint="f")
    path = tmp_path / "c.h5"
    if where == "before a commit writes":
        real_space, calls = CorpusWriter._ensure_space, [0]

        def interrupted(self, *args):
            real_space(self, *args)
            calls[0] += 1
            if calls[0] == 2:
                _ctrl_c()

        monkeypatch.setattr(CorpusWriter, "_ensure_space", interrupted)
    else:
        real_append = CorpusWriter.append

        def interrupted(self, rows):
            real_append(self, rows)
            if rows[0]["ref"] == 5:
                _ctrl_c()

        monkeypatch.setattr(CorpusWriter, "append", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with CorpusWriter(path, "distort", **kw) as w:
            run_jobs(list(range(12)), one_row, w, workers=1, commit_every=2, progress=False)
    monkeypatch.undo()
    with CorpusWriter(path, "distort", **kw) as w:
        run_jobs(list(range(12)), one_row, w, workers=1, commit_every=2, progress=False)
        w.finish(tables={S.GROUPS: np.arange(12).reshape(1, -1), "ref_id": np.array(["r"], dtype=object)})
    assert Corpus(path).column("ref").tolist() == list(range(12))


def test_a_ctrl_c_between_the_count_and_the_progress_records_both(tmp_path, monkeypatch):
    """commit(progress=...) records the progress in the same step as the count: a writer closed after
    a Ctrl-C between the two attributes kept the new count with the old progress."""
    import h5py

    kw = dict(columns={"ref": "int64"}, ragged={"image": ("uint8", 2)}, attrs={}, fingerprint="f")
    path = tmp_path / "c.h5"
    real = h5py.AttributeManager.__setitem__

    def interrupted(self, name, value):
        real(self, name, value)
        if name == S.ATTR_COMMITTED and value == 2:
            _ctrl_c()

    w = CorpusWriter(path, "distort", **kw)
    w.append(one_row(0).rows + one_row(1).rows)
    monkeypatch.setattr(h5py.AttributeManager, "__setitem__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        w.commit(progress={S.ATTR_JOBS_DONE: 2})
    monkeypatch.undo()
    w.close()
    with h5py.File(path.with_name(path.name + S.PARTIAL_SUFFIX), "r") as f:
        assert (int(f.attrs[S.ATTR_COMMITTED]), int(f.attrs.get(S.ATTR_JOBS_DONE, 0))) == (2, 2)


def test_a_write_that_fails_while_a_ctrl_c_is_held_still_leaves_the_file_unclosed(tmp_path, monkeypatch):
    """held_interrupts raises the held Ctrl-C as its block ends, in place of the failure inside it: the
    failed write must still keep HDF5 from closing the file (h5py#914), as it does without a Ctrl-C."""
    import h5py

    kw = dict(columns={"ref": "int64"}, ragged={"image": ("uint8", 2)}, attrs={}, fingerprint="f")
    path = tmp_path / "c.h5"

    def fails(self, name, value):
        if name == S.ATTR_COMMITTED:
            _ctrl_c()
            raise RuntimeError("Unable to synchronously flush file (file write failed)")

    w = CorpusWriter(path, "distort", **kw)
    w.append(one_row(0).rows)
    monkeypatch.setattr(h5py.AttributeManager, "__setitem__", fails)
    with pytest.raises(KeyboardInterrupt):
        w.commit()
    monkeypatch.undo()
    w.close()
    with pytest.raises(RankgenError, match="failed earlier in this process"):
        CorpusWriter(path, "distort", **kw)


FAILS_UNDER_A_HELD_CTRL_C = """
import os, signal, sys
import h5py
sys.path.insert(0, {tests!r})
from test_pipeline import one_row
from rankgen.corpus import CorpusWriter
from rankgen.corpus import schema as S
from rankgen.pipeline import run_jobs
real, calls = h5py.AttributeManager.__setitem__, [0]
def fails_once(self, name, value):
    if name == S.ATTR_COMMITTED:
        calls[0] += 1
        if calls[0] == 3:  # after _create and one commit: a Ctrl-C, then a failed write, inside the held block
            os.kill(os.getpid(), signal.SIGINT)
            raise RuntimeError("Unable to synchronously flush file (file write failed)")
    real(self, name, value)
h5py.AttributeManager.__setitem__ = fails_once
w = CorpusWriter({path!r}, "distort", columns={{"ref": "int64"}}, ragged={{"image": ("uint8", 2)}}, attrs={{}},
                 fingerprint="f")
try:
    run_jobs(list(range(8)), one_row, w, workers=1, commit_every=2, progress=False)
except BaseException as exc:
    print(type(exc).__name__, exc)
w.close()
"""


def test_a_failed_write_under_a_ctrl_c_records_no_jobs_without_their_rows(tmp_path):
    """The run's commit on its way out wrote the progress of jobs whose rows the failed commit never
    stored (the failure itself was not lasting here, as a full disk freed by another process is not):
    the resume skipped them. The writer now refuses every write after a failed one."""
    import h5py

    path = tmp_path / "c.h5"
    r = subprocess.run([sys.executable, "-c", FAILS_UNDER_A_HELD_CTRL_C.format(tests=os.path.dirname(__file__),
                                                                             path=str(path))],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "failed earlier in this process (Unable to synchronously flush file" in r.stdout, r.stdout
    with h5py.File(path.with_name(path.name + S.PARTIAL_SUFFIX), "r") as f:
        assert (int(f.attrs[S.ATTR_COMMITTED]), int(f.attrs[S.ATTR_JOBS_DONE])) == (2, 2)
    kw = dict(columns={"ref": "int64"}, ragged={"image": ("uint8", 2)}, attrs={}, fingerprint="f")
    with CorpusWriter(path, "distort", **kw) as w:
        run_jobs(list(range(8)), one_row, w, workers=1, commit_every=2, progress=False)
        w.finish(tables={S.GROUPS: np.arange(8).reshape(1, -1), "ref_id": np.array(["r"], dtype=object)})
    assert Corpus(path).column("ref").tolist() == list(range(8))
