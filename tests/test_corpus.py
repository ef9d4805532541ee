"""The HDF5 writer/reader: round trip, plain-h5py readability, resume, crash safety, clear errors."""

import errno
import io
import os
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from rankgen.corpus import Corpus, CorpusWriter
from rankgen.corpus import schema as S
from rankgen.errors import RankgenError

COLUMNS = {"ref": "int64", "name": "str", "param": "float64"}
RAGGED = {"image": ("uint8", 3)}


def rows(start, n):
    out = []
    for i in range(start, start + n):
        rng = np.random.default_rng(i)
        h, w = 5 + i % 7, 9 + i % 3
        out.append({"ref": i, "name": f"item{i}", "param": i / 3, "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8)})
    return out


def crash(writer):
    """What a SIGKILL leaves: no final commit, the file and the lock just dropped."""
    writer._file.close()
    writer._lock.close()


def write(path, n=20, **kw):
    w = CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={"seed": 1}, fingerprint="f", **kw)
    with w:
        w.append(rows(0, n))
        w.finish(tables={S.GROUPS: np.arange(n).reshape(-1, 4), "ref_id": np.array([f"r{i}" for i in range(n)], dtype=object)})
    return rows(0, n)


def test_round_trip_and_plain_h5py(tmp_path):
    path = tmp_path / "c.h5"
    expected = write(path)
    c = Corpus(path, kind="distort")
    assert len(c) == 20 and c.kind == "distort"
    for i, row in enumerate(expected):
        np.testing.assert_array_equal(c.image(i), row["image"])
    assert c.column("name").tolist() == [r["name"] for r in expected]
    np.testing.assert_array_equal(c.groups, np.arange(20).reshape(-1, 4))
    # The recipe of docs/schema.md, with nothing but h5py.
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "rankgen" and f.attrs["schema_version"] == 2 and f.attrs["complete"]
        g = f["ragged/image"]
        i = 13
        start, size = g["offset"][i], g["size"][i]
        png = g["data"][start : start + size].tobytes()
        assert g.attrs["encoding"] == "png" and png.startswith(b"\x89PNG")
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), expected[i]["image"])
        assert f["items/param"][i] == pytest.approx(13 / 3)


def test_existing_output_needs_overwrite_and_is_kept_until_complete(tmp_path):
    path = tmp_path / "c.h5"
    write(path)
    with pytest.raises(RankgenError, match="--overwrite"):
        write(path)
    w = CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="g", overwrite=True)
    w.append(rows(0, 3))
    w.close()  # interrupted: the old file must still be there, whole
    assert len(Corpus(path)) == 20


def test_resume_continues_after_last_commit(tmp_path):
    path = tmp_path / "c.h5"
    w = CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")
    w.append(rows(0, 7))
    w.commit()
    w.append(rows(7, 2))  # never committed: lost, and must not appear twice
    crash(w)
    assert not path.exists()
    with pytest.raises(RankgenError, match="not finished"):
        Corpus(path)
    w = CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")
    assert w.n_done == 7
    w.append(rows(7, 13))
    w.finish(tables={S.GROUPS: np.zeros((0, 4), np.int64)})
    c = Corpus(path)
    assert len(c) == 20
    for i, row in enumerate(rows(0, 20)):
        np.testing.assert_array_equal(c.image(i), row["image"])


def test_partial_of_another_command_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "c.h5"
    w = CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="old")
    w.append(rows(0, 5))
    w.commit()
    w.close()
    with pytest.raises(RankgenError, match="cannot be resumed: it was written by another command.*--overwrite"):
        CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="new")
    with CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="old") as w:
        assert w.n_done == 5  # still there, resumable by its own command
    w = CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="new", overwrite=True)
    assert w.n_done == 0 and any("another command" in n for n in w.notes)
    w.close()


