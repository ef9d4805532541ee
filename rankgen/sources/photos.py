"""Unlabeled photographs: scikit-image's samples, any folder, the Waterloo Exploration Database."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import RankgenError
from . import SOURCES, UNUSABLE, SourceItem, file_item, require_dir
from .images import EXTENSIONS, load_rgb, printable

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
    files, unreadable = _walk(root)
    if not files and not unreadable:
        raise RankgenError(f"no images ({', '.join(EXTENSIONS)}) under {root}")
    # A folder that cannot be listed is a source too: it is reported among the skipped ones rather
    # than leaving its images out without a word.
    listed = [(p, file_item(p.relative_to(root).as_posix(), p)) for p in files]
    listed += [(d, SourceItem(id=printable(d.relative_to(root).as_posix()) + "/", path=printable(d), meta={UNUSABLE: (
        f"{printable(d)}: folder cannot be read ({why}); its images are left out: make it readable (chmod +rx) "
        "or remove it from the input")})) for d, why in unreadable]
    return [item for _, item in sorted(listed, key=lambda e: e[0])]


def _walk(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Image files under root and the folders that could not be listed, with the reason.

    Symbolic links to folders are not followed, so a link back to root cannot loop. Every name that
    is not a folder (even one named x.jpg) is listed, broken and looping links included, so the run
    reports them instead of dropping them silently.
    """
    unreadable: list[tuple[Path, str]] = []

    def refused(exc: OSError) -> None:
        unreadable.append((Path(exc.filename), exc.strerror or str(exc)))

    files = []
    for folder, _, names in os.walk(root, onerror=refused):
        files += [Path(folder, n) for n in names if Path(n).suffix.lower() in EXTENSIONS and not n.startswith(".")]
    return files, unreadable


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
