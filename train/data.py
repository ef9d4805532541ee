"""torch Datasets over rankgen corpora, the whole-group batch sampler, and sampling of sub-images.

Items are addressed by keys `(item, seed)`: the seed fixes the crop position (and rotation) of a
sample, so every member of a ranked group is cut at the same place and the pairs differ only by
distortion, and a run is reproducible whatever the number of loader workers.

IQA samples are random `patch` x `patch` sub-images, never rescaled (rescaling would blur away the
distortion being ranked). An image smaller than the patch is reflect-padded (default) or resized
up (`data.small_images: resize`).
"""

from __future__ import annotations

import math
from collections import OrderedDict

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from rankgen.corpus import Corpus
from rankgen.errors import RankgenError
from rankgen.seeding import item_seed
from rankgen.sources import scene_of

from .errors import TrainError

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

RANKED_KINDS = ("distort", "crops")
LABELED_KINDS = {"iqa": ("annotate",), "dcr": ("annotate",), "counting": ("density",)}


def open_corpus(path, kinds: tuple[str, ...], role: str) -> Corpus:
    """Open with the reader's own checks; name the recipe field so the user knows what to fix."""
    if not path:
        raise TrainError(f"data.{role} is not set; give a corpus path with --set data.{role}=FILE.h5")
    try:
        corpus = Corpus(path, kind=kinds)
    except RankgenError as exc:
        hint = ""
        if not Path(path).exists() and not Path(str(path) + ".partial").exists():
            hint = (f"; make it with rankgen (each recipe's header shows the command) or pass "
                    f"--set data.{role}=FILE.h5")
        raise TrainError(f"data.{role}: {exc}{hint}") from None
    # Validation opened the file in this (parent) process; close it so no handle crosses a fork.
    corpus.close()
    return corpus


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> normalised float CxHxW."""
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255)
    return (t - MEAN) / STD


def fit_small(img: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Make both sides >= size: reflect-pad (keeps pixels as they are) or resize up."""
    h, w = img.shape[:2]
    if h >= size and w >= size:
        return img
    if mode == "resize":
        s = size / min(h, w)
        t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
        t = F.interpolate(t, size=(max(size, round(h * s)), max(size, round(w * s))), mode="bilinear", align_corners=False)
        return t[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
    ph, pw = max(0, size - h), max(0, size - w)
    pad_mode = "reflect" if ph < h and pw < w else "symmetric"
    return np.pad(img, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode=pad_mode)


def rotate(t: torch.Tensor, degrees: float) -> torch.Tensor:
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=t.dtype)
    grid = F.affine_grid(theta[None], [1, *t.shape], align_corners=False)
    return F.grid_sample(t[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False)[0]


class ImageCache:
    """Decoded images of this process, most recently used kept up to a byte budget."""

    def __init__(self, corpus: Corpus, budget_mb: float):
        self.corpus, self.budget = corpus, int(budget_mb * 2**20)
        self.items: OrderedDict[int, np.ndarray] = OrderedDict()
        self.size = 0

    def __call__(self, index: int) -> np.ndarray:
        if index in self.items:
            self.items.move_to_end(index)
            return self.items[index]
        img = self.corpus.image(index)
        if img.nbytes <= self.budget:
            self.items[index] = img
            self.size += img.nbytes
            while self.size > self.budget:
                self.size -= self.items.popitem(last=False)[1].nbytes
        return img


class PatchDataset(Dataset):
    """Random square sub-images of a corpus' images; key = (item, seed).

    mode "crop": a patch x patch window (IQA). mode "whole": the whole image resized to patch
    (ranked counting crops, whose nesting must be kept whole).
    """

    def __init__(self, corpus: Corpus, patch: int, *, mode: str = "crop", rotate_deg: float = 0.0,
                 small_images: str = "reflect", cache_mb: float = 512):
        self.corpus, self.patch, self.mode = corpus, patch, mode
        self.rotate_deg, self.small_images = rotate_deg, small_images
        self.cache = ImageCache(corpus, cache_mb)

    def __len__(self) -> int:
        return len(self.corpus)

    def sample(self, img: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        p = self.patch
        if self.mode == "whole":
            t = to_tensor(img)[None]
            if t.shape[-2:] != (p, p):
                t = F.interpolate(t, size=(p, p), mode="bilinear", align_corners=False, antialias=True)
            return t[0]
        angle = rng.uniform(-self.rotate_deg, self.rotate_deg) if self.rotate_deg else 0.0
        # Cut a window large enough that the rotated patch has no corner outside it.
        need = p if not angle else math.ceil(p * (abs(math.cos(math.radians(angle))) + abs(math.sin(math.radians(angle)))))
        img = fit_small(img, need, self.small_images)
        h, w = img.shape[:2]
        y = int(rng.uniform() * (h - need + 1))
        x = int(rng.uniform() * (w - need + 1))
        t = to_tensor(img[y : y + need, x : x + need])
        if angle:
            t = rotate(t, angle)
            o = (need - p) // 2
            t = t[:, o : o + p, o : o + p]
        return t

    def __getitem__(self, key):
        item, seed = key
        return self.sample(self.cache(int(item)), np.random.default_rng(seed)), int(item)

    def test_crops(self, item: int, n: int, seed: int) -> torch.Tensor:
        """n random crops of one image (the paper averages 30 at test time)."""
        img = self.cache(int(item))
        rng = np.random.default_rng(seed)
        if self.mode == "whole":
            return self.sample(img, rng)[None]
        saved, self.rotate_deg = self.rotate_deg, 0.0
        try:
            return torch.stack([self.sample(img, rng) for _ in range(n)])
        finally:
            self.rotate_deg = saved


class DensityDataset(Dataset):
    """Multi-scale square patches (side uniform in `scales`) of a density corpus, resized to
    `patch`; the target map is resampled to the model's output grid keeping its sum (the count)."""

    def __init__(self, corpus: Corpus, patch: int, scales: tuple[int, int], out_stride: int, cache_mb: float = 512):
        self.corpus, self.patch, self.scales, self.out_stride = corpus, patch, scales, out_stride
        self.cache = ImageCache(corpus, cache_mb)
        self._stride: int | None = None

    @property
    def density_stride(self) -> int:
        # Read in the worker on first use, so the parent never holds an h5py handle across fork.
        if self._stride is None:
            self._stride = int(self.corpus.attrs.get("stride", 1))
        return self._stride

    def __len__(self) -> int:
        return len(self.corpus)

    def density(self, item: int) -> torch.Tensor:
        d = torch.from_numpy(np.ascontiguousarray(self.corpus.ragged("density", item), dtype=np.float32))
        return d[None, None]

    def __getitem__(self, key):
        item, seed = key
        rng = np.random.default_rng(seed)
        img = self.cache(int(item))
        h, w = img.shape[:2]
        side = int(rng.integers(self.scales[0], self.scales[1] + 1))
        side = min(side, h, w)
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        t = to_tensor(img[y : y + side, x : x + side])[None]
        t = F.interpolate(t, size=(self.patch, self.patch), mode="bilinear", align_corners=False, antialias=True)[0]
        s = self.density_stride
        d = self.density(item)[..., y // s : -(-(y + side) // s), x // s : -(-(x + side) // s)]
        out = self.patch // self.out_stride
        count = d.sum()
        d = F.adaptive_avg_pool2d(d, out) if min(d.shape[-2:]) >= out else F.interpolate(d, size=(out, out), mode="bilinear", align_corners=False)
        d = d * (count / d.sum().clamp(min=1e-12)) if count > 0 else torch.zeros_like(d)
        return t, d[0], int(item)


class RankedIndex:
    """Which items of a ranked corpus are comparable, from its `groups` table.

    An item may sit in several rows (the pristine reference of a `distort` corpus is shared by all
    its distortion series); order(items) combines every row the items share.
    """

    def __init__(self, groups: np.ndarray, rows: np.ndarray | None = None):
        self.groups = groups if rows is None else groups[rows]
        self.row_len = int((self.groups >= 0).sum(1).max()) if len(self.groups) else 0
        self.members: dict[int, list[tuple[int, int]]] = {}
        for r, row in enumerate(self.groups):
            for c, item in enumerate(row):
                if item >= 0:
                    self.members.setdefault(int(item), []).append((r, c))

    def order(self, items: list[int]) -> torch.Tensor:
        """(B, B) int8 l_ij: +1 if item i is ranked above item j in a shared row, -1 below, 0 none."""
        n = len(items)
        out = torch.zeros(n, n, dtype=torch.int8)
        by_row: dict[int, list[tuple[int, int]]] = {}
        for pos, item in enumerate(items):
            for r, c in self.members.get(int(item), ()):
                by_row.setdefault(r, []).append((pos, c))
        for members in by_row.values():
            if len(members) < 2:
                continue
            pos = torch.tensor([m[0] for m in members])
            col = torch.tensor([m[1] for m in members])
            out[pos[:, None], pos[None, :]] = torch.sign(col[None, :] - col[:, None]).to(torch.int8)
        return out


def group_crop_seeds(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Items of a groups table and, per item, the seed of its test crops: the row's anchor
    (column 0), so all members of a row are scored on the same windows, as in training."""
    seed: dict[int, int] = {}
    for row in groups:
        for item in row[row >= 0]:
            seed.setdefault(int(item), int(row[0]))
    items = np.array(sorted(seed), dtype=np.int64)
    return items, np.array([seed[i] for i in items], dtype=np.int64)


def hold_out_scenes(refs: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Mask of items whose scene is held out: round(fraction x scenes), at least one when fraction > 0
    and at least one scene left on the other side; every item of a scene on the same side."""
    scenes = np.array([scene_of(r) for r in refs])
    unique = np.unique(scenes)
    n_out = int(round(fraction * len(unique)))
    if fraction > 0 and len(unique) > 1:
        n_out = min(max(n_out, 1), len(unique) - 1)
    elif len(unique) <= 1:
        n_out = 0
    return np.isin(scenes, rng.permutation(unique)[:n_out])


def shares_scene(refs: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Mask of `refs` whose scene is one of `others`' (a stereo twin of one of them, or itself)."""
    scenes = {scene_of(r) for r in others}
    return np.array([scene_of(r) in scenes for r in refs], dtype=bool)


def _share(keys: list, rank: int, world: int) -> list:
    return keys[rank::world]


class GroupBatchSampler:
    """Global batches made of whole rows of `tables/groups`, so every comparable pair of a row is
    in the batch. Rows per batch = batch_images // (row length read from the table). Under DDP
    each process takes every world-th key of the same global batch."""

    def __init__(self, index: RankedIndex, batch_images: int, seed: int, rank: int = 0, world: int = 1):
        if index.row_len == 0:
            raise TrainError("the ranked corpus has no groups to train on")
        self.index, self.seed, self.rank, self.world = index, seed, rank, world
        self.rows_per_batch = max(1, batch_images // index.row_len)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index.groups) // self.rows_per_batch or 1

    def global_batches(self):
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        rows = rng.permutation(len(self.index.groups))
        for b in range(len(self)):
            keys, seen = [], set()
            for r in rows[b * self.rows_per_batch : (b + 1) * self.rows_per_batch]:
                row = self.index.groups[r]
                # One crop position per row set: the anchor (column 0) is shared by all rows of a reference.
                seed = item_seed(self.seed, "crop", self.epoch, b, int(row[0]))
                for item in row[row >= 0]:
                    if int(item) not in seen:
                        seen.add(int(item))
                        keys.append((int(item), seed))
            yield keys

    def __iter__(self):
        for keys in self.global_batches():
            yield _share(keys, self.rank, self.world)


class ItemBatchSampler:
    """Shuffled global batches of single items (labeled data), shared across processes like above."""

    def __init__(self, items: np.ndarray, batch: int, seed: int, rank: int = 0, world: int = 1, drop_last: bool = True):
        if len(items) == 0:
            raise TrainError("the labeled corpus has no training items")
        self.items, self.batch, self.seed, self.rank, self.world = items, batch, seed, rank, world
        self.drop_last = drop_last and len(items) >= batch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.items) // self.batch
        return n if self.drop_last else -(-len(self.items) // self.batch)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch, 2])
        order = self.items[rng.permutation(len(self.items))]
        for b in range(len(self)):
            chunk = order[b * self.batch : (b + 1) * self.batch]
            keys = [(int(i), item_seed(self.seed, "item", self.epoch, int(i))) for i in chunk]
            yield _share(keys, self.rank, self.world)
