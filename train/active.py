"""Active learning from rankings (ranking paper Sec. 3.4, Eq. 15, Algorithm 1), with a random baseline.

The pool is a labeled corpus split into units: for IQA one unit is an image with one distortion type
(all its levels are labeled together, as in the paper's TID2013 experiment), for counting one image.
Each cycle trains on the labeled units D (fine-tuning the previous cycle's network), evaluates on
the test items, scores every unlabeled unit with the certainty C of Eq. 15 and labels the S least
certain. The random baseline uses the same initial D, seeds and budget.

Sign convention. Eq. 15 counts T(f(h(z; phi_i)) < f(h(z; phi_j))) for phi_i <= phi_j: there f grows
with the distortion parameter. Here every score means higher = better (or more people), so a pair
with phi_i < phi_j (milder distortion; for counting, the larger of two nested crops) is ranked right
when f(h(z; phi_i)) > f(h(z; phi_j)). phi = 0 is the item itself. Tied predictions count 1/2, as in
the trainer's PRA: a network that cannot tell the two images apart is uncertain, not wrong.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import yaml

from rankgen.crowd import crops as C
from rankgen.corpus import Corpus
from rankgen.distortions import DISTORTIONS, distort, load_recipe
from rankgen.errors import RankgenError
from rankgen.seeding import item_seed, rng_for

from . import metrics as M
from .build import build_corpora, build_network, build_optimizer, labeled_dataset, loader_options, model_entry
from .config import DEFAULTS, KEYS, RECIPES_DIR, _flat, apply_settings, dump, read_recipe, resolve_recipe, validate
from .data import ItemBatchSampler, fit_small, hold_out_scenes, open_corpus, shares_scene, to_tensor
from .distributed import Dist
from .errors import TrainError
from .engine import atomic_save, labeled_loss, pick_device, predict, to_device, train_one_epoch
from .loop import lock_run_dir
from .models import read_torch_file

STRATEGIES = ("active", "random")
DEFAULT_RECIPE = RECIPES_DIR / "active_default.yaml"

ACTIVE_DEFAULTS: dict = {
    "initial": 0.1,          # labeled fraction of the pool's units before the first cycle
    "add": 0.1,              # fraction of the pool's units labeled per cycle (S)
    "cycles": 9,             # T: selections; the network is trained and evaluated T + 1 times
    "pairs": 100,            # K of Eq. 15: sampled parameter pairs per unit
    "levels": 5,             # IQA: the item itself + levels-1 parameters of the recipe's schedule
    "recipe": "tid2013",     # IQA: distortion table giving the parameters
    "distortions": [],       # IQA: generators for units whose own distortion is not in the recipe
    "score": "ssim",         # IQA on a distort corpus: true score from rankgen.fr_metrics
    "test": 0.34,            # distort corpus: fraction of references held out for evaluation
    "finetune": True,        # train(D, theta_{t-1}) as in Algorithm 1; false: from theta_0 each cycle
    "balance": False,        # IQA: least certain units taken in turn from each distortion type (not the paper's)
    "crops": {"k": 5, "s": 0.75, "r": 8.0},  # counting: Algorithm 2 nested crops
}
ACTIVE_KEYS = {"active." + k: v for k, v in ACTIVE_DEFAULTS.items() if k != "crops"}
ACTIVE_KEYS.update({f"active.crops.{k}": v for k, v in ACTIVE_DEFAULTS["crops"].items()})
ALL_KEYS = {**KEYS, **ACTIVE_KEYS}


# -- Eq. 15 ------------------------------------------------------------------------------------------
def pair_table(n_sets: int, length: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """K distinct (set, i, j) with i < j drawn from n_sets ranked sets of `length` images each."""
    i, j = np.triu_indices(length, 1)
    every = np.stack([np.repeat(np.arange(n_sets), len(i)), np.tile(i, n_sets), np.tile(j, n_sets)], axis=1)
    return every[np.sort(rng.choice(len(every), size=k, replace=False))]


def sets_needed(k: int, length: int) -> int:
    return math.ceil(k / (length * (length - 1) // 2))


def certainty(scores: np.ndarray, pairs: np.ndarray) -> float:
    """Eq. 15 on predictions `scores[set, position]` (position 0 = mildest): the fraction of pairs
    ranked right, higher = better, ties counting 1/2; nan when a prediction is not finite (every
    comparison with nan is false, so a diverged network would look certainly wrong: C = 0)."""
    if not np.all(np.isfinite(scores)):
        return float("nan")
    better = scores[pairs[:, 0], pairs[:, 1]]
    worse = scores[pairs[:, 0], pairs[:, 2]]
    return float(np.mean((better > worse) + 0.5 * (better == worse)))


# -- configuration -----------------------------------------------------------------------------------
def load_config(recipe: str | None, overrides: list[str] = ()) -> dict:
    """Trainer defaults + the `active` section <- recipe (active_default.yaml when none) <- --set."""
    path = resolve_recipe(recipe) or DEFAULT_RECIPE
    cfg = copy.deepcopy(DEFAULTS)
    cfg["active"] = copy.deepcopy(ACTIVE_DEFAULTS)
    cfg["objective"] = "regress"
    apply_settings(cfg, read_recipe(path), overrides, path, ALL_KEYS)
    validate_active(cfg)
    return cfg


def validate_active(cfg: dict) -> None:
    if cfg["objective"] != "regress":
        raise TrainError(f"objective={cfg['objective']!r}: each active-learning cycle trains by regression on the "
                         "labeled units; leave objective out of the recipe or set it to regress")
    validate(cfg)
    a = cfg["active"]
    for key in ("cycles", "pairs", "levels", "crops.k"):
        value = a["crops"]["k"] if key == "crops.k" else a[key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise TrainError(f"active.{key}={value!r}: expected a whole number")
    for key in ("initial", "add", "test", "crops.s", "crops.r"):
        node, leaf = (a["crops"], key[6:]) if key.startswith("crops.") else (a, key)
        if isinstance(node[leaf], str):  # YAML 1.1 reads 1e-1 as text
            try:
                node[leaf] = float(node[leaf])
            except ValueError:
                raise TrainError(f"active.{key}={node[leaf]!r}: expected a number") from None
        if not isinstance(node[leaf], (int, float)) or isinstance(node[leaf], bool):
            raise TrainError(f"active.{key}={node[leaf]!r}: expected a number")
    if a["cycles"] < 1:
        raise TrainError(f"active.cycles={a['cycles']} (--cycles): need at least one active-learning cycle")
    if a["pairs"] < 1:
        raise TrainError(f"active.pairs={a['pairs']} (--pairs): K of Eq. 15 needs at least one pair per unit")
    if not 0 < a["initial"] < 1:
        raise TrainError(f"active.initial={a['initial']} (--initial): the starting labeled fraction must be in (0, 1)")
    if not 0 < a["add"] <= 1:
        raise TrainError(f"active.add={a['add']} (--add): the fraction labeled per cycle must be in (0, 1]")
    total = a["initial"] + a["cycles"] * a["add"]
    if total > 1 + 1e-9:
        raise TrainError(f"budget exceeds the pool: initial {a['initial']:g} + {a['cycles']} cycles x add {a['add']:g} "
                         f"= {total:g} of the pool; lower --cycles or --add")
    if cfg["task"] == "iqa":
        if a["levels"] < 2:
            raise TrainError(f"active.levels={a['levels']}: a ranked set needs the item and at least one distortion level")
        if not isinstance(a["distortions"], list):
            raise TrainError(f"active.distortions={a['distortions']!r}: expected a list of distortion names")
        for name in a["distortions"]:
            load_recipe(a["recipe"]).table(name)
    else:
        try:
            C.validate(a["crops"]["k"], a["crops"]["s"], a["crops"]["r"], cfg["data"]["patch"])
        except RankgenError as exc:
            raise TrainError(f"active.crops: {exc}".replace("--", "")) from None
    if not 0 <= a["test"] < 1:
        raise TrainError(f"active.test={a['test']}: the held-out fraction of references must be in [0, 1)")


def schedule(cfg: dict, n_units: int) -> list[int]:
    """Labeled unit counts before each training, t = 0..T: round((initial + t add) N), strictly growing."""
    a = cfg["active"]
    counts = [int(round((a["initial"] + t * a["add"]) * n_units + 1e-9)) for t in range(a["cycles"] + 1)]
    counts[-1] = min(counts[-1], n_units)
    if counts[0] < 1:
        raise TrainError(f"active.initial={a['initial']:g} of {n_units} pool units labels none; raise --initial")
    if any(b <= c for c, b in zip(counts, counts[1:])):
        raise TrainError(f"active.add={a['add']:g} of {n_units} pool units adds less than one unit per cycle; raise --add")
    if counts[-1] > n_units or a["initial"] + a["cycles"] * a["add"] > 1 + 1e-9:
        raise TrainError(f"budget exceeds the pool: {counts[-1]} units wanted, {n_units} in the pool")
    return counts


# -- the pool ----------------------------------------------------------------------------------------
@dataclass
class Pool:
    """Units of a labeled corpus; `units[u]` are the corpus items labeled together."""

    corpus: Corpus
    target: np.ndarray              # per corpus item, higher = better (or the count)
    names: list[str]                # per unit, stable across runs (the JSON files use them)
    units: list[np.ndarray]
    generators: list[list[str]]     # per unit, IQA distortions of its ranked sets ([] for counting)
    test: np.ndarray                # corpus items scored after each cycle
    test_corpus: Corpus
    bases: list[np.ndarray] | None = None  # per IQA unit, the pristine item(s) its ranked sets start from

    def items(self, units) -> np.ndarray:
        return np.concatenate([self.units[u] for u in units]) if len(units) else np.zeros(0, np.int64)


def _generators(cfg: dict, own: str) -> list[str]:
    """The unit's own distortion when the recipe has it (by name or alias, or for TID2013's long names
    by type number), else the configured list."""
    from rankgen.sources.labeled import TID2013_TYPES

    recipe = _recipe(cfg["active"]["recipe"])
    try:
        recipe.table(own)
        return [DISTORTIONS.canonical(own)]
    except RankgenError:
        pass
    if own in TID2013_TYPES:
        tid = TID2013_TYPES.index(own) + 1
        same = [n for n in recipe.names if DISTORTIONS.entry(n).info.get("tid") == tid]
        if same:
            return same[:1]
    return list(cfg["active"]["distortions"])


def iqa_pool(cfg: dict) -> Pool:
    path = cfg["data"]["labeled"]
    corpus = open_corpus(path, ("distort", "annotate"), "labeled")
    cols = corpus.columns()
    n = len(corpus)
    if corpus.kind == "distort":
        from rankgen.fr_metrics import score_corpus

        target = score_corpus(corpus, cfg["active"]["score"], progress=False)
        level = corpus.column("level")
        ref = corpus.table("ref_id")[corpus.column("ref")]
        crop = corpus.column("crop") if "crop" in cols else np.zeros(n, np.int64)
        dist = corpus.column("distortion")
        # By scene: with a stereo twin in the pool, the test would score a view the network was trained on.
        in_test = hold_out_scenes(ref, cfg["active"]["test"], rng_for(cfg["seed"], "active-test"))
        # The pristine references carry no label worth buying (SSIM 1): neither pool nor test.
        keys = [f"{ref[i]}/{crop[i]}/{dist[i]}" if level[i] > 0 else None for i in range(n)]
        test = np.flatnonzero(in_test & (level > 0))
        pristine = {(ref[i], crop[i]): i for i in range(n) if level[i] == 0}
        base_of = [pristine.get((ref[i], crop[i])) for i in range(n)]
    else:
        target_col = cfg["data"]["target"]
        if target_col not in cols:
            raise TrainError(f"data.labeled: {corpus.path} has no column {target_col!r} (data.target); it has {', '.join(cols)}")
        target = corpus.column(target_col).astype(np.float64)
        in_test = corpus.column("split") == "test"
        ref = corpus.column("ref") if "ref" in cols else np.arange(n).astype(str)
        dist = corpus.column("distortion") if "distortion" in cols else np.full(n, "")
        # A reference (or an item of unknown type) has no series to be labeled with: a unit of its own.
        keys = [f"{ref[i]}/{dist[i]}" if dist[i] not in ("", "reference") else f"{ref[i]}/#{i}" for i in range(n)]
        # A corpus split by reference (annotate before issue #15) can hold a stereo twin on each side.
        leaked = ~in_test & shares_scene(ref, ref[in_test])
        if leaked.any():
            _log(f"note: {int(leaked.sum())} items of {corpus.path} show a scene of the test split "
                 f"({', '.join(sorted({str(r) for r in ref[leaked]})[:4])}); left out of the pool")
            keys = [None if leaked[i] else k for i, k in enumerate(keys)]
        test = np.flatnonzero(in_test)
        level = corpus.column("level") if "level" in cols else np.full(n, -1)
        pristine = {ref[i]: i for i in range(n) if level[i] == 0}
        base_of = [pristine.get(ref[i]) for i in range(n)]
    by_key: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        if k is not None and not in_test[i]:
            by_key.setdefault(k, []).append(i)
    names = sorted(by_key)
    units = [np.array(by_key[k], dtype=np.int64) for k in names]
    generators = []
    for name, members in zip(names, units):
        own = str(dist[members[0]])
        gens = _generators(cfg, own) if own not in ("", "reference") else list(cfg["active"]["distortions"])
        if not gens:
            raise TrainError(f"pool unit {name!r} (distortion {own or 'unknown'!r}) has no ranked generator: "
                             f"{own or 'its type'} is not in distortion recipe {cfg['active']['recipe']!r} and "
                             "active.distortions is empty; list distortions to apply, e.g. "
                             "--set active.distortions=[gaussian_blur,jpeg]")
        generators.append(gens)
    # The ranked sets of Eq. 15 distort the unit's pristine image where the corpus has it, as the
    # paper's h(z, phi) does; re-distorting an already distorted member only where it does not.
    bases = [np.array(sorted({base_of[i] for i in members if base_of[i] is not None}), dtype=np.int64)
             for members in units]
    _check_pool(cfg, names, test)
    corpus.close()
    return Pool(corpus, target, names, units, generators, test, corpus, bases)


def counting_pool(cfg: dict) -> Pool:
    dc = cfg["data"]
    corpus = open_corpus(dc["labeled"], ("density",), "labeled")
    target = corpus.column("count").astype(np.float64)
    split = corpus.column("split") if "split" in corpus.columns() else np.full(len(corpus), "train")
    if dc["test"]:
        test_corpus = open_corpus(dc["test"], ("density",), "test")
        test = np.arange(len(test_corpus))
        pool_items = np.arange(len(corpus))
    else:
        test_corpus, test = corpus, np.flatnonzero(split == "test")
        pool_items = np.flatnonzero(split != "test")
    a = cfg["active"]["crops"]
    for i in pool_items:
        h, w = corpus.ragged_shape("image", int(i))[:2]
        if C.worst_smallest_side(w, h, a["k"], a["s"], a["r"]) < 1:
            raise TrainError(f"pool item {int(i)} of {corpus.path} ({w}x{h}) has no ranked generator: its smallest "
                             f"nested crop (k={a['k']}, s={a['s']}) would be empty; lower active.crops.k or raise s")
    ids = corpus.table("source_id")[corpus.column("source")] if "source" in corpus.columns() else None
    names = [f"{ids[i]}#{i}" if ids is not None else f"#{i}" for i in pool_items]
    _check_pool(cfg, names, test)
    corpus.close()
    return Pool(corpus, target, names, [np.array([i]) for i in pool_items], [[] for _ in pool_items], test, test_corpus)


def _check_pool(cfg: dict, names: list[str], test: np.ndarray) -> None:
    if not names:
        raise TrainError(f"data.labeled {cfg['data']['labeled']}: no pool units (every item is in the test split)")
    if len(test) < 2:
        raise TrainError(f"data.labeled {cfg['data']['labeled']}: {len(test)} test item(s); evaluation needs at least 2 "
                         "(raise active.test, or give data.test for counting)")


# -- ranked sets generated on the fly ------------------------------------------------------------------
@lru_cache(maxsize=None)
def _recipe(name: str):
    # Called per pool unit: parse the recipe once, not hundreds of times.
    return load_recipe(name)


@lru_cache(maxsize=None)
def _params(recipe: str, name: str, levels: int) -> tuple[float, ...]:
    """Parsing a recipe probes every parameter; once per run is enough."""
    return tuple(_recipe(recipe).params(name, levels))


def iqa_sets(pool: Pool, unit: int, cfg: dict, n_sets: int, rng: np.random.Generator) -> np.ndarray:
    """(n_sets, levels, p, p, 3) uint8: a random p x p window of the unit's pristine image (or of a
    member image when the corpus has no pristine one), then that window
    distorted at the recipe's parameters, mildest first. The window is distorted as an image of its
    own (like `rankgen distort --crop`), which costs p^2 per image whatever the image size."""
    a, p = cfg["active"], cfg["data"]["patch"]
    base = pool.bases[unit] if pool.bases is not None and len(pool.bases[unit]) else pool.units[unit]
    members = rng.permutation(base)
    gens = pool.generators[unit]
    out = np.empty((n_sets, a["levels"], p, p, 3), np.uint8)
    for s in range(n_sets):
        img = fit_small(pool.corpus.image(int(members[s % len(members)])), p, cfg["data"]["small_images"])
        h, w = img.shape[:2]
        y, x = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
        window = np.ascontiguousarray(img[y : y + p, x : x + p])
        name = gens[s % len(gens)]
        out[s, 0] = window
        for k, param in enumerate(_params(a["recipe"], name, a["levels"]), start=1):
            out[s, k] = distort(window, name, param, np.random.default_rng(rng.integers(2**63)))
    return out


def counting_sets(pool: Pool, unit: int, cfg: dict, n_sets: int, rng: np.random.Generator) -> np.ndarray:
    """(n_sets, k, p, p, 3) uint8: Algorithm 2 nested crops of the unit's image, largest first."""
    a, p = cfg["active"]["crops"], cfg["data"]["patch"]
    img = pool.corpus.image(int(pool.units[unit][0]))
    h, w = img.shape[:2]
    out = np.empty((n_sets, a["k"], p, p, 3), np.uint8)
    for s in range(n_sets):
        cs = C.crop_set(w, h, a["k"], a["s"], a["r"], rng)
        for k, box in enumerate(cs.iboxes):
            out[s, k] = C.cut(img, box, p)
    return out