@pytest.mark.parametrize("keep", [0, 96, 400], ids=["empty", "superblock-only", "torn"])
def test_a_partial_killed_while_being_created_is_started_over(tmp_path, keep):
    """What SIGKILL leaves right after the partial was created: HDF5's message for a truncated file
    names the superblock ("sblock->base_addr"), which a loose match on "lock" once took for another
    process's file lock, refusing the re-run (a crash-torture failure in CI)."""
    path = tmp_path / "c.h5"
    w = CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")
    w.close()
    partial = tmp_path / "c.h5.partial"
    partial.write_bytes(partial.read_bytes()[:keep])
    with CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f") as w:
        assert w.n_done == 0 and any("starting over" in n for n in w.notes)
        w.append(rows(0, 3))
        w.finish()
    assert len(Corpus(path)) == 3


def test_a_partial_of_another_command_with_nothing_committed_is_started_over(tmp_path):
    path = tmp_path / "c.h5"
    CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="old").close()
    with CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="new") as w:
        assert w.n_done == 0 and any("nothing was committed" in n for n in w.notes)


def test_a_partial_held_open_elsewhere_is_never_discarded(tmp_path):
    path = tmp_path / "c.h5"
    w = CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")
    w.append(rows(0, 6))
    w.commit()
    w.close()
    code = f"import h5py, time; f = h5py.File({str(path) + '.partial'!r}, 'r'); print('open', flush=True); time.sleep(30)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(RankgenError, match="is open in another process"):
            CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")
    finally:
        holder.kill()
        holder.wait()
    with CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f") as w:
        assert w.n_done == 6


def test_a_partial_with_commits_that_hdf5_cannot_open_is_never_discarded(tmp_path):
    """What a full disk once left (HDF5 failing mid-flush): a partial with committed items that HDF5
    no longer opens was taken for one killed while being created and silently started over."""
    path = tmp_path / "c.h5"
    w = CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")
    w.append(rows(0, 6))
    w.commit()
    w.close()
    partial = tmp_path / "c.h5.partial"
    partial.write_bytes(partial.read_bytes()[:-1000])  # its end no longer where the superblock says
    damaged = partial.read_bytes()
    with pytest.raises(RankgenError, match=r"c.h5.partial cannot be resumed: HDF5 cannot open it .*--overwrite"):
        CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")
    assert partial.read_bytes() == damaged
    with CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f", overwrite=True) as w:
        assert w.n_done == 0 and any("--overwrite" in n for n in w.notes)


def _refused_write(*args):
    raise RuntimeError("Can't write data (file write failed)")


def _no_blocks(*args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("refusal", ["free space check", "reservation", "h5py write"])
def test_a_commit_the_disk_refuses_is_one_line_and_keeps_what_was_committed(tmp_path, monkeypatch, refusal):
    """Refused before writing when the free space is short, or when the disk refuses to reserve the
    commit's blocks; where it cannot (no fallocate), h5py reports the refused write at the flush, as a
    RuntimeError. HDF5 cannot close or reopen a file after a failed write (closing it crashed at exit),
    so this process then leaves the partial alone: a new one resumes it (test_crash_torture.py, on a
    real full disk). A refused reservation wrote nothing, so the same process resumes."""
    import shutil
    from collections import namedtuple

    path = tmp_path / "c.h5"
    w = CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")
    w.append(rows(0, 4))
    w.commit()
    if refusal == "free space check":
        usage = namedtuple("usage", "total used free")
        monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 30, 1 << 30, 1 << 20))
        message = r"disk full: 1 MB free .* 4 items are committed"
    elif refusal == "reservation":  # another process filled the disk after the check: nothing written
        from rankgen.corpus import writer

        monkeypatch.setattr(writer, "_fallocate", _no_blocks)
        message = r"disk full while writing .*c\.h5\.partial\. 4 items are committed"
    else:
        monkeypatch.setattr(CorpusWriter, "_write_bytes", _refused_write)
        message = r"cannot write .*c\.h5\.partial: Can't write data .*Re-run the same command"
    w.append(rows(4, 4))
    with pytest.raises(RankgenError, match=message):
        w.commit()
    monkeypatch.undo()
    if refusal == "h5py write":
        w.close()
        with pytest.raises(RankgenError, match=r"writing .*c\.h5\.partial failed earlier in this process.* in a new process to resume"):
            CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")
        return
    w.commit()  # nothing was written: the rows are still there for a retry (once lost after a refused reservation)
    w.close()
    with CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f") as w:
        assert w.n_done == 8


