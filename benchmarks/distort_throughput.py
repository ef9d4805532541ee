"""Distortion speed and corpus throughput; prints figures (copy them into docs/benchmarks.md).

    python benchmarks/distort_throughput.py [--repeat 5]

1. ms per call of every distortion at every level on a 512x384 photograph;
2. corpus throughput (source images/s and corpus images/s) of `generate` with 1 and 2 workers,
   measured in the same run so the ratio is meaningful on a noisy machine;
3. peak memory (max RSS of a fresh process) for 4 and 16 source images: it must stay flat,
   because the pipeline streams (commits every few sources, never holds the corpus).
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
from PIL import Image

from benchmarks_common import photo_512x384
from rankgen.distortions import distort, load_recipe
from rankgen.generate import generate


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


def make_folder(n: int, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    base = photo_512x384()
    for i in range(n):
        # distinct content per file, same size: shifted copies of the photo
        Image.fromarray(np.roll(base, 37 * i, axis=1)).save(root / f"{i:03d}.png")
    return root


def throughput(tmp: Path, n_sources: int) -> None:
    folder = make_folder(n_sources, tmp / "src")
    print(f"\n## corpus throughput: {n_sources} sources of 512x384, recipe tid2013, 5 levels")
    rates = {}
    for workers in (1, 2):
        out = tmp / f"w{workers}.h5"
        t = time.perf_counter()
        s = generate(out, dataset="folder", root=str(folder), workers=workers, progress=False)
        dt = time.perf_counter() - t
        rates[workers] = s.rows / dt
        print(f"workers={workers}: {n_sources / dt:6.2f} sources/s, {s.rows / dt:7.1f} corpus images/s, "
              f"{os.path.getsize(out) / 1e6:.1f} MB")
    print(f"speed-up 2 vs 1 workers: {rates[2] / rates[1]:.2f}x (cores available: {len(os.sched_getaffinity(0))})")


def writer_throughput(tmp: Path, n_images: int = 120) -> None:
    """The single writing process caps corpus throughput whatever --workers is: measure that cap."""
    from rankgen.corpus import CorpusWriter
    from rankgen.distortions import corrupt

    base = photo_512x384()
    names = ["gaussian_noise", "jpeg", "gaussian_blur", "jpeg2000", "contrast_decrease", "block_wise"]
    images = [corrupt(base, names[i % len(names)], 1 + i % 4, seed=i) for i in range(24)]
    print(f"\n## writer alone: {n_images} distorted 512x384 images (HDF5 filter on the pixels)")
    for compression in ("lzf", "gzip", None):
        out = tmp / f"writer-{compression}.h5"
        t = time.perf_counter()
        w = CorpusWriter(out, "distort", columns={"i": "int64"}, ragged={"image": ("uint8", 3)}, attrs={},
                         fingerprint=str(compression), compression=compression, overwrite=True)
        for i in range(n_images):
            w.append([{"i": i, "image": images[i % len(images)]}])
            if i % 8 == 7:
                w.commit()
        w.finish()
        dt = time.perf_counter() - t
        raw = n_images * base.nbytes
        print(f"{str(compression):5s}: {n_images / dt:6.1f} images/s, {raw / dt / 1e6:6.1f} MB/s of pixels, "
              f"file {os.path.getsize(out) / raw:5.1%} of raw")


def peak_memory(tmp: Path) -> None:
    print("\n## peak memory (max RSS of a fresh process, 1 worker)")
    for n in (4, 16):
        folder = make_folder(n, tmp / f"mem{n}")
        code = (
            "import resource; from rankgen.generate import generate; "
            f"generate({str(tmp / f'mem{n}.h5')!r}, dataset='folder', root={str(folder)!r}, workers=1, progress=False); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        kb = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()[-1])
        print(f"{n:3d} sources: {kb / 1024:7.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sources", type=int, default=8)
    args = ap.parse_args()
    print(f"# rankgen distort benchmark, {time.strftime('%Y-%m-%d')}, {os.uname().machine}, "
          f"{len(os.sched_getaffinity(0))} cores, python {sys.version.split()[0]}")
    per_call(args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        throughput(Path(tmp), args.sources)
        writer_throughput(Path(tmp))
        peak_memory(Path(tmp))


if __name__ == "__main__":
    main()


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
                t = time.perf_counter()
                distort(img, name, param, np.random.default_rng(r))
                ours.append(time.perf_counter() - t)
                t = time.perf_counter()
                FLOORS[name](img, param)
                floor.append(time.perf_counter() - t)
            mine, base = np.median(ours) * 1e3, np.median(floor) * 1e3
            print(f"{recipe_name:13s} {name:30s} {mine:8.2f} ms  floor {base:8.2f} ms  {mine / base:5.2f}x")


if __name__ == "__main__":
    floor_ratios()