@torch.no_grad()
def score_images(model, images: np.ndarray, device: torch.device, batch: int = 256) -> np.ndarray:
    """Predictions for (..., p, p, 3) uint8 images, same leading shape."""
    model.eval()
    flat = images.reshape(-1, *images.shape[-3:])
    out = []
    for b in range(0, len(flat), batch):
        x = torch.stack([to_tensor(im) for im in flat[b : b + batch]]).to(device)
        out.append(model(x).float().cpu().numpy())
    return np.concatenate(out).reshape(images.shape[:-3])


def pool_certainty(model, pool: Pool, units: np.ndarray, cfg: dict, cycle: int, device: torch.device) -> np.ndarray:
    """C(z) of Eq. 15 for each unit, from K pairs of freshly generated ranked images."""
    a = cfg["active"]
    make = counting_sets if cfg["task"] == "counting" else iqa_sets
    length = a["crops"]["k"] if cfg["task"] == "counting" else a["levels"]
    n_sets = sets_needed(a["pairs"], length)
    out = np.empty(len(units))
    for n, u in enumerate(units):
        rng = rng_for(cfg["seed"], "certainty", cycle, pool.names[u])
        pairs = pair_table(n_sets, length, a["pairs"], rng)
        sets = make(pool, int(u), cfg, n_sets, rng)
        out[n] = certainty(score_images(model, sets, device), pairs)
    return out


