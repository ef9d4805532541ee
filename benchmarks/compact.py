"""Compact corpora against materialized ones; prints figures (copy them into docs/benchmarks.md).

    python benchmarks/compact.py [--sources 48] [--workers 2] [--items 300]

For the default corpus (`rankgen distort`: 6 bundled photos, tid2013, 5 levels) and for a folder of
`--sources` 512x384 photos: file size and generation time of `--pixels references` and
`--pixels costly` against the materialized corpus, and the images/s that one DataLoader worker
delivers at patch 224 from each, reading whole groups (the reference and its levels) as the
trainer's group sampler does. Then the projection to Waterloo (4,744 references x 77 items) from the
folder's per-source figures. Runs are interleaved in one process; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import rankgen
from benchmarks_common import load, photo_512x384, photo_folder
from rankgen.corpus import Corpus

WATERLOO_REFERENCES = 4744
PIXELS = ("all", "costly", "references")


class Patches:
    """Items in group order (a reference, then its levels), a random 224 px window of each."""

    def __init__(self, path: Path, items: int):
        self.corpus = Corpus(path)
        order = np.random.default_rng(0).permutation(len(self.corpus.groups))
        self.items = [int(i) for g in self.corpus.groups[order] for i in g if i >= 0][:items]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, k):
        import torch

        image = self.corpus.image(self.items[k])
        rng = np.random.default_rng(k)
        y, x = int(rng.integers(0, image.shape[0] - 223)), int(rng.integers(0, image.shape[1] - 223))
        return torch.from_numpy(np.ascontiguousarray(image[y : y + 224, x : x + 224]))


def loader_rate(path: Path, items: int) -> float:
    from torch.utils.data import DataLoader

    loader = DataLoader(Patches(path, items), batch_size=16, num_workers=1)
    t = time.perf_counter()
    n = sum(len(batch) for batch in loader)
    return n / (time.perf_counter() - t)


def compare(label: str, tmp: Path, workers: int, items: int, **source) -> dict:
    print(f"\n## {label}; {load()}")
    figures = {}
    for pixels in PIXELS:
        out = tmp / f"{label.split()[0]}-{pixels}.h5"
        t = time.perf_counter()
        summary = rankgen.distort(out, pixels=pixels, workers=workers, overwrite=True, progress=False, **source)
        figures[pixels] = {"seconds": time.perf_counter() - t, "bytes": os.path.getsize(out), "path": out,
                           "sources": summary.sources}
    full = figures["all"]
    for pixels in PIXELS:
        f = figures[pixels]
        f["rate"] = loader_rate(f["path"], items)
        print(f"--pixels {pixels:10s}: {f['bytes'] / 1e6:8.1f} MB ({f['bytes'] / full['bytes']:.4f} of materialized, "
              f"1/{full['bytes'] / f['bytes']:.0f}), generated in {f['seconds']:6.1f} s "
              f"({f['seconds'] / full['seconds']:.2f} of materialized), one DataLoader worker at patch 224: "
              f"{f['rate']:6.1f} images/s")
    print(load())
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=48)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--items", type=int, default=300, help="items read per DataLoader measurement")
    args = ap.parse_args()
    print(f"# rankgen compact corpora, {time.strftime('%Y-%m-%d')}, {os.uname().machine}, "
          f"{len(os.sched_getaffinity(0))} cores, --workers {args.workers}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        compare("default corpus (6 bundled photos, tid2013, 5 levels)", tmp, args.workers, args.items)
        folder = photo_folder(args.sources, tmp / "photos")
        figures = compare(f"folder of {args.sources} sources of 512x384, tid2013, 5 levels", tmp, args.workers,
                          args.items, dataset="folder", root=str(folder))
    print(f"\n## Waterloo projection: {WATERLOO_REFERENCES} references x 77 items, from the folder's figures "
          f"(512x384 sources; Waterloo's are of similar size), {args.workers} workers")
    for pixels in PIXELS:
        f = figures[pixels]
        scale = WATERLOO_REFERENCES / f["sources"]
        print(f"--pixels {pixels:10s}: {f['bytes'] * scale / 1e9:7.1f} GB, {f['seconds'] * scale / 3600:6.1f} h")


if __name__ == "__main__":
    main()
