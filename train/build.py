"""The pieces of a run, each built from the resolved config by one function: corpora, data, network,
criterion, optimizer, placement on the device(s).

`train run` (loop.Trainer) calls them in this order, `train active` (active.Cycle) the ones it
needs, `train eval` / `train predict` (evaluate.py) build_network; the training steps themselves
are engine.train_one_epoch. The order is the RNG's: torch's generator is seeded once, then the
network and the criterion draw their initial weights from it, so a run is the same run whichever
command builds it.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from rankgen.locking import die_with_parent
from rankgen.seeding import rng_for

from .data import (LABELED_KINDS, DensityDataset, GroupBatchSampler, ItemBatchSampler, PatchDataset, RankedIndex,
                   hold_out_scenes, open_corpus, shares_scene)
from .distributed import Dist, main_decides
from .engine import grad_scaler, make_optimizer, make_scheduler
from .errors import TrainError
from .losses import DCRLoss
from .models import MODELS, build_model, load_weights


def log(msg: str, d: Dist | None = None) -> None:
    """To stderr, once per run: only the main process of a DDP group prints."""
    if d is None or d.main:
        print(msg, file=sys.stderr, flush=True)


# -- corpora ------------------------------------------------------------------------------------------
def build_corpora(cfg: dict, d: Dist) -> None:
    """Run the recipe's `data.build` rankgen commands for the corpora it reads that do not exist yet
    (one that `--set data.ranked=other.h5` replaced is not built). The main process builds; a
    failure is raised in every process."""
    used = {str(v) for v in cfg["data"].values() if isinstance(v, (str, Path))}
    for path, args in (cfg["data"]["build"] or {}).items():
        if str(path) not in used:
            continue
        path = Path(path)
        if path.exists():
            continue

        def build(path=path, args=args):
            path.parent.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "rankgen", *map(str, args), "-o", str(path)]
            log(f"building {path}: rankgen {' '.join(map(str, args))}")
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if proc.returncode != 0 or not path.exists():
                tail = "\n".join(proc.stdout.strip().splitlines()[-5:])
                raise TrainError(f"building {path} failed (rankgen {' '.join(map(str, args))}):\n{tail}")

        # Also the barrier: the other ranks open the corpus only once the main process built it.
        main_decides(build, d)


# -- data ---------------------------------------------------------------------------------------------
class Split:
    """Items of a labeled corpus used for one role (training or evaluation), with their targets."""

    def __init__(self, corpus, items: np.ndarray, dataset, target: str):
        self.corpus, self.items, self.dataset = corpus, items, dataset
        self.target = corpus.column(target).astype(np.float32)
        self.annotator = corpus.column("annotator") if "annotator" in corpus.columns() else None


@dataclass
class Data:
    """What a run trains and scores on; None where its objective reads no such data."""

    loaders: dict[str, DataLoader] = field(default_factory=dict)  # "ranked" and/or "labeled": training batches
    ranked: RankedIndex | None = None        # training rows of the ranked corpus's groups
    ranked_eval: RankedIndex | None = None   # held-out rows: heldout_pra
    ranked_ds: PatchDataset | None = None
    labeled: Split | None = None             # training items of the labeled corpus
    labeled_val: Split | None = None         # validation carved from them: val_* metrics, best.pt
    labeled_eval: Split | None = None        # the test split (or data.test): reported only


def split_refs(corpus, groups: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) rows of `groups`, holding out whole scenes (all rows of a reference and of
    its stereo twin), so held-out images were never trained on."""
    anchors = groups[:, 0]
    # Whole source images go to one side: `ref` (distort) or `source` (crops) when present,
    # by name where the corpus has the name table (scene_of needs names).
    column = next((c for c in ("ref", "source") if c in corpus.columns()), None)
    refs = corpus.column(column)[anchors] if column else anchors
    table = {"ref": "ref_id", "source": "source_id"}.get(column)
    if table in corpus.tables():
        refs = corpus.table(table)[refs]
    mask = hold_out_scenes(refs, fraction, np.random.default_rng(12345))
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def carve_validation(cfg: dict, corpus, separate_test, d: Dist) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) items of the labeled corpus's split "train", by scene (scene_of).

    Every choice the run makes (best.pt, early stopping) uses validation; the test split is only
    reported. A training item whose stereo twin is in the test split (annotate corpora written
    before the split went by scene) is left out altogether.
    """
    split = corpus.column("split")
    refs = corpus.column("ref") if "ref" in corpus.columns() else np.arange(len(corpus)).astype(str)
    train = np.flatnonzero(split == "train")
    if not separate_test:
        leaked = shares_scene(refs[train], refs[split == "test"])
        if leaked.any():
            log(f"note: {int(leaked.sum())} training items of {corpus.path} show a scene of the test split "
                f"({', '.join(sorted({str(r) for r in refs[train[leaked]]})[:4])}); left out of training", d)
            train = train[~leaked]
    held = hold_out_scenes(refs[train], cfg["data"]["val"], rng_for(cfg["seed"], "validation"))
    if cfg["data"]["val"] > 0 and not held.any():
        log(f"note: {corpus.path} has one training scene only; no validation split, best.pt follows "
            "the ranked held-out PRA or the training loss", d)
    return train[~held], train[held]


def open_labeled(path, kinds, role: str, target: str):
    corpus = open_corpus(path, kinds, role)
    for col in ("split", target):
        if col not in corpus.columns():
            raise TrainError(f"data.{role}: {corpus.path} has no column {col!r}; it has {', '.join(corpus.columns())}")
    return corpus


def labeled_dataset(cfg: dict, corpus):
    """Density maps at the network's stride for counting, random sub-images for IQA."""
    dc = cfg["data"]
    if cfg["task"] == "counting":
        stride = MODELS.get(cfg["model"]["arch"]).stride
        return DensityDataset(corpus, dc["patch"], tuple(dc["scales"]), stride, dc["cache_mb"])
    return PatchDataset(corpus, dc["patch"], rotate_deg=dc["rotate"], small_images=dc["small_images"],
                        cache_mb=dc["cache_mb"])