# -- training and evaluation of one cycle --------------------------------------------------------------
class Cycle:
    """The datasets, model factory and per-cycle training of a run (shared by both strategies)."""

    def __init__(self, cfg: dict, pool: Pool, device: torch.device):
        self.cfg, self.pool, self.device = cfg, pool, device
        self.counting = cfg["task"] == "counting"
        self.arch = model_entry(cfg).name
        # train run's labeled datasets: density maps at the network's stride, or random sub-images.
        self.train_ds = labeled_dataset(cfg, pool.corpus)
        self.test_ds = labeled_dataset(cfg, pool.test_corpus) if self.counting else self.train_ds

    def new_model(self):
        cfg = self.cfg
        torch.manual_seed(item_seed(cfg["seed"], "active-init"))
        model, _ = build_network(cfg, self.arch)
        return model.to(self.device)

    def loss(self, model, batch, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return labeled_loss(model, batch, lambda idx: to_device(target[idx], self.device), self.device,
                            counting=self.counting, amp=self.cfg["train"]["amp"])

    def train(self, model, items: np.ndarray, seed: int) -> float:
        """optim.epochs epochs on the labeled items, an epoch being optim.iters_per_epoch steps (the same
        work every cycle) or, when null, one pass over D; a fresh optimizer each cycle. Returns the mean loss."""
        from torch.utils.data import DataLoader

        oc = self.cfg["optim"]
        torch.manual_seed(seed)
        sampler = ItemBatchSampler(items, oc["labeled_batch"], seed, drop_last=False)
        loader = DataLoader(self.train_ds, batch_sampler=sampler, **loader_options(self.cfg, self.device))
        opt, sched, scaler = build_optimizer(self.cfg, model.parameters(), self.device)
        iters = oc["iters_per_epoch"] or len(sampler)
        # Regress the target standardized over D: SSIM (0-1) and PSNR (dB) then train with the same
        # learning rate, and LCC/SROCC are blind to the affine change.
        y = self.pool.target[items]
        target = torch.from_numpy(((self.pool.target - y.mean()) / max(float(y.std()), 1e-6)).astype(np.float32))
        passes = [0]

        def batches():
            """`iters` batches, starting new passes over D (reshuffled) as needed."""
            done = 0
            while done < iters:
                sampler.set_epoch(passes[0])
                passes[0] += 1
                for batch in loader:
                    yield batch
                    done += 1
                    if done == iters:
                        return

        model.train()
        losses, steps = [], 0
        for epoch in range(oc["epochs"]):
            row = train_one_epoch(lambda b: self.loss(model, b, target), batches(), opt, scaler, epoch=epoch + 1,
                                  first_step=steps, count=lambda b: len(b[0]))
            steps += row["steps"]
            losses += [row["loss"]] * row["steps"]
            sched.step()
        return float(np.mean(losses)) if losses else float("nan")

    def evaluate(self, model) -> dict:
        items, pool = self.pool.test, self.pool

        def inputs():
            for item in items:
                if self.counting:
                    yield to_tensor(self.test_ds.cache(int(item)))[None]
                else:
                    yield self.test_ds.test_crops(int(item), self.cfg["data"]["test_crops"], seed=int(item))

        pred = predict(model, inputs(), self.device)
        if self.counting:
            y = pool.test_corpus.column("count")[items].astype(np.float64)
            return {"mae": M.mae(y, pred), "rmse": M.rmse(y, pred)}
        y = pool.target[items]
        return {"lcc": M.lcc(y, pred), "srocc": M.srocc(y, pred)}


# -- the run -------------------------------------------------------------------------------------------
def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _comparable(cfg: dict) -> dict:
    """What must not change between a run and its resumption (cycles may grow, the device may differ)."""
    c = copy.deepcopy(cfg)
    c["active"].pop("cycles")
    c.pop("train")
    return c


def run_active(cfg: dict, resume: bool = False) -> dict:
    """Both strategies for T cycles; writes runs/<name>/: config.yaml, pool.json, <strategy>/cycle_<t>.json
    (+ .pt), results.csv and active.png. Returns {"run_dir", "rows"}."""
    device = pick_device(cfg["train"]["device"])
    run_dir = Path(cfg["out"]) / cfg["name"]
    # The lock of `train run`: a second `train active` (a --resume while the first still runs)
    # would otherwise interleave cycle files with it.
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_run_dir(run_dir)
    try:
        return _run_active(cfg, resume, device, run_dir)
    finally:
        lock.close()


def _run_active(cfg: dict, resume: bool, device: torch.device, run_dir: Path) -> dict:
    saved_cfg = run_dir / "config.yaml"
    if saved_cfg.exists():
        if not resume:
            raise TrainError(f"{run_dir} already holds an active-learning run; pass --resume to continue it or --set name=OTHER")
        old = yaml.safe_load(saved_cfg.read_text())
        if _comparable(old) != _comparable(cfg):
            changed = sorted(k for k, v in _flat(_comparable(cfg)).items() if _flat(_comparable(old)).get(k) != v)
            raise TrainError(f"--resume: {run_dir} was run with other settings ({', '.join(changed)}); "
                             "only active.cycles and train.* may change, or start a new run with --set name=OTHER")
    elif resume:
        raise TrainError(f"--resume: {run_dir} holds no active-learning run to continue")
    build_corpora(cfg, Dist(device=device))
    pool = counting_pool(cfg) if cfg["task"] == "counting" else iqa_pool(cfg)
    counts = schedule(cfg, len(pool.names))
    saved_cfg.write_text(dump(cfg))
    _write_json(run_dir / "pool.json", {"units": pool.names, "test_items": pool.test.tolist(), "counts": counts})
    cyc = Cycle(cfg, pool, device)
    start = rng_for(cfg["seed"], "active-initial").permutation(len(pool.names))[: counts[0]]
    rows = []
    for strategy in STRATEGIES:
        rows += run_strategy(cfg, cyc, strategy, np.sort(start), counts, run_dir)
    write_results(rows, run_dir, cfg)
    return {"run_dir": str(run_dir), "rows": rows}


def select(cfg: dict, cyc: Cycle, strategy: str, model, labeled: np.ndarray, t: int, s: int):
    """The S units to label after cycle t: least certain (Eq. 15) or uniformly random, and the
    certainty of every unlabeled unit (active only)."""
    unlabeled = np.setdiff1d(np.arange(len(cyc.pool.names)), labeled)
    if strategy == "random":
        return np.sort(rng_for(cfg["seed"], "active-random", t).choice(unlabeled, size=s, replace=False)), None
    c = pool_certainty(model, cyc.pool, unlabeled, cfg, t, device=cyc.device)
    if not np.all(np.isfinite(c)):
        raise TrainError(f"cycle {t}: the network's predictions on the pool are not finite, so Eq. 15 cannot rank "
                         "its units; the training diverged: lower optim.lr (e.g. --set optim.lr=1e-4) and train "
                         "under a new name (--set name=OTHER)")
    # Stable sort: equal certainties go in unit-name order, so a selection never depends on chance.
    order = unlabeled[np.argsort(c, kind="stable")]
    if cfg["active"]["balance"] and cyc.pool.generators and any(cyc.pool.generators):
        order = balanced(order, [cyc.pool.generators[u][0] if cyc.pool.generators[u] else "" for u in order])
    return order[:s], {cyc.pool.names[u]: round(float(v), 6) for u, v in zip(unlabeled, c)}


def balanced(order: np.ndarray, types: list[str]) -> np.ndarray:
    """Re-order least-certain-first units so that types take turns, each type's own order kept.

    Plain Eq. 15 ranking tends to spend a whole cycle on the one type the network ranks worst at the
    moment; taking turns keeps the labeled set covering every type while still buying each type's
    least certain units first.
    """
    queues: dict[str, list[int]] = {}
    for u, kind in zip(order.tolist(), types):
        queues.setdefault(kind, []).append(u)
    out: list[int] = []
    while any(queues.values()):
        for kind in list(queues):
            if queues[kind]:
                out.append(queues[kind].pop(0))
    return np.array(out, dtype=order.dtype)


def run_strategy(cfg: dict, cyc: Cycle, strategy: str, start: np.ndarray, counts: list[int], run_dir: Path) -> list[dict]:
    folder = run_dir / strategy
    folder.mkdir(exist_ok=True)
    pool = cyc.pool
    index = {n: u for u, n in enumerate(pool.names)}
    labeled = start
    model = cyc.new_model()
    rows, first = [], 0
    while first < len(counts) and (folder / f"cycle_{first}.json").exists():
        rec = json.loads((folder / f"cycle_{first}.json").read_text())
        rows.append(rec["row"])
        labeled = np.array(sorted(index[n] for n in rec["labeled"]), dtype=np.int64)
        first += 1
    if first:
        t = first - 1
        ck = read_torch_file(folder / f"cycle_{t}.pt", "checkpoint", weights_only=False)
        model.load_state_dict(ck["model"])
        if t + 1 < len(counts) and not rec["selected"]:
            # The run being extended ended at cycle t, which therefore selected nothing.
            selected, cert = select(cfg, cyc, strategy, model, labeled, t, counts[t + 1] - counts[t])
            rec.update(selected=[pool.names[u] for u in selected], **({"certainty": cert} if cert else {}))
            _write_json(folder / f"cycle_{t}.json", rec)
        labeled = np.array(sorted(index[n] for n in rec["labeled"] + rec["selected"]), dtype=np.int64)
        _log(f"{strategy}: resumed after cycle {t}")
    for t in range(first, len(counts)):
        t0 = time.perf_counter()
        if not cfg["active"]["finetune"]:
            model = cyc.new_model()
        # Cycle 0 trains on the same D from the same theta_0 in both strategies; the random branch
        # reuses the active branch's result instead of repeating identical work.
        shared = run_dir / STRATEGIES[0] / "cycle_0.pt"
        if t == 0 and strategy != STRATEGIES[0] and shared.exists():
            ck = read_torch_file(shared, "checkpoint", weights_only=False)
            model.load_state_dict(ck["model"])
            loss = ck["loss"]
        else:
            loss = cyc.train(model, pool.items(labeled), item_seed(cfg["seed"], "active-train", t))
        metrics = cyc.evaluate(model)
        selected, cert = np.zeros(0, np.int64), None
        if t + 1 < len(counts):
            selected, cert = select(cfg, cyc, strategy, model, labeled, t, counts[t + 1] - counts[t])
        row = {"strategy": strategy, "cycle": t, "labeled_units": int(len(labeled)),
               "labeled_fraction": len(labeled) / len(pool.names), "train_loss": loss, **metrics}
        # The checkpoint first, the JSON last: a cycle counts as done only once both are on disk.
        atomic_save({"arch": cyc.arch, "config": cfg, "model": model.state_dict(), "cycle": t, "strategy": strategy,
                     "loss": loss}, folder / f"cycle_{t}.pt")
        rec = {"cycle": t, "strategy": strategy, "row": row,
               "labeled": [pool.names[u] for u in labeled], "selected": [pool.names[u] for u in selected]}
        if cert is not None:
            rec["certainty"] = cert
        _write_json(folder / f"cycle_{t}.json", rec)
        shown = "  ".join(f"{k}={v:.4f}" for k, v in metrics.items())
        extra = f"  mean C={np.mean(list(cert.values())):.3f}" if cert else ""
        _log(f"{strategy} cycle {t}: {len(labeled)} units ({row['labeled_fraction']:.0%})  {shown}{extra}  "
             f"({time.perf_counter() - t0:.1f} s)")
        rows.append(row)
        labeled = np.sort(np.concatenate([labeled, selected]))
    return rows


def metric_names(cfg: dict) -> tuple[str, ...]:
    return ("mae", "rmse") if cfg["task"] == "counting" else ("lcc", "srocc")


def write_results(rows: list[dict], run_dir: Path, cfg: dict) -> None:
    keys = ["strategy", "cycle", "labeled_units", "labeled_fraction", "train_loss", *metric_names(cfg)]
    tmp = run_dir / "results.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, run_dir / "results.csv")
    plot(rows, run_dir / "active.png", cfg)


def table(rows: list[dict], cfg: dict) -> str:
    """Metric against the labeled fraction, one column per strategy and metric (Figs. 5 and 7)."""
    names = metric_names(cfg)
    by = {(r["strategy"], r["cycle"]): r for r in rows}
    cycles = sorted({r["cycle"] for r in rows})
    head = ["labeled"] + [f"{s} {m}" for m in names for s in STRATEGIES]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for t in cycles:
        frac = next(r["labeled_fraction"] for r in rows if r["cycle"] == t)
        cells = [f"{frac:.0%}"]
        for m in names:
            for s in STRATEGIES:
                r = by.get((s, t))
                cells.append(f"{r[m]:.4f}" if r else "")
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, cfg: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = metric_names(cfg)[:1] if cfg["task"] == "counting" else metric_names(cfg)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    for ax, m in zip(axes[0], names):
        for s, style in zip(STRATEGIES, ("o-", "s--")):
            pts = sorted((r["labeled_fraction"], r[m]) for r in rows if r["strategy"] == s)
            ax.plot([100 * p[0] for p in pts], [p[1] for p in pts], style, label=s)
        ax.set_xlabel("labeled data (% of the pool)")
        ax.set_ylabel(m.upper())
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"active learning vs random: {cfg['name']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
