"""Crowd images with head points: ShanghaiTech A/B, UCF_CC_50, UCF-QNRF, and an embedded synthetic set.

Every source lists items cheaply; `read_crowd(item)` decodes the image and its points in a worker.
Points are (x, y) floats in the pixel convention of rankgen.crowd.crops. Points outside the image are
dropped with a note that says how many, so a count always matches the points kept.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np

from ..errors import BadImage, RankgenError
from ..seeding import rng_for
from . import SOURCES, SourceItem, file_item, read_image, require_dir
from .images import EXTENSIONS

SYNTHETIC = "synthetic:"
SPLITS = ("train", "test")


def _natural(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]



def _split(split, dataset: str, allowed=SPLITS) -> str:
    split = split or allowed[0]
    if split not in allowed:
        raise RankgenError(f"--dataset {dataset} has splits {', '.join(allowed)}; got --split {split}")
    return split


def _images(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file()), key=_natural)


# -- .mat annotations ------------------------------------------------------------------------------
def _find_points(obj, depth: int = 0):
    """The first (N, 2) numeric array inside MATLAB cells/structs (ShanghaiTech nests the points as
    image_info{1}.location, which scipy returns as image_info[0,0][0,0][0]), or None."""
    if depth > 8:
        return None
    if isinstance(obj, np.void) or (isinstance(obj, np.ndarray) and obj.dtype.names):
        names = obj.dtype.names
        order = sorted(names, key=lambda n: n != "location")
        for name in order:
            found = _find_points(obj[name], depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        for element in obj.flat:
            found = _find_points(element, depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(obj, np.ndarray) and obj.dtype.kind in "fiu":
        if obj.ndim == 2 and obj.shape[1] == 2:
            return obj.astype(np.float64)
        if obj.size == 0:
            return np.zeros((0, 2))
    return None


def load_points(mat_path: str | Path, key: str) -> np.ndarray:
    """(N, 2) float64 head points (x, y) stored under `key` in a .mat file; BadImage names the file."""
    import scipy.io

    mat_path = Path(mat_path)
    if not mat_path.is_file():
        raise BadImage(f"{mat_path}: annotation file missing; the dataset is incomplete, re-download it")
    try:
        mat = scipy.io.loadmat(mat_path)
    except NotImplementedError:
        mat = _load_v73(mat_path, key)
    except Exception as exc:  # noqa: BLE001  scipy raises whatever a damaged header trips on (IndexError, zlib.error, ...)
        raise BadImage(f"{mat_path}: not a readable .mat file ({type(exc).__name__}: {exc}); re-download it") from None
    if key not in mat:
        keys = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise BadImage(f"{mat_path}: no {key!r} in this .mat file (it has: {keys}); is --dataset right?")
    points = _find_points(mat[key])
    if points is None:
        raise BadImage(f"{mat_path}: {key!r} holds no N x 2 array of (x, y) head points")
    return points


def _load_v73(mat_path: Path, key: str) -> dict:
    """MATLAB 7.3 files are HDF5 and store arrays transposed."""
    import h5py

    try:
        with h5py.File(mat_path, "r") as f:
            if key not in f or not isinstance(f[key], h5py.Dataset) or f[key].dtype.kind not in "fiu":
                return {k: None for k in f}
            return {key: np.asarray(f[key][...]).T}
    except OSError as exc:
        raise BadImage(f"{mat_path}: not a readable .mat file ({exc}); re-download it") from None


# -- published datasets ----------------------------------------------------------------------------
def _shanghaitech(root, split, part: str) -> list[SourceItem]:
    dataset = f"shanghaitech-{part.lower()}"
    root = require_dir(root, dataset, "~/ShanghaiTech")
    split = _split(split, dataset)
    candidates = [root / f"part_{part}", root / f"part_{part}_final", root]
    base = next((c for c in candidates if (c / f"{split}_data" / "images").is_dir()), None)
    if base is None:
        raise RankgenError(
            f"{root} does not look like ShanghaiTech: expected {root}/part_{part}/{split}_data/images/IMG_1.jpg "
            f"and .../{split}_data/ground-truth/GT_IMG_1.mat"
        )
    folder = base / f"{split}_data"
    return [
        file_item(p.relative_to(root).as_posix(), p,
                  ann=str(folder / "ground-truth" / f"GT_{p.stem}.mat"), key="image_info", split=split)
        for p in _images(folder / "images")
    ]


@SOURCES.register("shanghaitech-a", kind="crowd",
                  help="ShanghaiTech Part A: <root>/part_A/{train,test}_data/images/IMG_1.jpg + ground-truth/GT_IMG_1.mat")
def shanghaitech_a(root=None, split=None) -> list[SourceItem]:
    return _shanghaitech(root, split, "A")


@SOURCES.register("shanghaitech-b", kind="crowd",
                  help="ShanghaiTech Part B: <root>/part_B/{train,test}_data/images/IMG_1.jpg + ground-truth/GT_IMG_1.mat")
def shanghaitech_b(root=None, split=None) -> list[SourceItem]:
    return _shanghaitech(root, split, "B")


@SOURCES.register("ucf-cc-50", kind="crowd", help="UCF_CC_50: <root>/1.jpg + 1_ann.mat (annPoints); one split, 'all'")
def ucf_cc_50(root=None, split=None) -> list[SourceItem]:
    root = require_dir(root, "ucf-cc-50", "~/UCF_CC_50")
    split = _split(split, "ucf-cc-50", ("all",))
    files = _images(root)
    if not files:
        raise RankgenError(f"no images under {root}; expected {root}/1.jpg and {root}/1_ann.mat")
    return [file_item(p.name, p, ann=str(root / f"{p.stem}_ann.mat"), key="annPoints", split=split) for p in files]


@SOURCES.register("ucf-qnrf", kind="crowd",
                  help="UCF-QNRF: <root>/Train/img_0001.jpg + img_0001_ann.mat (annPoints); --split train|test")
def ucf_qnrf(root=None, split=None) -> list[SourceItem]:
    root = require_dir(root, "ucf-qnrf", "~/UCF-QNRF_ECCV18")
    split = _split(split, "ucf-qnrf")
    folder = root / split.capitalize()
    if not folder.is_dir():
        raise RankgenError(f"{root} does not look like UCF-QNRF: expected {folder}/img_0001.jpg and img_0001_ann.mat")
    return [file_item(f"{folder.name}/{p.name}", p, ann=str(folder / f"{p.stem}_ann.mat"), key="annPoints", split=split)
            for p in _images(folder)]


# -- embedded synthetic crowds ---------------------------------------------------------------------
@SOURCES.register("synthetic", kind="crowd",
                  help="embedded synthetic crowds with every head point recorded (no download); --n-images, --split")
def synthetic(root=None, split=None, n_images: int = 24, height: int = 384, width: int = 512, seed: int = 0) -> list[SourceItem]:
    split = _split(split, "synthetic")
    if n_images < 1:
        raise RankgenError(f"--n-images must be >= 1, got {n_images}")
    if min(height, width) < 64:
        raise RankgenError(f"synthetic images must be at least 64 px per side, got {width}x{height}")
    return [
        SourceItem(id=f"synthetic/{split}/{i:05d}", path=f"{SYNTHETIC}{split}/{i}",
                   meta={"split": split, "index": i, "height": height, "width": width, "seed": seed})
        for i in range(n_images)
    ]


def list_items(dataset: str, root=None, split=None, **options) -> tuple[list[SourceItem], str]:
    """(items, source kind) of any registered source, passing only the options it accepts."""
    entry = SOURCES.entry(dataset)
    accepted = inspect.signature(entry.obj).parameters
    if split is not None and "split" not in accepted:
        raise RankgenError(f"--dataset {dataset} has no splits; drop --split {split}")
    kwargs = {k: v for k, v in options.items() if k in accepted and v is not None}
    if "split" in accepted:
        kwargs["split"] = split
    items = entry.obj(root, **kwargs)
    if not items:
        raise RankgenError(f"--dataset {dataset} found no images")
    return items, entry.info.get("kind", "images")


def read_crowd(item: SourceItem) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """(RGB uint8 image, (N, 2) head points inside the image or None if unlabeled, notes)."""
    from ..crowd.density import clean_points
    from ..crowd.synthetic import render_scene

    if item.path.startswith(SYNTHETIC):
        m = item.meta
        rng = rng_for(m["seed"], "synthetic", m["split"], m["index"], m["height"], m["width"])
        image, points = render_scene(rng, m["height"], m["width"])
        return image, points, []
    image, notes = read_image(item)
    if "ann" not in item.meta:
        return image, None, notes
    points = load_points(item.meta["ann"], item.meta["key"])
    h, w = image.shape[:2]
    points, dropped = clean_points(points, w, h)
    if dropped:
        notes.append(f"{item.meta['ann']}: {dropped} head point(s) outside the {w}x{h} image dropped")
    return image, points, notes
