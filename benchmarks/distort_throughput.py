"""Distortion speed and corpus throughput; prints figures (copy them into docs/benchmarks.md).

    python benchmarks/distort_throughput.py [--repeat 5]

1. ms per call of every distortion at every level on a 512x384 photograph, and each registered
   type's ratio to a floor implementation (benchmarks/floors.py);
2. writing the default corpus (`rankgen distort`: 6 bundled photos x 77 items), --workers 1 and 2
   in alternating rounds of one run: wall / sum of kernel time at --workers 1, the writing
   process's CPU per image against the distortion CPU per image, the --workers 2 speed-up (with
   the load average before and after: on a loaded machine it means nothing), file size / raw
   pixels for --compression png and none, and read speed;
3. peak RSS of the whole process tree (writer + workers) for 6, 24 and 48 sources at --workers 1
   and 2: it must stay flat, because at most a few jobs are in flight per worker and rows are
   committed every few sources.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import rankgen
import rankgen.jobs.distort as jobs_distort
from benchmarks_common import allocator_as_in_a_run, load, photo_512x384, photo_folder
from rankgen.distortions import distort, load_recipe


def per_call(repeat: int) -> None:
    img = photo_512x384()
    recipe = load_recipe("tid2013")
    print(f"## ms per call on 512x384 (median of {repeat})")
    print(f"{'distortion':28s}" + "".join(f"   L{lv}" + " " * 3 for lv in range(1, 5)))
    for name in recipe.names:
        cells = []
        for level, param in enumerate(recipe.params(name, 5), start=1):
            times = []
            for r in range(repeat):
                rng = np.random.default_rng(r)
                t = time.perf_counter()
                distort(img, name, param, rng)
                times.append(time.perf_counter() - t)
            cells.append(f"{np.median(times) * 1e3:8.1f}")
        print(f"{name:28s}" + "".join(cells))


def timed_run(out: Path, workers: int, **kw) -> tuple[float, float, int]:
    """(wall s, CPU s of this process, items) of rankgen.distort on the default corpus."""
    t, cpu = time.perf_counter(), time.process_time()
    s = rankgen.distort(out, workers=workers, overwrite=True, progress=False, **kw)
    return time.perf_counter() - t, time.process_time() - cpu, s.rows


def kernel_instrumented_run(out: Path, jobs: list | None = None, encoding: list | None = None,
                            **kw) -> tuple[float, float, int]:
    """--workers 1 runs in this process, so the distortion calls can be timed one by one (and, into
    `jobs`, each job's time: its source's decoding and kernels, without the encoding; into
    `encoding`, the run's PNG encoding time)."""
    from rankgen.corpus import codec

    spent, encoded = [0.0], [0.0]
    real, real_job, real_png = jobs_distort.distort_recorded, jobs_distort.distort_source, codec.png_bytes

    def summed(call, total):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                total[0] += time.perf_counter() - t
        return timed

    def timed_job(job):
        t = time.perf_counter()
        try:
            return real_job(job)
        finally:
            if jobs is not None:
                jobs.append(time.perf_counter() - t)

    jobs_distort.distort_recorded, jobs_distort.distort_source = summed(real, spent), timed_job
    codec.png_bytes = summed(real_png, encoded)
    try:
        wall, _, items = timed_run(out, 1, **kw)
    finally:
        jobs_distort.distort_recorded, jobs_distort.distort_source, codec.png_bytes = real, real_job, real_png
    if encoding is not None:
        encoding.append(encoded[0])
    return wall, spent[0], items


def in_order_cap(job_times: list[float], workers: int) -> float:
    """The speed-up that jobs of these durations allow on `workers` workers taking them in order,
    each the next job as soon as it is free (what the pool does), before any other cost."""
    free = [0.0] * workers
    for t in job_times:
        free[free.index(min(free))] += t
    return sum(job_times) / max(free)


FRESH_WRITER = """
import sys, time
import rankgen
s = rankgen.distort(sys.argv[1], workers=2, overwrite=True, progress=False)
print(1e3 * time.process_time() / s.rows)
"""


def writing(tmp: Path, rounds: int) -> None:
    """The issue's ratios on the default corpus (rankgen distort: 6 bundled photos, tid2013, 5 levels)."""
    print(f"\n## writing: the default corpus (rankgen distort), {rounds} alternating rounds; {load()}")
    walls = {1: [], 2: []}
    ratio_kernel, ratio_encoding, writer_cpu, kernel_per_item = [], [], [], []
    job_times: list[float] = []
    for _ in range(rounds):
        job_times.clear()
        encoding: list[float] = []
        wall, kernels, items = kernel_instrumented_run(tmp / "w1.h5", job_times, encoding)
        walls[1].append(wall)
        ratio_kernel.append(wall / kernels)
        ratio_encoding.append(encoding[0] / kernels)
        kernel_per_item.append(kernels / items)
        wall, cpu, items = timed_run(tmp / "w2.h5", 2)
        walls[2].append(wall)
        writer_cpu.append(cpu / items)
    w1, w2 = np.median(walls[1]), np.median(walls[2])
    print(f"--workers 1: {np.median(walls[1]):.1f} s; wall / sum of distortion kernel time = "
          f"{np.median(ratio_kernel):.2f} (target <= 1.15), of which PNG encoding / kernel time = "
          f"{np.median(ratio_encoding):.3f}")
    print(f"--workers 2: {w2:.1f} s; writing process CPU per image {1e3 * np.median(writer_cpu):.2f} ms / distortion "
          f"CPU per image {1e3 * np.median(kernel_per_item):.2f} ms = {np.median(writer_cpu) / np.median(kernel_per_item):.3f} "
          "(target <= 0.10)")
    print(f"speed-up --workers 2 / --workers 1: {w1 / w2:.2f}x (target >= 1.7 on 2 idle cores); {load()}")
    print(f"{len(job_times)} jobs of {min(job_times):.2f}-{max(job_times):.2f} s (decoding + kernels, last round): "
          f"taken in order by 2 workers they cap the speed-up at {in_order_cap(job_times, 2):.2f}x")
    # The rounds above run in one warm process; a command starts cold (imports, the recipe's probes,
    # first touch of the buffers), which a corpus this small does not amortise.
    fresh = subprocess.run([sys.executable, "-c", FRESH_WRITER, str(tmp / "fresh.h5")], capture_output=True, text=True,
                           check=True, env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    print(f"writing process CPU per image in a fresh process, start-up included: {float(fresh.stdout.split()[-1]):.2f} ms")
    from rankgen.corpus import Corpus

    c = Corpus(tmp / "w2.h5")
    raw = sum(int(np.prod(c.ragged_shape("image", i))) for i in range(len(c)))
    timed_run(tmp / "none.h5", 2, compression="none")
    for name in ("w2.h5", "none.h5"):
        corpus = Corpus(tmp / name)
        t = time.perf_counter()
        for i in range(len(corpus)):
            corpus.image(i)
        rate = len(corpus) / (time.perf_counter() - t)
        encoding = corpus.ragged_encoding("image")[0]
        print(f"--compression {encoding:4s}: file / raw pixels = {os.path.getsize(tmp / name) / raw:.3f}"
              f"{' (target <= 0.60)' if encoding == 'png' else ''}; reading {rate:6.0f} images/s in one process")


TREE_RSS = """
import os, subprocess, sys, time
proc = subprocess.Popen(sys.argv[1:])
def tree_rss(root):
    kids, rss = {}, {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    kids.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(pid))
                with open(f"/proc/{pid}/statm") as f:
                    rss[int(pid)] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except OSError:
                pass
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += kids.get(pid, [])
    return total
peak = 0
while proc.poll() is None:
    peak = max(peak, tree_rss(proc.pid))
    time.sleep(0.05)
print(peak)
"""


def peak_memory(tmp: Path) -> None:
    """Peak RSS of the whole process tree (writer + workers), sampled every 50 ms."""
    names = ",".join(n for n in load_recipe("tid2013").names if n not in ("image_denoising", "jpeg2000"))
    print(f"\n## peak RSS of the process tree, 512x384 sources, tid2013 without its two slowest types; {load()}")
    print(f"{'sources':>7} {'--workers 1':>12} {'--workers 2':>12}")
    for n in (6, 24, 48):
        folder = photo_folder(n, tmp / f"mem{n}")
        cells = []
        for workers in (1, 2):
            cmd = [sys.executable, "-m", "rankgen", "distort", "--dataset", "folder", "--root", str(folder),
                   "--distortions", names, "--workers", str(workers), "--quiet", "--overwrite",
                   "-o", str(tmp / f"mem{n}.h5")]
            peak = subprocess.run([sys.executable, "-c", TREE_RSS, *cmd], capture_output=True, text=True, check=True)
            cells.append(f"{int(peak.stdout.split()[-1]) / 2**20:9.0f} MB")
        print(f"{n:7d} {cells[0]:>12} {cells[1]:>12}")
    print(load())


def floor_ratios(repeat: int = 5) -> None:
    """Each type's ms per call beside its floor (benchmarks/floors.py), interleaved, at its middle level."""
    from floors import FLOORS

    img = photo_512x384()
    print(f"\n## kernel / floor, 512x384, median of {repeat} interleaved pairs, load {os.getloadavg()[0]:.1f}")
    for recipe_name, levels in (("tid2013-full", 5), ("kadid10k", 6)):
        recipe = load_recipe(recipe_name)
        for name in recipe.names:
            param = recipe.params(name, levels)[(levels - 1) // 2]
            ours, floor = [], []
            for r in range(repeat):
                # The generator is made outside the timing, as the floors have none: for the 0.04 ms
                # types its ~15 us construction was a third of the figure.
                rng = np.random.default_rng(r)
                t = time.perf_counter()
                distort(img, name, param, rng)
                ours.append(time.perf_counter() - t)
                t = time.perf_counter()
                FLOORS[name](img, param)
                floor.append(time.perf_counter() - t)
            mine, base = np.median(ours) * 1e3, np.median(floor) * 1e3
            print(f"{recipe_name:13s} {name:30s} {mine:8.2f} ms  floor {base:8.2f} ms  {mine / base:5.2f}x")


def encode_beside_kernels() -> None:
    """Make `--workers 1` encode each job's items in a thread while the next job's kernels run: the
    design not taken (docs/benchmarks.md, "Writing"), timed here so its trade-off is a figure."""
    from concurrent.futures import ThreadPoolExecutor

    from rankgen import pipeline
    from rankgen.corpus.writer import encode_rows

    in_order = pipeline._ordered_results

    def overlapped(encoded_work, todo, workers):
        if workers != 1 or pipeline.EXECUTOR.get().kind != "local":
            yield from in_order(encoded_work, todo, workers)
            return
        work, encoders = encoded_work.args

        def encoded(result):
            result.rows = encode_rows(result.rows, encoders)
            return result

        with ThreadPoolExecutor(1) as thread, pipeline._opencv_threads(1):
            previous = None
            for job in todo:
                result = thread.submit(encoded, work(job))
                if previous is not None:
                    yield previous.result()
                previous = result
            if previous is not None:
                yield previous.result()

    pipeline._ordered_results = overlapped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="calls per distortion and level in section 1")
    ap.add_argument("--rounds", type=int, default=2, help="alternating --workers 1 / 2 rounds in section 2")
    ap.add_argument("--only", choices=["calls", "floors", "writing", "memory"], help="run one section")
    ap.add_argument("--system-allocator", action="store_true",
                    help="time the kernels under glibc's default allocator, not the setting runs use")
    ap.add_argument("--encode-beside-kernels", action="store_true",
                    help="--workers 1 encodes in a thread beside the kernels (a design not taken), for section 2")
    args = ap.parse_args()
    if args.encode_beside_kernels:
        encode_beside_kernels()
    print(f"# rankgen distort benchmark, {time.strftime('%Y-%m-%d')}, {os.uname().machine}, "
          f"{len(os.sched_getaffinity(0))} cores, python {sys.version.split()[0]}")
    if not args.system_allocator:
        allocator_as_in_a_run()  # the kernels are timed as a run's workers call them
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "calls"):
            per_call(args.repeat)
        if args.only in (None, "floors"):
            floor_ratios(args.repeat)
        if args.only in (None, "writing"):
            writing(Path(tmp), args.rounds)
        if args.only in (None, "memory"):
            peak_memory(Path(tmp))


if __name__ == "__main__":
    main()

