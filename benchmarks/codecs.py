"""Lossless codecs for a corpus's pixels: encode and decode time, size, and what the encoding alone
costs a `--workers 1` run; prints a table (docs/benchmarks.md, "Which lossless codec").

    python3 -m venv /work/venvs/codecs && /work/venvs/codecs/bin/pip install imagecodecs fpng opencv-python-headless==5.0.0.93
    PYTHONPATH=. .venv/bin/python benchmarks/codecs.py --peer /work/venvs/codecs/bin/python

The items are those of a real corpus: `rankgen distort` on the first 2 bundled photos (154 items
of the tid2013 recipe), with the time of every distortion call recorded, so the kernel time per
item is measured on the same items. The codecs are then timed in rounds that alternate between
this interpreter (rankgen's own PNG encoder and OpenCV's libpng, its encoder until 2026-12-06) and
the peer's (imagecodecs is not a dependency of rankgen, so it lives in a benchmark-only venv), one
thread each, medians over rounds; each output is checked to decode to the same pixels. "wall / kernel floor" is 1 + encode / kernel per item: the ratio a `--workers 1`
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
from benchmarks_common import allocator_as_in_a_run, load
from distort_throughput import kernel_instrumented_run
from rankgen.corpus import Corpus

# One round of every codec this interpreter has, on the items in argv[1]: rankgen's own encoder and
# OpenCV's PNG where rankgen imports (the project's venv), imagecodecs' where it is installed (its venv).
ROUND = r"""
import json, sys, time
import cv2
import numpy as np
cv2.setNumThreads(1)  # as in a --workers 1 run
images = list(np.load(sys.argv[1]).values())
decode = lambda b, shape: cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_UNCHANGED)
codecs = {}
stores = {}  # name -> what turns the encoded bytes into what the decoder reads (untimed)
try:
    from rankgen.corpus import codec
except ImportError:
    pass
else:
    def level(n):
        def encode(a):
            codec.PNG_DEFLATE_LEVEL = n
            return codec.png_bytes(a)
        return encode
    own = lambda b, shape: codec.decode(np.frombuffer(b, np.uint8), shape, np.uint8, "png")
    codecs.update({
        "rankgen PNG (Up filter, ISA-L level 1; the default), read by rankgen": (level(1), own),
        "rankgen PNG, read by OpenCV's libpng (as any other reader)": (level(1), decode),
        "rankgen PNG at ISA-L level 2": (level(2), own),
        "rankgen PNG at ISA-L level 3": (level(3), own),
        "OpenCV PNG (level 1, Paeth, RLE; rankgen before 2026-12-06)": (lambda a: cv2.imencode(".png", a, [
            cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
            cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH])[1], decode),
        "OpenCV PNG level 0 (stored, no deflate)": (lambda a: cv2.imencode(".png", a, [cv2.IMWRITE_PNG_COMPRESSION, 0])[1],
                                                    decode),
    })
    # Issue #12's other design: HDF5 chunks compressed in the workers with the deflate filter that
    # every HDF5 reads. A worker deflates an item's raw bytes; the writer stores them as the one chunk
    # of a dataset of the item's shape (write_direct_chunk, untimed: the writer's part); the reader
    # is HDF5 itself. Ragged items need a dataset each (or chunk-aligned padding) for this to work.
    import h5py
    from isal import isal_zlib
    direct = h5py.File("direct.h5", "w", driver="core", backing_store=False)

    def into_chunks(bufs):
        out = []
        for b, a in zip(bufs, images):
            ds = direct.create_dataset(str(len(direct)), shape=a.shape, dtype=np.uint8, chunks=a.shape, compression="gzip")
            ds.id.write_direct_chunk((0,) * a.ndim, b)
            out.append(ds)
        return out

    name = "HDF5's deflate filter, an item per chunk (write_direct_chunk; ISA-L level 1 in the worker), read by h5py"
    codecs[name] = (lambda a: isal_zlib.compress(a.tobytes(), 1), lambda ds, shape: ds[...])
    stores[name] = into_chunks
try:
    import imagecodecs as ic
except ImportError:
    pass
else:
    codecs.update({
        "QOI": (ic.qoi_encode, lambda b, shape: ic.qoi_decode(b)),
        "JPEG XL lossless, effort 1": (lambda a: ic.jpegxl_encode(a, lossless=True, effort=1), lambda b, shape: ic.jpegxl_decode(b)),
        "JPEG XL lossless, effort 2": (lambda a: ic.jpegxl_encode(a, lossless=True, effort=2), lambda b, shape: ic.jpegxl_decode(b)),
        "WebP lossless, method 0": (lambda a: ic.webp_encode(a, lossless=True, method=0, level=0),
                                    lambda b, shape: ic.webp_decode(b)),
    })
try:
    import fpng
except ImportError:
    pass
else:
    codecs["fpng (richgel999's fast PNG writer, Python package fpng)"] = (fpng.from_ndarray, decode)
out = {}
# Untimed, so the heap already holds a round's encoded bytes: the first codec timed paid for growing it.
[next(iter(codecs.values()))[0](a) for a in images]
for name, (enc, dec) in codecs.items():
    t = time.perf_counter()
    bufs = [enc(a) for a in images]
    t2 = time.perf_counter()
    decoding = 0.0
    for a, b in zip(images, stores[name](bufs) if name in stores else bufs):
        t3 = time.perf_counter()
        back = dec(b, a.shape)  # one at a time, as a reader does: keeping them all put the first row behind
        decoding += time.perf_counter() - t3
        # OpenCV's PNG holds BGR and rankgen's RGB: compare the bytes round trip, channel order aside.
        assert np.array_equal(a, back.reshape(a.shape)) or np.array_equal(a, back[..., ::-1].reshape(a.shape)), name
    out[name] = {"encode": (t2 - t) / len(images), "decode": decoding / len(images),
                 "size": sum(len(b) for b in bufs) / sum(a.nbytes for a in images)}
    del bufs, back  # before the next codec encodes, or it would grow the heap and pay for it
print(json.dumps(out))
"""


def one_round(python: str, items: Path, env: dict) -> dict:
    out = subprocess.run([python, "-c", ROUND, str(items)], capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"{python} failed:\n{out.stderr}")
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer", default="/work/venvs/codecs/bin/python", help="Python with imagecodecs and numpy")
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
        env = allocator_as_in_a_run()  # both interpreters allocate as a run's workers do
        here = dict(env, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        rounds = [[one_round(sys.executable, tmp / "items.npz", here), one_round(args.peer, tmp / "items.npz", env)]
                  for _ in range(args.rounds)]  # alternating: this interpreter, then the peer's
        names = [name for side in rounds[0] for name in side]
        figures = {name: {key: float(np.median([side[name][key] for pair in rounds for side in pair if name in side]))
                          for key in ("encode", "decode", "size")} for name in names}
    print("| codec | encode ms/item | decode ms/item | file / raw | wall / kernel floor, `--workers 1` |")
    print("|---|---|---|---|---|")
    for name, f in figures.items():
        print(f"| {name} | {1e3 * f['encode']:.2f} | {1e3 * f['decode']:.2f} | {f['size']:.3f} | "
              f"{1 + f['encode'] / kernel:.2f} |")
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
