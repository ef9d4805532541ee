"""Unlabeled photographs: scikit-image's samples, any folder, the Waterloo Exploration Database."""

from __future__ import annotations


import numpy as np

from ..errors import RankgenError
from . import SOURCES, SourceItem, file_item, require_dir
from .images import EXTENSIONS, load_rgb

SKIMAGE = "skimage:"

# Colour photographs bundled with scikit-image (no download): natural content for IQA.
SAMPLE_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right")


def _skimage_sample(name: str) -> np.ndarray:
    import skimage.data

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = skimage.data.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    if not hasattr(skimage.data, name):
        raise RankgenError(f"scikit-image has no sample {name!r}")
    return getattr(skimage.data, name)()


def read_photo(path: str) -> tuple[np.ndarray, list[str]]:
    if path.startswith(SKIMAGE):
        img = _skimage_sample(path[len(SKIMAGE):])
        notes = []
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
            notes.append(f"{path}: grayscale replicated to RGB")
        return np.ascontiguousarray(img[..., :3].astype(np.uint8)), notes
    return load_rgb(path)


@SOURCES.register("samples", kind="images", help="scikit-image's bundled colour photographs (no download)")
def samples(root=None, names: tuple[str, ...] = SAMPLE_NAMES) -> list[SourceItem]:
    return [SourceItem(id=name, path=SKIMAGE + name) for name in names]



@SOURCES.register("folder", kind="images", help="any folder of JPEG/PNG/BMP/TIFF/WebP images, searched recursively")
def folder(root=None) -> list[SourceItem]:
    root = require_dir(root, "folder", "~/photos")
    # Not is_file(): a broken or looping symbolic link is listed, so the run reports it instead of
    # silently dropping it; only folders (even one named x.jpg) are left out.
    files = sorted(
        p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and not p.name.startswith(".") and not p.is_dir()
    )
    if not files:
        raise RankgenError(f"no images ({', '.join(EXTENSIONS)}) under {root}")
    return [file_item(p.relative_to(root).as_posix(), p) for p in files]


@SOURCES.register("waterloo", kind="images",
                  help="Waterloo Exploration Database: <root>/pristine_images/00001.bmp ... 04744.bmp")
def waterloo(root=None) -> list[SourceItem]:
    root = require_dir(root, "waterloo", "~/exploration_database_and_code")
    pristine = root / "pristine_images"
    if not pristine.is_dir():
        if root.name == "pristine_images":
            pristine = root
        else:
            raise RankgenError(
                f"{root} does not look like the Waterloo Exploration Database: expected {pristine}/00001.bmp ...; "
                "pass the folder that contains pristine_images/"
            )
    files = sorted(p for p in pristine.iterdir() if p.suffix.lower() == ".bmp")
    if not files:
        raise RankgenError(f"no .bmp files in {pristine}")
    return [file_item(p.stem, p) for p in files]
