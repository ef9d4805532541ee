"""What the benchmarks share: a real photograph at the 512x384 size the issues quote, a folder of them,
and the load average to print beside any figure."""

import os
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image


def photo_512x384() -> np.ndarray:
    img = Image.fromarray(skimage.data.astronaut()).resize((512, 384), Image.BICUBIC)
    return np.ascontiguousarray(np.asarray(img))


def photo_folder(n: int, root: Path) -> Path:
    """n PNG sources of 512x384 with distinct content: shifted copies of the photograph."""
    root.mkdir(parents=True, exist_ok=True)
    base = photo_512x384()
    for i in range(n):
        Image.fromarray(np.roll(base, 37 * i, axis=1)).save(root / f"{i:03d}.png")
    return root


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def allocator_as_in_a_run() -> dict:
    """Put this process under the allocator setting that rankgen's runs use (glibc keeps freed blocks
    for reuse: rankgen.pipeline.reuse_freed_memory) and return an environment that gives a peer's
    interpreter the same setting through glibc's own variables, so both sides allocate alike."""
    from rankgen import pipeline

    pipeline.reuse_freed_memory()
    return dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(pipeline._MMAP_THRESHOLD),
                MALLOC_TRIM_THRESHOLD_=str(pipeline._TRIM_THRESHOLD))