def test_a_close_that_fails_is_not_an_error_of_its_own(tmp_path, monkeypatch):
    """HDF5 flushes on close: a close that fails (a disk filled since the last commit) leaves the file as a
    failed write does; it must not replace the error the run is stopping for, nor crash at exit."""
    path = tmp_path / "c.h5"
    w = CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")
    w.append(rows(0, 4))
    w.commit()
    monkeypatch.setattr(h5py.File, "close", _refused_write)
    w.close()
    monkeypatch.undo()
    with pytest.raises(RankgenError, match="failed earlier in this process"):
        CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")


def test_a_folder_sync_that_fails_after_publishing_says_the_file_is_complete(tmp_path, monkeypatch):
    """The rename is done by then: the message once said to re-run to resume, which would start over."""
    from rankgen.corpus import writer

    real = writer._fsync_path

    def folder_fails(path):
        if path.is_dir():
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(path)

    monkeypatch.setattr(writer, "_fsync_path", folder_fails)
    path = tmp_path / "c.h5"
    with pytest.raises(RankgenError, match=r"c\.h5 is complete, but its folder could not be synced"):
        write(path)
    monkeypatch.undo()
    assert len(Corpus(path)) == 20 and not (tmp_path / "c.h5.lock").exists()


def test_garbage_partial_is_replaced(tmp_path):
    path = tmp_path / "c.h5"
    (tmp_path / "c.h5.partial").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    w = CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")
    assert w.n_done == 0
    w.close()


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_corpus import COLUMNS, RAGGED, rows
    from rankgen.corpus import CorpusWriter
    w = CorpusWriter({path!r}, "distort", columns=COLUMNS, ragged=RAGGED, attrs={{}}, fingerprint="f")
    start = w.n_done
    for k in range(start, 40, 4):
        w.append(rows(k, 4))
        w.commit()
        if k >= {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)
    w.finish(tables={{}})
""")


@pytest.mark.parametrize("kill_at", [0, 12, 28])
def test_sigkill_then_rerun_equals_uninterrupted(tmp_path, kill_at):
    path = str(tmp_path / "c.h5")
    script = KILLED_WRITER.format(tests=os.path.dirname(__file__), path=path, kill_at=kill_at)
    first = subprocess.run([sys.executable, "-c", script])
    assert first.returncode == -signal.SIGKILL
    assert not os.path.exists(path), "a killed run must not leave a file under the final name"
    done = subprocess.run([sys.executable, "-c", script.replace(f">= {kill_at}", ">= 10**9")])
    assert done.returncode == 0
    c = Corpus(path)
    assert len(c) == 40
    for i, row in enumerate(rows(0, 40)):
        np.testing.assert_array_equal(c.image(i), row["image"])


def test_reader_errors_are_clear(tmp_path):
    with pytest.raises(RankgenError, match="does not exist"):
        Corpus(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(RankgenError, match="junk.h5 is not an HDF5 file, so not a rankgen corpus"):
        Corpus(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(RankgenError, match="not a rankgen corpus"):
        Corpus(tmp_path / "other.h5")
    path = tmp_path / "c.h5"
    write(path)
    with pytest.raises(RankgenError, match="'crops'"):
        Corpus(path, kind="crops")
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(RankgenError, match="schema version 99"):
        Corpus(path)


def _encoded_sizes():
    from rankgen.corpus.codec import png_bytes

    return [len(png_bytes(r["image"])) for r in rows(0, 20)]


# Smaller than every item, between sizes, exactly the first two items, several items, everything.
@pytest.mark.parametrize("gather", [64, 300, "first two", 700, 1 << 20])
def test_items_bytes_land_in_order_whatever_the_gather_buffer(tmp_path, monkeypatch, gather):
    """Items smaller and larger than the writer's buffer, filling it exactly or not, across commits:
    the stored bytes are the items' encoded bytes end to end (pixels alone would miss a lost IEND)."""
    from rankgen.corpus import writer as writer_module
    from rankgen.corpus.writer import encode_rows

    sizes = _encoded_sizes()
    monkeypatch.setattr(writer_module, "GATHER_BYTES", sizes[0] + sizes[1] if gather == "first two" else gather)
    path = tmp_path / "c.h5"
    w = CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")
    expected = b"".join(r["image"].data for r in encode_rows(rows(0, 20), w.encoders()))
    with w:
        for start, n in ((0, 7), (7, 8), (15, 5)):
            w.append(rows(start, n))
            w.commit()
        w.finish(tables={S.GROUPS: np.arange(20).reshape(-1, 4), "ref_id": np.array(["r"] * 20, dtype=object)})
    with h5py.File(path, "r") as f:
        assert f["ragged/image/data"][...].tobytes() == expected
    c = Corpus(path)
    for i, row in enumerate(rows(0, 20)):
        np.testing.assert_array_equal(c.image(i), row["image"])


