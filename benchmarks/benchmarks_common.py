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
