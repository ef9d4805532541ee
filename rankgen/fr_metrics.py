"""True scores for a `distort` corpus from a full-reference measure against its own references.

`rankgen annotate --from corpus.h5 --score psnr|ssim|level`: every item is compared with the
level-0 item of its (reference, crop), so the reference itself gets the best score. Higher = better.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from .corpus import Corpus, open_corpus
from .distortions.metrics import psnr as _psnr
from .errors import RankgenError
from .pipeline import ordered_map

SCORES = ("ssim", "psnr", "level")
# Identical images have infinite PSNR; 100 dB is beyond any 8-bit distortion worth ranking
# (one grey level of error on every pixel is 48 dB), so the cap only ties near-identical images.
PSNR_CAP_DB = 100.0


def psnr(reference: np.ndarray, distorted: np.ndarray) -> float:
    return min(_psnr(reference, distorted), PSNR_CAP_DB)


def ssim(reference: np.ndarray, distorted: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(reference, distorted, channel_axis=2, data_range=255))


MEASURES = {"psnr": psnr, "ssim": ssim}




@dataclass(frozen=True)
class _Group:
    path: str
    reference: int
    members: tuple[int, ...]
    score: str


def _score_group(group: _Group) -> list[float]:
    measure = MEASURES[group.score]
    corpus = open_corpus(group.path)
    ref = corpus.image(group.reference)
    out = []
    for i in group.members:
        img = corpus.image(i)
        if img.shape != ref.shape:
            raise RankgenError(f"{group.path}: item {i} is {img.shape}, its reference (item {group.reference}) "
                               f"is {ref.shape}; full-reference scores need aligned images (use --score level)")
        out.append(measure(ref, img))
    return out


def score_corpus(corpus: Corpus, score: str, *, workers: int = 1, progress: bool = True) -> np.ndarray:
    """One true score per item of a distort corpus, higher = better."""
    if score not in SCORES:
        raise RankgenError(f"--score must be one of {', '.join(SCORES)}, got {score!r}")
    level = corpus.column("level")
    if score == "level":
        return -level.astype(np.float64)
    ref = corpus.column("ref")
    crop = corpus.column("crop") if "crop" in corpus.columns() else np.zeros_like(ref)
    members: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, key in enumerate(zip(ref.tolist(), crop.tolist())):
        members[key].append(i)
    groups = []
    for key, items in members.items():
        base = [i for i in items if level[i] == 0]
        if not base:
            raise RankgenError(f"{corpus.path}: item {items[0]} has no level-0 reference item to compare with "
                               "(reference and crop); use --score level")
        groups.append(_Group(str(corpus.path), base[0], tuple(items), score))
    out = np.empty(len(level), dtype=np.float64)
    results = ordered_map(_score_group, groups, workers)
    try:
        with tqdm(total=len(level), desc=f"score {score}", unit="img", disable=not progress, dynamic_ncols=True) as bar:
            for group, values in zip(groups, results):
                out[list(group.members)] = values
                bar.update(len(values))
    finally:
        open_corpus.cache_clear()  # a handle kept open would read an old file once this path is rewritten
    return out