def test_reader_survives_fork(tmp_path):
    """A handle opened in the parent is never used in a child: each process opens its own."""
    path = tmp_path / "c.h5"
    expected = write(path)
    c = Corpus(path)
    c.image(0)
    parents = c._dataset("image")
    pid = os.fork()
    if pid == 0:
        ok = all(np.array_equal(c.image(i), expected[i]["image"]) for i in range(20))
        ok = ok and c._dataset("image") is not parents  # the dataset it keeps is the child's own too
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    np.testing.assert_array_equal(c.image(5), expected[5]["image"])


@pytest.mark.parametrize("reopened_in", ["a forked worker", "a spawned worker", "this process"])
def test_a_file_replaced_after_opening_is_refused_not_mixed(tmp_path, reopened_in):
    """The caches describe the file first opened: a worker (or a reopen here) that met a file replaced
    at the same path (a re-run with --overwrite) paired the old labels with the new pixels."""
    import pickle

    path = tmp_path / "c.h5"
    write(path)
    c = Corpus(path)
    assert c.column("name")[0] == "item0"
    c.close()
    w = CorpusWriter(tmp_path / "new.h5", "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")
    with w:
        w.append(rows(100, 20))
        w.finish(tables={S.GROUPS: np.arange(20).reshape(-1, 4), "ref_id": np.array(["r"] * 20, dtype=object)})
    os.replace(tmp_path / "new.h5", path)
    if reopened_in == "a forked worker":
        pid = os.fork()
        if pid == 0:
            try:
                c.image(0)
            except RankgenError as exc:
                os._exit(0 if "changed after it was opened" in str(exc) else 1)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        return
    reader = pickle.loads(pickle.dumps(c)) if reopened_in == "a spawned worker" else c
    with pytest.raises(RankgenError, match="c.h5 changed after it was opened .*open it again"):
        reader.image(0)


def test_the_same_items_stored_with_another_compression_are_a_change(tmp_path):
    """--compression is not in the fingerprint (the pixels are the same) but moves every offset and size;
    a merge of shards does not name it in its command either."""
    path = tmp_path / "c.h5"

    def written(to, compression):
        with CorpusWriter(to, "distort", columns=COLUMNS, ragged=RAGGED, fingerprint="f", encoding=compression,
                          attrs={S.ATTR_COMMAND: "rankgen merge p0.h5 p1.h5"}) as w:
            w.append(rows(0, 20))
            w.finish(tables={S.GROUPS: np.arange(20).reshape(-1, 4), "ref_id": np.array(["r"] * 20, dtype=object)})

    written(path, "png")
    c = Corpus(path)
    c.image(0)
    c.close()
    written(tmp_path / "raw.h5", "none")
    os.replace(tmp_path / "raw.h5", path)
    with pytest.raises(RankgenError, match="changed after it was opened"):
        c.image(1)


