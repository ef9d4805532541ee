"""Small synthetic corpora written with CorpusWriter, for tests and benchmarks (no rankgen
producers needed). Images are random textures; "distortions" are box blur and additive noise,
whose quality order is certain."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rankgen.corpus import CorpusWriter


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for _ in range(6):
        f = rng.uniform(0.05, 0.6, size=2)
        img += rng.uniform(0.2, 1.0, size=3) * np.sin(f[0] * yy + f[1] * xx + rng.uniform(0, 6.3))[..., None]
    img += (rng.random((h, w, 1)) > 0.97) * 3.0  # sharp specks: detail for blur to remove
    img = (img - img.min()) / (np.ptp(img) + 1e-9)
    return (img * 255).astype(np.uint8)


def box_blur(img: np.ndarray, r: int) -> np.ndarray:
    if r == 0:
        return img
    pad = np.pad(img.astype(np.float64), ((r, r), (r, r), (0, 0)), mode="edge")
    c = pad.cumsum(0).cumsum(1)
    c = np.pad(c, ((1, 0), (1, 0), (0, 0)))
    k = 2 * r + 1
    h, w = img.shape[:2]
    s = c[k : k + h, k : k + w] - c[:h, k : k + w] - c[k : k + h, :w] + c[:h, :w]
    return np.clip(s / (k * k), 0, 255).astype(np.uint8)


def distorted(img: np.ndarray, kind: str, level: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "blur":
        return box_blur(img, level)
    noise = rng.normal(0, 12.0 * level, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _attrs(cmd: str) -> dict:
    return {"command": cmd, "seed": 0, "params": {"synthetic": True}}


def make_distort(path: Path, refs: int = 6, levels: int = 4, size=(56, 72), kinds=("blur", "noise"), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    w = CorpusWriter(path, "distort", columns={"ref": "int64", "distortion": "str", "tid": "int64", "level": "int64",
                                               "param": "float64", "seed": "int64", "crop": "int64"},
                     ragged={"image": ("uint8", 3)}, attrs=_attrs("synthetic distort"), fingerprint="test", overwrite=True)
    groups, n = [], 0
    for r in range(refs):
        h, wd = int(rng.integers(*size)), int(rng.integers(*size))
        ref = texture(rng, h, wd)
        w.append([{"ref": r, "distortion": "reference", "tid": 0, "level": 0, "param": np.nan, "seed": 0, "crop": 0, "image": ref}])
        ref_item = n
        n += 1
        for kind in kinds:
            row = [ref_item]
            for level in range(1, levels):
                w.append([{"ref": r, "distortion": kind, "tid": 1, "level": level, "param": float(level), "seed": 0,
                           "crop": 0, "image": distorted(ref, kind, level, rng)}])
                row.append(n)
                n += 1
            groups.append(row)
    w.finish({"groups": np.array(groups, dtype=np.int64), "ref_id": np.array([f"r{i}" for i in range(refs)]),
              "ref_path": np.array([f"synthetic:{i}" for i in range(refs)]), "distortions": np.array(list(kinds))})
    return Path(path)


def make_annotate(path: Path, refs: int = 6, per_ref: int = 6, annotators: int = 2, size=(56, 72), seed: int = 0) -> Path:
    """Noise levels give the true quality; each annotator sees a disjoint subset with its own bias."""
    rng = np.random.default_rng(seed)
    w = CorpusWriter(path, "annotate", columns={"true_score": "float64", "score": "float64", "annotator": "int64",
                                                "split": "str", "ref": "int64"},
                     ragged={"image": ("uint8", 3)}, attrs=_attrs("synthetic annotate"), fingerprint="test", overwrite=True)
    for r in range(refs):
        ref = texture(rng, int(rng.integers(*size)), int(rng.integers(*size)))
        split = "test" if r >= refs - max(1, refs // 3) else "train"
        for k in range(per_ref):
            true = 1.0 - k / per_ref
            a = int(rng.integers(annotators))
            w.append([{"true_score": true, "score": float(np.clip(true * 0.8 + 0.15 * a, 0, 1)), "annotator": a,
                       "split": split, "ref": r, "image": distorted(ref, "noise", k, rng)}])
    w.finish({})
    return Path(path)


def make_density(path: Path, n: int = 6, size: int = 64, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    w = CorpusWriter(path, "density", columns={"count": "float64", "split": "str"},
                     ragged={"image": ("uint8", 3), "density": ("float32", 2)}, attrs=_attrs("synthetic density"),
                     fingerprint="test", overwrite=True)
    for i in range(n):
        img = np.full((size, size, 3), 40, np.uint8)
        dens = np.zeros((size, size), np.float32)
        for _ in range(int(rng.integers(2, 12))):
            y, x = rng.integers(2, size - 2, size=2)
            img[y - 2 : y + 2, x - 2 : x + 2] = 230
            dens[y, x] += 1.0
        w.append([{"count": float(dens.sum()), "split": "test" if i >= n - 2 else "train", "image": img, "density": dens}])
    w.finish({}, attrs={"stride": 1})
    return Path(path)


def make_crops(path: Path, n_sets: int = 4, k: int = 3, size: int = 32, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    w = CorpusWriter(path, "crops", columns={"set": "int64", "rank": "int64"}, ragged={"image": ("uint8", 3)},
                     attrs=_attrs("synthetic crops"), fingerprint="test", overwrite=True)
    groups, n = [], 0
    for s in range(n_sets):
        big = texture(rng, 96, 96)
        row = []
        for r in range(k):
            side = int(96 * 0.75**r)
            o = (96 - side) // 2
            crop = big[o : o + side, o : o + side][:: max(1, side // size)][:, :: max(1, side // size)][:size, :size]
            w.append([{"set": s, "rank": r, "image": np.ascontiguousarray(crop)}])
            row.append(n)
            n += 1
        groups.append(row)
    w.finish({"groups": np.array(groups, dtype=np.int64)})
    return Path(path)
