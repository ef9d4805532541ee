"""Lossless codecs for a corpus's pixels: encode and decode time, size, and what the encoding alone
costs a `--workers 1` run; prints a table (docs/benchmarks.md, "Which lossless codec").

    python3 -m venv /work/venvs/codecs && /work/venvs/codecs/bin/pip install imagecodecs opencv-python-headless
    PYTHONPATH=. .venv/bin/python benchmarks/codecs.py --peer /work/venvs/codecs/bin/python

The items are those of a real corpus: `rankgen distort` on the first 2 bundled photos (154 items
of the tid2013 recipe), with the time of every distortion call recorded, so the kernel time per
item is measured on the same items. Every codec is then timed in one peer process (imagecodecs
is not a dependency of rankgen, so it lives in a benchmark-only venv), in alternating rounds,
including rankgen's own PNG settings as the in-run baseline; each output is checked to decode to
the same bytes. "wall / kernel floor" is 1 + encode / kernel per item: the ratio a `--workers 1`
run could reach if encoding were its only cost beyond the kernels (issue #12's target is 1.15).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import rankgen
from benchmarks_common import load
from distort_throughput import kernel_instrumented_run
from rankgen.corpus import Corpus
from rankgen.corpus.codec import PNG_PARAMS

PEER = r"""
import json, sys, time
import cv2
import numpy as np
images = list(np.load(sys.argv[1]).values())
rounds = int(sys.argv[2])
png_params = json.loads(sys.argv[3])
codecs = {"rankgen PNG (OpenCV, level 1, Paeth, RLE)":
              (lambda a: cv2.imencode(".png", a, png_params)[1], lambda b: cv2.imdecode(b, cv2.IMREAD_UNCHANGED)),
          "PNG level 0 (stored, no deflate)":
              (lambda a: cv2.imencode(".png", a, [cv2.IMWRITE_PNG_COMPRESSION, 0])[1],
               lambda b: cv2.imdecode(b, cv2.IMREAD_UNCHANGED))}
try:
    import imagecodecs as ic
    codecs.update({
        "QOI": (ic.qoi_encode, ic.qoi_decode),
        "JPEG XL lossless, effort 1": (lambda a: ic.jpegxl_encode(a, lossless=True, effort=1), ic.jpegxl_decode),
        "JPEG XL lossless, effort 2": (lambda a: ic.jpegxl_encode(a, lossless=True, effort=2), ic.jpegxl_decode),
        "WebP lossless, method 0": (lambda a: ic.webp_encode(a, lossless=True, method=0, level=0), ic.webp_decode),
    })
except ImportError:
    print("imagecodecs is not installed in this interpreter: only the PNG rows", file=sys.stderr)
times = {name: ([], []) for name in codecs}
sizes = {}
for _ in range(rounds):
    for name, (enc, dec) in codecs.items():
        t = time.perf_counter()
        bufs = [enc(a) for a in images]
        t2 = time.perf_counter()
        back = [dec(b) for b in bufs]
        t3 = time.perf_counter()
        assert all(np.array_equal(a, b.reshape(a.shape)) for a, b in zip(images, back)), name
        times[name][0].append((t2 - t) / len(images))
        times[name][1].append((t3 - t2) / len(images))
        sizes[name] = sum(len(b) for b in bufs) / sum(a.nbytes for a in images)
print(json.dumps({n: {"encode": float(np.median(e)), "decode": float(np.median(d)), "size": sizes[n]}
                  for n, (e, d) in times.items()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer", default=sys.executable, help="Python with opencv and, optionally, imagecodecs.")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wall, kernels, items = kernel_instrumented_run(tmp / "c.h5", limit=2, compression="none")
        corpus = Corpus(tmp / "c.h5")
        images = {f"i{i}": corpus.image(i) for i in range(len(corpus))}
        np.savez(tmp / "items.npz", **images)
        kernel = kernels / items
        print(f"## lossless codecs on {items} items of `rankgen distort --limit 2` (tid2013, 5 levels); "
              f"kernel time {1e3 * kernel:.2f} ms per item; {load()}")
        out = subprocess.run([args.peer, "-c", PEER, str(tmp / "items.npz"), str(args.rounds),
                              json.dumps([int(p) for p in PNG_PARAMS])], capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"the peer failed:\n{out.stderr}")
        if out.stderr:
            print(out.stderr.strip())
        figures = json.loads(out.stdout)
    print("| codec | encode ms/item | decode ms/item | file / raw | wall / kernel floor, `--workers 1` |")
    print("|---|---|---|---|---|")
    for name, f in figures.items():
        print(f"| {name} | {1e3 * f['encode']:.2f} | {1e3 * f['decode']:.2f} | {f['size']:.3f} | "
              f"{1 + f['encode'] / kernel:.2f} |")
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