def test_a_file_rewritten_with_the_same_content_is_read_on(tmp_path):
    """A re-run of the same command writes the same content to a new file (a new inode): not a change."""
    import pickle

    path = tmp_path / "c.h5"
    expected = write(path)
    c = Corpus(path)
    c.column("name")
    c.close()
    write(tmp_path / "again.h5")
    os.replace(tmp_path / "again.h5", path)
    for reader in (c, pickle.loads(pickle.dumps(c))):
        np.testing.assert_array_equal(reader.image(3), expected[3]["image"])


def test_read_only_folder_is_refused_clearly(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user that can write anywhere (root)")
        with pytest.raises(RankgenError, match="not writable"):
            CorpusWriter(ro / "c.h5", "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")
    finally:
        ro.chmod(0o700)


WRITE_FAILS_MID_COMMIT = textwrap.dedent("""
    import resource, signal, sys
    sys.path.insert(0, {tests!r})
    from test_corpus import COLUMNS, RAGGED, rows
    from rankgen.corpus import CorpusWriter
    from rankgen.errors import RankgenError
    w = CorpusWriter({path!r}, "distort", columns=COLUMNS, ragged=RAGGED, attrs={{}}, fingerprint="f")
    w.append(rows(0, 4))
    w.commit()
    # A real failed write, without root: the file may not grow past its size now (EFBIG), which the
    # reservation (it keeps the file's size) does not see, as on a file system without fallocate.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    size = w.partial.stat().st_size
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    w.append(rows(4, 4000))  # enough that HDF5 fails with dirty metadata, which closing crashed on
    try:
        w.commit()
    except RankgenError as exc:
        print(exc)
    w.close()
""")


def test_a_write_that_fails_mid_commit_keeps_the_commits_and_the_process_exits_cleanly(tmp_path):
    """HDF5 can neither close nor reopen a file after a failed write: closing it crashed the process at
    exit (status 139, h5py#914). The writer leaves it open; the next process resumes it."""
    path = tmp_path / "c.h5"
    script = WRITE_FAILS_MID_COMMIT.format(tests=os.path.dirname(__file__), path=str(path))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", (r.returncode, r.stderr)
    assert r.stdout.startswith("cannot write") and "File too large" in r.stdout and "resume" in r.stdout, r.stdout
    assert len(r.stdout.strip().splitlines()) == 1
    w = CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")
    assert w.n_done == 4
    w.append(rows(4, 4))
    w.finish()
    assert len(Corpus(path)) == 8


def test_a_lock_on_a_file_its_holder_unlinked_is_taken_again_on_the_file_at_the_path(tmp_path, monkeypatch):
    """The holder unlinks the lock file as it lets go: a process that opened it just before and locked it
    just after held a lock on a file no longer at the path, while a third could lock a new file there."""
    from rankgen import locking

    path = tmp_path / "c.h5.lock"
    path.write_text("1")
    stale = open(path, "a+")  # opened before the holder's unlink ...
    path.unlink()  # ... which happens before this process's flock
    opened = []

    def racing_open(name, mode):
        opened.append(name)
        return stale if len(opened) == 1 else open(name, mode)

    monkeypatch.setattr(locking, "open", racing_open, raising=False)
    handle = locking.exclusive_lock(path)
    assert len(opened) == 2 and os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    assert stale.closed
    handle.close()


def test_second_writer_of_the_same_path_is_refused(tmp_path):
    path = tmp_path / "c.h5"
    first = CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="f")
    first.append(rows(0, 3))
    first.commit()
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from test_corpus import COLUMNS, RAGGED\n"
        "from rankgen.corpus import CorpusWriter\n"
        "from rankgen.errors import RankgenError\n"
        "try:\n"
        "    CorpusWriter(%r, 'distort', columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint='f')\n"
        "except RankgenError as e:\n"
        "    print(e); sys.exit(3)\n"
    ) % (os.path.dirname(__file__), str(path))
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert other.returncode == 3 and "another process" in other.stdout and str(os.getpid()) in other.stdout
    first.append(rows(3, 3))
    first.finish()
    assert len(Corpus(path)) == 6
    assert not (tmp_path / "c.h5.lock").exists()


