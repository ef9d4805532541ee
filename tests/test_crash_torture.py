"""Crash torture: SIGKILL generation at random moments, re-run, and demand the uninterrupted result.

Every trial kills `rankgen distort` (or `rankgen merge`) after a random delay drawn over the whole
length of an uninterrupted run, so kills land during decoding, distortion, HDF5 writes, the final
rename and the merge copy. After each kill: no file under the final name unless it is complete and
sound (`rankgen check`); then the same command is re-run and its content must equal the
uninterrupted run's. RANKGEN_TORTURE_KILLS sets the number of trials (default 30, about a minute;
docs/reliability.md also reports a run of 40).
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from PIL import Image

from rankgen.corpus.check import check

KILLS = int(os.environ.get("RANKGEN_TORTURE_KILLS", "30"))


def digests(path):
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["checksums"])


def rankgen(*args):
    return [sys.executable, "-m", "rankgen", *map(str, args)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, photo):
    root = tmp_path_factory.mktemp("torture")
    photos = root / "photos"
    photos.mkdir()
    for i in range(6):
        Image.fromarray(np.roll(photo, 11 * i, axis=0)[:72, :96]).save(photos / f"{i}.png")
    distort = ["distort", "--dataset", "folder", "--root", photos, "--distortions",
               "gaussian_noise,jpeg,jpeg2000,gaussian_blur", "--levels", 4, "--workers", 1, "--quiet"]
    subprocess.run(rankgen(*distort, "-o", root / "whole.h5"), check=True)
    for i in range(3):
        subprocess.run(rankgen(*distort, "--shard", f"{i}/3", "-o", root / f"part{i}.h5"), check=True)
    merge = ["merge", *(root / f"part{i}.h5" for i in range(3))]
    # Timed warm (bytecode compiled, files cached): a cold first run on a fresh clone is much
    # slower, and delays drawn from it would mostly land after the run had finished.
    durations = {}
    for name, args in (("distort", distort), ("merge", merge)):
        t = time.perf_counter()
        subprocess.run(rankgen(*args, "-o", root / f"timed-{name}.h5"), check=True, stdout=subprocess.DEVNULL)
        durations[name] = time.perf_counter() - t
    return root, {"distort": distort, "merge": merge}, durations


def kill_after(cmd, delay):
    """Run cmd, SIGKILL it after delay seconds; its return code and, if it ended first, its duration."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
        return proc.returncode, time.perf_counter() - t
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.returncode, None


def test_sigkill_at_random_moments_never_corrupts(setup):
    root, commands, durations = setup
    expected = digests(root / "whole.h5")
    rng = random.Random(1234)
    killed = 0
    for trial in range(KILLS):
        out = root / f"t{trial}.h5"
        which = "merge" if trial % 4 == 3 else "distort"  # every fourth trial tortures the merge
        cmd = rankgen(*commands[which], "-o", out)
        # Up to 10 % past the measured length, so some kills land on the rename or just after it.
        code, ran = kill_after(cmd, rng.uniform(0.05, durations[which] * 1.1))
        killed += code == -signal.SIGKILL
        if ran is not None:
            # A load spike while timing would push most later delays past the end of the run.
            durations[which] = min(durations[which], ran)
        if out.exists():  # the kill came after the rename: the file must be whole
            assert check(out) == [], f"trial {trial}: a file under the final name must be whole"
        else:
            rerun = subprocess.run(cmd, capture_output=True, text=True)
            assert rerun.returncode == 0, f"trial {trial}: the re-run failed: {rerun.stderr[-2000:]}"
        assert check(out) == []
        assert digests(out) == expected, f"trial {trial}: the re-run differs from the uninterrupted run"
        assert not out.with_name(out.name + ".partial").exists()
    print(f"\ncrash torture: {KILLS} trials ({KILLS // 4} of them merges), {killed} killed mid-run, "
          f"{KILLS - killed} finished before the kill; every re-run equals the uninterrupted run")
    assert killed >= KILLS // 2, "most trials must really kill mid-run, or this tests nothing"


@pytest.fixture
def small_disk(tmp_path, photo):
    """(distort's arguments, the uninterrupted run's file, a 64 MB tmpfs to write on, that file's size)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(24):
        Image.fromarray(np.roll(photo, 7 * i, axis=1)[:72, :96]).save(photos / f"{i:02d}.png")
    args = ["distort", "--dataset", "folder", "--root", photos, "--distortions", "gaussian_noise,jpeg,gaussian_blur",
            "--levels", 4, "--workers", 1, "--quiet"]
    whole = tmp_path / "whole.h5"
    subprocess.run(rankgen(*args, "-o", whole), check=True)
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64M", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield args, whole, disk, whole.stat().st_size
    finally:
        subprocess.run(["umount", str(disk)])


def resumes_once_freed(filler, args, out, whole) -> None:
    """What a run stopped by a full disk must leave: committed items, resumed to the uninterrupted
    run's content by the same command once space is freed."""
    with h5py.File(out.with_name(out.name + ".partial"), "r") as f:
        assert int(f.attrs["n_committed"]) > 0
    filler.unlink()
    r = subprocess.run(rankgen(*args, "-o", out), capture_output=True, text=True)
    assert r.returncode == 0 and "resumed after" in r.stdout, r.stdout + r.stderr
    assert check(out) == [] and digests(out) == digests(whole)


