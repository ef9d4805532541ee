"""`rankgen crops` throughput and where the time goes; prints figures (copy them into docs/crops.md).

    python benchmarks/crops_throughput.py [--images 16] [--per-image 10] [--k 5] [--size 224]

1. cost split per crop set, one process: decode (JPEG -> RGB), crop + resize (geometry and k
   cv2.resize calls), encode (the k patches as PNG: a worker's part) and write (append + commit
   of the encoded bytes to HDF5: the writing process's part);
2. crop sets per second, and per worker, of the whole command with 1 and 2 workers;
3. peak memory (max RSS of a fresh process, workers included) for few and 4x more images: it
   must stay flat, because run_jobs streams (commits every few sources, never holds the corpus).
The sources are synthetic crowd scenes (512x384) saved as JPEG, so decoding is real decoding.
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

from benchmarks_common import allocator_as_in_a_run, load

from rankgen.crowd import crops as geometry
from rankgen.jobs.crops import COLUMNS as CROP_COLUMNS, RAGGED as CROP_RAGGED
from rankgen.jobs.crops import crops as generate_crops
from rankgen.corpus import CorpusWriter
from rankgen.corpus.writer import encode_rows
from rankgen.seeding import item_seed
from rankgen.sources.crowd import list_items, read_crowd


def make_folder(n: int, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for item in list_items("synthetic", None, None, n_images=n)[0]:
        image, _, _ = read_crowd(item)
        Image.fromarray(image).save(root / f"{item.id.rsplit('/', 1)[-1]}.jpg", quality=92)
    return root


def cost_split(folder: Path, tmp: Path, per_image: int, k: int, size: int) -> None:
    items, _ = list_items("folder", str(folder), None)
    t_decode = t_crop = t_encode = t_write = 0.0
    sets = 0
    writer = CorpusWriter(tmp / "split.h5", "crops", columns=CROP_COLUMNS, ragged=CROP_RAGGED,
                          attrs={}, fingerprint="bench", overwrite=True)
    for index, item in enumerate(items):
        t = time.perf_counter()
        image, _, _ = read_crowd(item)
        t_decode += time.perf_counter() - t
        h, w = image.shape[:2]
        t = time.perf_counter()
        rows = []
        for j in range(per_image):
            seed = item_seed(0, item.id, j)
            cs = geometry.crop_set(w, h, k, 0.75, 8.0, np.random.default_rng(seed))
            for rank, (box, ibox) in enumerate(zip(cs.boxes, cs.iboxes)):
                row = {"set": j, "rank": rank, "source": index, "seed": seed, "anchor_x": cs.anchor[0],
                       "anchor_y": cs.anchor[1], "image": geometry.cut(image, ibox, size)}
                row.update(zip(("box_x0", "box_y0", "box_x1", "box_y1"), box.tolist()))
                row.update(zip(("ibox_x0", "ibox_y0", "ibox_x1", "ibox_y1"), ibox.tolist()))
                rows.append(row)
        t_crop += time.perf_counter() - t
        t = time.perf_counter()
        rows = encode_rows(rows, writer.encoders())
        t_encode += time.perf_counter() - t
        t = time.perf_counter()
        writer.append(rows)
        writer.commit()
        t_write += time.perf_counter() - t
        sets += per_image
    writer.close()
    total = t_decode + t_crop + t_encode + t_write
    print(f"## cost split, 1 process: {len(items)} JPEGs of 512x384, {per_image} sets/image, k={k}, size={size}")
    for name, t in (("decode", t_decode), ("crop+resize", t_crop), ("encode", t_encode), ("write", t_write)):
        print(f"{name:12s} {t / sets * 1e3:7.2f} ms per crop set  {100 * t / total:5.1f} %")
    print(f"{'total':12s} {total / sets * 1e3:7.2f} ms per crop set  = {sets / total:6.1f} crop sets/s")


def throughput(folder: Path, tmp: Path, per_image: int, k: int, size: int) -> None:
    print(f"\n## whole command (rankgen crops --dataset folder); {load()}")
    for workers in (1, 2):
        out = tmp / f"w{workers}.h5"
        t = time.perf_counter()
        s = generate_crops(out, dataset="folder", root=str(folder), k=k, size=size, per_image=per_image,
                           workers=workers, overwrite=True, progress=False)
        dt = time.perf_counter() - t
        n_sets = s.rows // k
        print(f"workers={workers}: {n_sets / dt:7.1f} crop sets/s, {n_sets / dt / workers:7.1f} per worker, "
              f"{os.path.getsize(out) / 1e6:.1f} MB")
    print(load())


def peak_memory(tmp: Path, n_small: int, per_image: int, k: int, size: int) -> None:
    print("\n## peak memory (max RSS of a fresh process and of its largest worker, 2 workers)")
    for n in (n_small, 4 * n_small):
        folder = make_folder(n, tmp / f"mem{n}")
        code = (
            "import resource; from rankgen.jobs.crops import crops as generate_crops; "
            f"generate_crops({str(tmp / f'mem{n}.h5')!r}, dataset='folder', root={str(folder)!r}, k={k}, size={size}, "
            f"per_image={per_image}, workers=2, progress=False); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
        main_kb, child_kb = int(out[-2]), int(out[-1])
        print(f"{n:4d} images: main {main_kb / 1024:7.1f} MB, worker {child_kb / 1024:7.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--per-image", type=int, default=10)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    allocator_as_in_a_run()  # the cost split runs here, in the allocator setting a run's processes have
    print(f"# rankgen crops benchmark, {time.strftime('%Y-%m-%d')}, {os.uname().machine}, "
          f"{len(os.sched_getaffinity(0))} cores, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = make_folder(args.images, tmp / "src")
        cost_split(folder, tmp, args.per_image, args.k, args.size)
        throughput(folder, tmp, args.per_image, args.k, args.size)
        peak_memory(tmp, max(4, args.images // 2), args.per_image, args.k, args.size)


if __name__ == "__main__":
    main()