def test_check_finds_silent_damage(tmp_path):
    from rankgen.corpus.check import check

    path = tmp_path / "c.h5"
    write(path)
    assert check(path) == []
    with h5py.File(path, "a") as f:
        data = f["ragged/image/data"]
        data[10] = data[10] ^ 0xFF
    # A flipped byte of a stored PNG fails its chunk CRC, so the item does not even decode.
    assert any(p.startswith("ragged/image: 1 items cannot be decoded") and "first at item 0" in p for p in check(path))
    write(tmp_path / "d.h5")
    with h5py.File(tmp_path / "d.h5", "a") as f:
        f["items/param"][3] = -1.0
    assert check(tmp_path / "d.h5") == ["items/param: changed since it was written"]
    (tmp_path / "e.h5").write_bytes(b"junk")
    assert "cannot be opened" in check(tmp_path / "e.h5")[0]


@given(st.integers(1, 40), st.integers(1, 40), st.sampled_from([None, 1, 3, 4]), st.integers(0, 2**32 - 1),
       st.sampled_from(["noise", "flat", "ramp"]))
@settings(max_examples=60, deadline=None)
def test_png_bytes_are_a_standard_png_of_the_array(h, w, channels, seed, content):
    """rankgen assembles its PNGs itself (Up filter, ISA-L deflate): OpenCV's and Pillow's decoders
    must give back the array, every channel layout and size down to 1 x 1."""
    from rankgen.corpus.codec import _own_png_pixels, decode, encode, png_bytes

    shape = (h, w) if channels is None else (h, w, channels)
    rng = np.random.default_rng(seed)
    array = {"noise": lambda: rng.integers(0, 256, shape, dtype=np.uint8),
             "flat": lambda: np.full(shape, rng.integers(0, 256), np.uint8),
             "ramp": lambda: (np.arange(np.prod(shape)) % 256).astype(np.uint8).reshape(shape)}[content]()
    data = png_bytes(array)
    with Image.open(io.BytesIO(data)) as im:
        im.load()  # Pillow checks the chunk CRCs and the zlib stream
        assert im.mode == {None: "L", 1: "L", 3: "RGB", 4: "RGBA"}[channels]
        np.testing.assert_array_equal(np.asarray(im).reshape(shape), array)
    stored = encode(array, S.PNG)
    assert stored.data == data
    np.testing.assert_array_equal(_own_png_pixels(np.frombuffer(data, np.uint8), shape), array)  # the shortcut takes it
    np.testing.assert_array_equal(decode(np.frombuffer(stored.data, np.uint8), shape, np.uint8, S.PNG), array)


def _cv2_png(array: np.ndarray, **flags) -> bytes:
    import cv2

    bgr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 and array.shape[2] == 3 else array
    return cv2.imencode(".png", bgr, [x for k, v in flags.items() for x in (getattr(cv2, k), v)])[1].tobytes()


@pytest.mark.parametrize("flags", [{"IMWRITE_PNG_FILTER": 8},  # OpenCV's own PNG, Paeth: files before 2026-12-06
                                   {"IMWRITE_PNG_FILTER": 16},  # Up in every row, but by libpng: several IDATs
                                   {"IMWRITE_PNG_COMPRESSION": 0}])
def test_a_png_another_encoder_wrote_is_decoded_by_opencv(flags):
    from rankgen.corpus.codec import decode

    array = np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    data = np.frombuffer(_cv2_png(array, **flags), np.uint8)
    np.testing.assert_array_equal(decode(data, array.shape, np.uint8, S.PNG), array)


