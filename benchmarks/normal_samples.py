"""Seeded normal samples for the noise kernels: ms to fill a 512x384x3 float32 field, each source
seeded per call as a kernel is (from the item's generator); prints a table (docs/distortions.md,
kernel version 4, and docs/benchmarks.md).

    PYTHONPATH=. .venv/bin/python benchmarks/normal_samples.py [--rounds 7] [--calls 9]

The sources, timed in alternating rounds, one thread (as in a run's worker), median over rounds of
the median over calls:
- kernel 4 (rankgen.distortions.base.normal): the normal's quantile at a 16-bit raw draw, a table lookup;
- kernel 2: OpenCV's cv2.randn, its generator seeded with 31 bits from the item's generator;
- numpy's float32 ziggurat (Generator.standard_normal(dtype=float32)) under PCG64, SFC64 and Philox;
- numpy's float64 ziggurat under PCG64, cast to float32.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from benchmarks_common import allocator_as_in_a_run, load
from rankgen.distortions.base import normal

SHAPE = (384, 512, 3)


def kernel_2(rng):
    out = np.empty(SHAPE, np.float32)
    cv2.setRNGSeed(int(rng.integers(0, 2**31)))
    cv2.randn(out.reshape(-1, 1), 0.0, 1.0)
    return out


def ziggurat(bit_generator, dtype):
    def draw(rng):
        generator = np.random.Generator(bit_generator(rng.integers(0, 2**63)))
        return generator.standard_normal(SHAPE, dtype=dtype).astype(np.float32, copy=False)
    return draw


SOURCES = {
    "kernel 4: quantile table at 16-bit raw draws (rankgen)": lambda rng: normal(rng, SHAPE, 1.0),
    "kernel 2: cv2.randn, seeded per call": kernel_2,
    "numpy float32 ziggurat, PCG64": ziggurat(np.random.PCG64, np.float32),
    "numpy float32 ziggurat, SFC64": ziggurat(np.random.SFC64, np.float32),
    "numpy float32 ziggurat, Philox": ziggurat(np.random.Philox, np.float32),
    "numpy float64 ziggurat, PCG64, cast to float32": ziggurat(np.random.PCG64, np.float64),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=9)
    args = ap.parse_args()
    allocator_as_in_a_run()
    cv2.setNumThreads(1)
    print(f"# normal samples for a {'x'.join(map(str, SHAPE))} float32 field, {args.rounds} alternating rounds "
          f"of {args.calls} calls; {load()}")
    rounds = {name: [] for name in SOURCES}
    for r in range(args.rounds):
        for name, draw in SOURCES.items():
            times = []
            for c in range(args.calls):
                rng = np.random.default_rng([r, c])  # made outside the timing, as a kernel receives it
                t = time.perf_counter()
                draw(rng)
                times.append(time.perf_counter() - t)
            rounds[name].append(np.median(times))
    base = np.median(rounds["kernel 4: quantile table at 16-bit raw draws (rankgen)"])
    print("| source | ms per field | / kernel 4 |")
    print("|---|---|---|")
    for name, medians in rounds.items():
        ms = np.median(medians)
        print(f"| {name} | {1e3 * ms:.2f} | {ms / base:.2f}x |")
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