def loader_options(cfg: dict, device: torch.device) -> dict:
    # Pinned host memory is what lets the non_blocking copies of to_device overlap with compute.
    # Workers die with the trainer: they share its run-folder lock, which a worker still waiting out
    # its parent watchdog (seconds) after a kill -9 would hold against the `--resume`.
    workers = cfg["data"]["workers"]
    return dict(num_workers=workers, persistent_workers=workers > 0, pin_memory=device.type == "cuda",
                worker_init_fn=functools.partial(die_with_trainer, os.getpid()) if workers > 0 else None)


def die_with_trainer(trainer: int, worker_id: int) -> None:
    die_with_parent(trainer)


def build_ranked(cfg: dict, d: Dist, data: Data) -> None:
    """The ranked corpus's training and held-out groups and its loader of whole-group batches."""
    dc, counting = cfg["data"], cfg["task"] == "counting"
    corpus = open_corpus(dc["ranked"], ("crops",) if counting else ("distort",), "ranked")
    groups = corpus.groups
    train_rows, eval_rows = split_refs(corpus, groups, dc["heldout"])
    data.ranked = RankedIndex(groups, train_rows)
    data.ranked_eval = RankedIndex(groups, eval_rows) if len(eval_rows) else None
    data.ranked_ds = PatchDataset(corpus, dc["patch"], mode="whole" if counting else "crop", rotate_deg=dc["rotate"],
                                  small_images=dc["small_images"], cache_mb=dc["cache_mb"])
    sampler = GroupBatchSampler(data.ranked, cfg["optim"]["batch_size"], cfg["seed"], d.rank, d.world)
    data.loaders["ranked"] = DataLoader(data.ranked_ds, batch_sampler=sampler, **loader_options(cfg, d.device))
    corpus.close()