def test_a_png_of_png_bytes_layout_with_another_filter_in_one_row_goes_to_opencv():
    """Same chunks as png_bytes writes, but one row Sub-filtered: the shortcut must not read it as Up."""
    import zlib

    import cv2

    from rankgen.corpus.codec import _IDAT_AT, _own_png_pixels, decode, png_bytes

    array = np.random.default_rng(1).integers(0, 256, (20, 16, 3), dtype=np.uint8)
    data = png_bytes(array)
    size = int.from_bytes(data[_IDAT_AT:_IDAT_AT + 4], "big")
    rows = bytearray(zlib.decompress(data[_IDAT_AT + 8:_IDAT_AT + 8 + size]))
    width = 1 + 16 * 3
    row = 7
    raw = array.reshape(20, -1)[row]
    rows[row * width] = 1  # Sub: each byte less the byte of the pixel to its left
    rows[row * width + 1:(row + 1) * width] = np.concatenate([raw[:3], raw[3:] - raw[:-3]]).astype(np.uint8).tobytes()
    idat = zlib.compress(bytes(rows))
    data = (data[:_IDAT_AT] + len(idat).to_bytes(4, "big") + b"IDAT" + idat
            + zlib.crc32(b"IDAT" + idat).to_bytes(4, "big") + data[_IDAT_AT + 12 + size:])
    buf = np.frombuffer(data, np.uint8)
    assert _own_png_pixels(buf, array.shape) is None
    np.testing.assert_array_equal(cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB), array)
    np.testing.assert_array_equal(decode(buf, array.shape, np.uint8, S.PNG), array)


@pytest.mark.parametrize("shape", [(5, 106, 3), (5, 107, 3), (4, 319), (4, 320), (3, 80, 4), (2000, 1), (1, 2000)])
def test_own_png_reads_rows_on_both_sides_of_the_cumsum_cutoff(shape):
    """Rows under _ROW_LOOP_FROM bytes are summed with cumsum, longer ones row by row: both exact."""
    from rankgen.corpus.codec import _ROW_LOOP_FROM, _own_png_pixels, png_bytes

    assert _ROW_LOOP_FROM == 320  # the shapes above straddle it
    array = np.random.default_rng(len(shape)).integers(0, 256, shape, dtype=np.uint8)
    data = png_bytes(array)
    with Image.open(io.BytesIO(data)) as im:
        np.testing.assert_array_equal(np.asarray(im).reshape(shape), array)
    np.testing.assert_array_equal(_own_png_pixels(np.frombuffer(data, np.uint8), shape), array)


def test_columns_named_like_what_the_reader_keeps_are_still_columns(tmp_path):
    path = tmp_path / "c.h5"
    with CorpusWriter(path, "distort", columns={"version": "int64", "len": "int64"}, ragged=RAGGED, attrs={},
                      fingerprint="f") as w:
        w.append([{"version": 7, "len": 8, "image": np.zeros((2, 2, 3), np.uint8)}] * 3)
        w.finish(tables={S.GROUPS: np.arange(3).reshape(1, 3), "ref_id": np.array(["r"], dtype=object)})
    c = Corpus(path)
    assert (len(c), c.version) == (3, 2)
    assert c.column("version").tolist() == [7] * 3 and c.column("len").tolist() == [8] * 3
    assert (len(c), c.version) == (3, 2)


def test_decode_takes_a_strided_buffer():
    from rankgen.corpus.codec import decode, png_bytes

    array = (np.arange(6 * 5 * 3) % 256).astype(np.uint8).reshape(6, 5, 3)
    data = np.frombuffer(png_bytes(array), np.uint8)
    strided = np.zeros(2 * data.size, np.uint8)
    strided[::2] = data
    np.testing.assert_array_equal(decode(strided[::2], array.shape, np.uint8, S.PNG), array)


def test_an_idat_that_inflates_past_the_image_is_left_to_opencv():
    import zlib

    from rankgen.corpus.codec import _IDAT_AT, _own_png_pixels, png_bytes

    array = np.zeros((2, 2, 3), np.uint8)
    data = png_bytes(array)
    size = int.from_bytes(data[_IDAT_AT:_IDAT_AT + 4], "big")
    idat = zlib.compress(b"\x02" + bytes(6) + b"\x02" + bytes(6) + bytes(10**6))
    data = (data[:_IDAT_AT] + len(idat).to_bytes(4, "big") + b"IDAT" + idat
            + zlib.crc32(b"IDAT" + idat).to_bytes(4, "big") + data[_IDAT_AT + 12 + size:])
    assert _own_png_pixels(np.frombuffer(data, np.uint8), array.shape) is None