def test_full_disk_stops_cleanly_keeps_commits_and_resumes(small_disk):
    """A real full disk (a small tmpfs): one line, exit 2, committed items kept; after freeing space
    the same command resumes to the uninterrupted result; --overwrite on a full disk keeps the old file."""
    import shutil

    from rankgen.corpus.writer import DISK_HEADROOM

    args, whole, disk, size = small_disk
    filler = disk / "filler"
    # Room for the first commit (8 of 24 sources) but not for the whole file.
    filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - DISK_HEADROOM - size // 2))
    out = disk / "out.h5"
    r = subprocess.run(rankgen(*args, "-o", out), capture_output=True, text=True)
    assert r.returncode == 2 and "disk full" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()
    resumes_once_freed(filler, args, out, whole)
    filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - DISK_HEADROOM - size // 2))
    r = subprocess.run(rankgen(*args, "--seed", 1, "--overwrite", "-o", out), capture_output=True, text=True)
    assert r.returncode == 2 and "disk full" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert check(out) == [] and digests(out) == digests(whole)  # the old file, whole


# The free-space check sees plenty: what the writer meets when another process fills the disk after it.
# A smaller headroom lets this small corpus outgrow the disk.
RACED_CHECK = """
import shutil, sys
from collections import namedtuple
import rankgen.corpus.writer
rankgen.corpus.writer.DISK_HEADROOM = 1 << 20
if sys.argv.pop(1) == "no-fallocate":
    rankgen.corpus.writer._fallocate = lambda *args: False
shutil.disk_usage = lambda path: namedtuple("usage", "total used free")(1 << 40, 0, 1 << 40)
from rankgen.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("space", ["reserved", "no-fallocate"])
def test_a_disk_filled_after_the_free_space_check_still_stops_cleanly_and_resumes(small_disk, space):
    """HDF5 failing mid-write for want of space crashed the interpreter (exit 139) and left a partial it
    could not open, whose committed items the re-run then threw away; the writer reserves the blocks first.
    Where it cannot (no fallocate), HDF5 does fail mid-write, and the interpreter still crashed at exit
    closing the file; the message was HDF5's, over two lines."""
    import shutil

    args, whole, disk, size = small_disk
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - (1 << 20) - size // 2))
    out = disk / "out.h5"
    r = subprocess.run([sys.executable, "-c", RACED_CHECK, space, *map(str, args), "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "disk full" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    resumes_once_freed(filler, args, out, whole)


def test_workers_die_with_a_killed_writer_so_the_rerun_is_not_refused(tmp_path):
    """A pool worker shares the writer's flock and HDF5's lock on the .partial: one that ran on after
    SIGKILL of the writer refused the immediate re-run ("another process is writing") until its job ended."""
    import skimage.data

    if not sys.platform.startswith("linux"):
        pytest.skip("workers die with their parent through Linux's PR_SET_PDEATHSIG")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):  # full-size photos and the costliest types: each job lasts about a second
        Image.fromarray(np.roll(skimage.data.astronaut(), 40 * i, axis=1)).save(photos / f"{i}.png")
    cmd = rankgen("distort", "--dataset", "folder", "--root", photos, "--distortions", "image_denoising,jpeg2000",
                  "--levels", 5, "--workers", 2, "--quiet", "-o", tmp_path / "out.h5")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = f"/proc/{proc.pid}/task/{proc.pid}/children"
    deadline = time.monotonic() + 60
    while not (os.path.exists(children) and len(open(children).read().split()) == 2):
        assert proc.poll() is None and time.monotonic() < deadline, "the pool never started"
        time.sleep(0.05)
    workers = [int(p) for p in open(children).read().split()]
    time.sleep(0.3)  # inside their first jobs
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.3)
    alive = [p for p in workers if os.path.exists(f"/proc/{p}") and "Z" not in open(f"/proc/{p}/stat").read().split()[2]]
    assert alive == [], "pool workers outlived the killed writer"
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert check(tmp_path / "out.h5") == []


def test_a_virtual_merge_on_a_disk_filled_after_its_check_stops_with_one_line(small_disk, tmp_path):
    """The virtual merge wrote its file outside CorpusWriter, without the check or the reservation: HDF5
    failing there for want of space crashed the interpreter at exit (h5py#914)."""
    import shutil

    args, whole, disk, size = small_disk
    shards = [tmp_path / f"part{i}.h5" for i in range(2)]
    for i, shard in enumerate(shards):
        subprocess.run(rankgen(*args, "--shard", f"{i}/2", "-o", shard), check=True)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - (8 << 10)))  # room for the lock, not the small file
    out = disk / "v.h5"
    cmd = [sys.executable, "-c", RACED_CHECK, "reserved", "merge", "--virtual", *map(str, shards), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and "disk full while writing" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()
    filler.unlink()
    r = subprocess.run(rankgen("merge", "--virtual", *shards, "-o", out), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert check(out) == []