def build_labeled(cfg: dict, d: Dist, data: Data) -> None:
    """The labeled corpus's training, validation and test items, and its loader when the objective
    trains on labels."""
    dc, objective = cfg["data"], cfg["objective"]
    kinds = LABELED_KINDS[objective if objective == "dcr" else cfg["task"]]
    target = "count" if cfg["task"] == "counting" else dc["target"]
    corpus = open_labeled(dc["labeled"], kinds, "labeled", target)
    dataset = labeled_dataset(cfg, corpus)
    train_items, val_items = carve_validation(cfg, corpus, dc["test"], d)
    data.labeled = Split(corpus, train_items, dataset, target)
    data.labeled_val = Split(corpus, val_items, dataset, target) if len(val_items) else None
    if dc["test"]:
        test = open_labeled(dc["test"], kinds, "test", target)
        data.labeled_eval = Split(test, np.arange(len(test)), labeled_dataset(cfg, test), target)
        test.close()
    else:
        data.labeled_eval = Split(corpus, np.flatnonzero(corpus.column("split") == "test"), dataset, target)
    if objective in ("regress", "multitask", "dcr"):
        batch = cfg["optim"]["batch_size"] if objective == "dcr" else cfg["optim"]["labeled_batch"]
        sampler = ItemBatchSampler(data.labeled.items, batch, cfg["seed"], d.rank, d.world)
        data.loaders["labeled"] = DataLoader(dataset, batch_sampler=sampler, **loader_options(cfg, d.device))
    corpus.close()


def build_data(cfg: dict, d: Dist) -> Data:
    """Every corpus the objective reads, split and wrapped in loaders (corpora built first if missing)."""
    build_corpora(cfg, d)
    data = Data()
    if cfg["data"]["ranked"] and cfg["objective"] in ("rank", "multitask"):
        build_ranked(cfg, d, data)
    if cfg["data"]["labeled"]:
        build_labeled(cfg, d, data)
    if not data.loaders:
        raise TrainError(f"objective {cfg['objective']!r} has no training data: set data.ranked or data.labeled")
    return data


# -- network, criterion, optimizer --------------------------------------------------------------------
def model_entry(cfg: dict):
    """The registry entry of model.arch, refused when it cannot do the task (a density model counts)."""
    entry = MODELS.entry(cfg["model"]["arch"])
    density = entry.info["output"] == "density"
    if cfg["task"] == "counting" and not density:
        raise TrainError(f"task counting needs a density model (counting_vgg16, small_counting), not {entry.name}")
    if cfg["task"] == "iqa" and density:
        raise TrainError(f"model {entry.name} outputs density maps; use it with task counting")
    return entry


def build_network(cfg: dict, arch: str, weights: bool = True) -> tuple[torch.nn.Module, list[str]]:
    """(model.arch at model.width, notes): freshly initialised from torch's generator, then loaded
    from model.weights when `weights` and the recipe names a file (a finished checkpoint's own
    weights are loaded by its reader instead)."""
    kwargs = {"width": cfg["model"]["width"]} if cfg["model"]["width"] else {}
    if kwargs and not arch.startswith("small"):
        raise TrainError(f"model.width applies to the small models only, not {arch}")
    model = build_model(arch, **kwargs)
    notes = load_weights(model, arch, cfg["model"]["weights"]) if weights and cfg["model"]["weights"] else []
    return model, notes


def build_criterion(cfg: dict, model, labeled: Split | None) -> torch.nn.Module | None:
    """DCR's loss, which has parameters of its own (one head per annotator); None for the others,
    whose losses are plain functions (losses.py)."""
    if cfg["objective"] != "dcr":
        return None
    n_ann = int(labeled.annotator.max()) + 1 if labeled.annotator is not None else 1
    lc = cfg["loss"]
    return DCRLoss(model.embed_dim, n_ann, lambda1=lc["lambda1"], lambda2=lc["lambda2"], lambda3=lc["lambda3"],
                   gamma=lc["gamma"], disjoint=lc["disjoint"], grl=lc["grl"])


def build_optimizer(cfg: dict, params, device: torch.device):
    """(optimizer, step scheduler, gradient scaler) for `params`."""
    optimizer = make_optimizer(params, cfg["optim"])
    return optimizer, make_scheduler(optimizer, cfg["optim"]), grad_scaler(device, cfg["train"]["amp"])


def place(model, criterion, cfg: dict, d: Dist) -> None:
    """Model and criterion onto the run's device (channels-last on CUDA when asked)."""
    model.to(d.device)
    if criterion is not None:
        criterion.to(d.device)
    if d.device.type == "cuda" and cfg["train"]["channels_last"]:
        model.to(memory_format=torch.channels_last)


def wrap(model, cfg: dict, d: Dist):
    """What the training steps call: the model, under DDP when several processes train it, compiled
    when asked. Evaluation and checkpoints use the bare model."""
    net = model
    if d.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    if cfg["train"]["compile"]:
        net = torch.compile(net)
    return net