def test_a_zlib_window_over_32k_is_left_to_libpng():
    """ISA-L inflates a stream whose header claims a 64 KB window; libpng refuses it, so must the shortcut."""
    import zlib

    from rankgen.corpus.codec import _IDAT_AT, _own_png_pixels, png_bytes

    array = (np.arange(8 * 9 * 3) % 251).astype(np.uint8).reshape(8, 9, 3)
    data = bytearray(png_bytes(array))
    size = int.from_bytes(data[_IDAT_AT:_IDAT_AT + 4], "big")
    assert data[_IDAT_AT + 8] >> 4 <= 7
    flags = data[_IDAT_AT + 9] & 0xE0  # FLEVEL and FDICT kept, FCHECK made right for the new first byte
    data[_IDAT_AT + 8:_IDAT_AT + 10] = bytes([0x88, flags | (31 - (0x88 * 256 + flags) % 31) % 31])  # CINFO 8
    crc = zlib.crc32(bytes(data[_IDAT_AT + 4:_IDAT_AT + 8 + size]))
    data[_IDAT_AT + 8 + size:_IDAT_AT + 12 + size] = crc.to_bytes(4, "big")
    assert (data[_IDAT_AT + 8] * 256 + data[_IDAT_AT + 9]) % 31 == 0
    assert _own_png_pixels(np.frombuffer(bytes(data), np.uint8), array.shape) is None


@pytest.mark.parametrize("value", [-9, 0])
def test_a_damaged_shape_is_a_damaged_item_not_a_crash(tmp_path, value):
    from rankgen.corpus.check import check

    path = tmp_path / "c.h5"
    write(path)
    with h5py.File(path, "r+") as f:
        f["ragged/image/shape"][3, 1] = value
    with pytest.raises(RankgenError, match="item 3 of ragged/image does not decode"):
        Corpus(path).image(3)
    assert any(p.startswith("ragged/image: 1 items cannot be decoded") for p in check(path))


@pytest.mark.parametrize("damage", ["idat byte", "idat crc", "adler", "truncated", "other shape", "empty",
                                    "sides too large"])
def test_a_damaged_own_png_is_an_error_not_other_pixels(damage):
    """The shortcut's checks each send a damaged PNG to OpenCV, whose refusal is the one error."""
    import zlib

    from rankgen.corpus.codec import _IDAT_AT, decode, png_bytes

    array = (np.arange(40 * 30 * 3) % 251).astype(np.uint8).reshape(40, 30, 3)
    data = bytearray(png_bytes(array))
    size = int.from_bytes(data[_IDAT_AT:_IDAT_AT + 4], "big")
    shape = array.shape
    if damage == "idat byte":
        data[_IDAT_AT + 8 + size // 2] ^= 0x10
    elif damage == "idat crc":
        data[_IDAT_AT + 8 + size] ^= 0x01
    elif damage == "adler":  # a stream that inflates, with the chunk's CRC made right again
        data[_IDAT_AT + 8 + size - 1] ^= 0x01
        crc = zlib.crc32(bytes(data[_IDAT_AT + 4:_IDAT_AT + 8 + size]))
        data[_IDAT_AT + 8 + size:_IDAT_AT + 12 + size] = crc.to_bytes(4, "big")
    elif damage == "truncated":
        data = data[:-20]
    elif damage == "empty":  # a size of 0 in the index (OpenCV raised its own error, a traceback)
        data = b""
    elif damage == "sides too large":  # as the header says: more bytes than any buffer holds
        from rankgen.corpus.codec import _png_header

        shape = (2**31 - 1, 2**31 - 1, 4)
        data = _png_header(shape) + bytes(data[_IDAT_AT:])
    else:
        shape = (30, 40, 3)
    with pytest.raises(ValueError, match="does not decode"):
        decode(np.frombuffer(bytes(data), np.uint8), shape, np.uint8, S.PNG)
