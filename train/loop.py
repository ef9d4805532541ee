"""The training run: corpora -> loaders -> model/criterion/optimizer -> epochs -> run folder."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from . import metrics as M
from .config import _flat, dump
from rankgen.locking import LockHeld, exclusive_lock
from rankgen.seeding import rng_for

from .data import (LABELED_KINDS, DensityDataset, GroupBatchSampler, ItemBatchSampler, PatchDataset, RankedIndex,
                   group_crop_seeds, hold_out_scenes, open_corpus, scene_of, to_tensor)
from .distributed import Dist, barrier, decided_by_main, gather_shards, gather, gather_ints, init_from_env, shutdown
from .errors import TrainError
from .engine import (atomic_save, autocast, grad_scaler, load_checkpoint, make_optimizer, make_scheduler, pick_device,
                     predict, rng_state, set_rng_state, to_device, train_one_epoch)
from .losses import DCRLoss, allpairs_rank_loss, counting_loss
from .models import MODELS, build_model, load_weights


def log(msg: str, d: Dist | None = None) -> None:
    if d is None or d.main:
        print(msg, file=sys.stderr, flush=True)


def build_corpora(cfg: dict, d: Dist) -> None:
    """Run the recipe's `data.build` rankgen commands for the corpora it reads that do not exist yet
    (one that `--set data.ranked=other.h5` replaced is not built)."""
    used = {str(v) for v in cfg["data"].values() if isinstance(v, (str, Path))}
    for path, args in (cfg["data"]["build"] or {}).items():
        if str(path) not in used:
            continue
        path = Path(path)
        if path.exists():
            continue
        if d.main:
            path.parent.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "rankgen", *map(str, args), "-o", str(path)]
            log(f"building {path}: rankgen {' '.join(map(str, args))}")
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if proc.returncode != 0 or not path.exists():
                tail = "\n".join(proc.stdout.strip().splitlines()[-5:])
                raise TrainError(f"building {path} failed (rankgen {' '.join(map(str, args))}):\n{tail}")
        barrier(d)


class Split:
    """Items of a labeled corpus used for one role (training or evaluation), with their targets."""

    def __init__(self, corpus, items: np.ndarray, dataset, target: str):
        self.corpus, self.items, self.dataset = corpus, items, dataset
        self.target = corpus.column(target).astype(np.float32)
        self.annotator = corpus.column("annotator") if "annotator" in corpus.columns() else None


class Trainer:
    def __init__(self, cfg: dict, d: Dist):
        self.cfg, self.d = cfg, d
        self.task, self.objective = cfg["task"], cfg["objective"]
        dc, oc = cfg["data"], cfg["optim"]
        self.entry = MODELS.entry(cfg["model"]["arch"])
        self.density = self.entry.info["output"] == "density"
        if self.task == "counting" and not self.density:
            raise TrainError(f"task counting needs a density model (counting_vgg16, small_counting), not {self.entry.name}")
        if self.task == "iqa" and self.density:
            raise TrainError(f"model {self.entry.name} outputs density maps; use it with task counting")
        torch.manual_seed(cfg["seed"])
        np.random.seed(cfg["seed"] % 2**32)

        # -- data ---------------------------------------------------------------------------
        build_corpora(cfg, d)
        self.ranked = self.ranked_eval = self.labeled = self.labeled_val = self.labeled_eval = None
        self.loaders: dict[str, DataLoader] = {}
        patch = dc["patch"]
        # Pinned host memory is what lets the non_blocking copies of to_device overlap with compute.
        loader_kw = dict(num_workers=dc["workers"], persistent_workers=dc["workers"] > 0,
                         pin_memory=d.device.type == "cuda")
        if dc["ranked"] and self.objective in ("rank", "multitask"):
            kinds = ("crops",) if self.task == "counting" else ("distort",)
            corpus = open_corpus(dc["ranked"], kinds, "ranked")
            groups = corpus.groups
            train_rows, eval_rows = self.split_refs(corpus, groups, dc["heldout"])
            self.ranked = RankedIndex(groups, train_rows)
            self.ranked_eval = RankedIndex(groups, eval_rows) if len(eval_rows) else None
            self.ranked_ds = PatchDataset(corpus, patch, mode="whole" if self.task == "counting" else "crop",
                                          rotate_deg=dc["rotate"], small_images=dc["small_images"], cache_mb=dc["cache_mb"])
            self.ranked_sampler = GroupBatchSampler(self.ranked, oc["batch_size"], cfg["seed"], d.rank, d.world)
            self.loaders["ranked"] = DataLoader(self.ranked_ds, batch_sampler=self.ranked_sampler, **loader_kw)
            corpus.close()
        if dc["labeled"]:
            kinds = LABELED_KINDS[self.objective if self.objective == "dcr" else self.task]
            target = "count" if self.task == "counting" else dc["target"]
            corpus = self.open_labeled(dc["labeled"], kinds, "labeled", target)
            dataset = self.labeled_dataset(corpus)
            train_items, val_items = self.carve_validation(corpus, dc["test"])
            self.labeled = Split(corpus, train_items, dataset, target)
            self.labeled_val = Split(corpus, val_items, dataset, target) if len(val_items) else None
            if dc["test"]:
                test = self.open_labeled(dc["test"], kinds, "test", target)
                self.labeled_eval = Split(test, np.arange(len(test)), self.labeled_dataset(test), target)
                test.close()
            else:
                self.labeled_eval = Split(corpus, np.flatnonzero(corpus.column("split") == "test"), dataset, target)
            if self.objective in ("regress", "multitask", "dcr"):
                batch = oc["batch_size"] if self.objective == "dcr" else oc["labeled_batch"]
                self.labeled_sampler = ItemBatchSampler(self.labeled.items, batch, cfg["seed"], d.rank, d.world)
                self.loaders["labeled"] = DataLoader(self.labeled.dataset, batch_sampler=self.labeled_sampler, **loader_kw)
            corpus.close()
        if not self.loaders:
            raise TrainError(f"objective {self.objective!r} has no training data: set data.ranked or data.labeled")

        # -- model, loss, optimizer ---------------------------------------------------------
        kwargs = {"width": cfg["model"]["width"]} if cfg["model"]["width"] else {}
        if kwargs and not self.entry.name.startswith("small"):
            raise TrainError(f"model.width applies to the small models only, not {self.entry.name}")
        self.model = build_model(self.entry.name, **kwargs)
        self.notes: list[str] = []
        if cfg["model"]["weights"]:
            self.notes += load_weights(self.model, self.entry.name, cfg["model"]["weights"])
            for n in self.notes:
                log(f"note: {n}", d)
        self.criterion = None
        if self.objective == "dcr":
            n_ann = int(self.labeled.annotator.max()) + 1 if self.labeled.annotator is not None else 1
            lc = cfg["loss"]
            self.criterion = DCRLoss(self.model.embed_dim, n_ann, lambda1=lc["lambda1"], lambda2=lc["lambda2"],
                                     lambda3=lc["lambda3"], gamma=lc["gamma"], disjoint=lc["disjoint"], grl=lc["grl"])
        self.device = d.device
        self.model.to(self.device)
        if self.criterion is not None:
            self.criterion.to(self.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda and cfg["train"]["channels_last"]:
            self.model.to(memory_format=torch.channels_last)
        params = list(self.model.parameters()) + (list(self.criterion.parameters()) if self.criterion else [])
        self.optimizer = make_optimizer(params, oc)
        self.scheduler = make_scheduler(self.optimizer, oc)
        self.scaler = grad_scaler(self.device, cfg["train"]["amp"])
        self.net = self.model
        if d.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.cuda else None)
        if cfg["train"]["compile"]:
            self.net = torch.compile(self.net)
        self.epoch = 0
        self.steps = 0
        self.best = -float("inf")
        self.best_epoch = 0
        self.history: list[dict] = []

    # -- helpers -----------------------------------------------------------------------------
    def open_labeled(self, path, kinds, role: str, target: str):
        corpus = open_corpus(path, kinds, role)
        for col in ("split", target):
            if col not in corpus.columns():
                raise TrainError(f"data.{role}: {corpus.path} has no column {col!r}; it has {', '.join(corpus.columns())}")
        return corpus

    def carve_validation(self, corpus, separate_test) -> tuple[np.ndarray, np.ndarray]:
        """(train, validation) items of the labeled corpus's split "train", by scene (scene_of).

        Every choice the run makes (best.pt, early stopping) uses validation; the test split is only
        reported. A training item whose stereo twin is in the test split is left out altogether.
        """
        split = corpus.column("split")
        refs = corpus.column("ref") if "ref" in corpus.columns() else np.arange(len(corpus)).astype(str)
        train = np.flatnonzero(split == "train")
        if not separate_test:
            test_scenes = {scene_of(r) for r in refs[split == "test"]}
            leaked = np.array([scene_of(r) in test_scenes for r in refs[train]], dtype=bool)
            if leaked.any():
                log(f"note: {int(leaked.sum())} training items of {corpus.path} show a scene of the test split "
                    f"({', '.join(sorted({str(r) for r in refs[train[leaked]]})[:4])}); left out of training", self.d)
                train = train[~leaked]
        held = hold_out_scenes(refs[train], self.cfg["data"]["val"], rng_for(self.cfg["seed"], "validation"))
        if self.cfg["data"]["val"] > 0 and not held.any():
            log(f"note: {corpus.path} has one training scene only; no validation split, best.pt follows "
                "the ranked held-out PRA or the training loss", self.d)
        return train[~held], train[held]

    def labeled_dataset(self, corpus):
        dc = self.cfg["data"]
        if self.task == "counting":
            return DensityDataset(corpus, dc["patch"], tuple(dc["scales"]), self.model_stride(), dc["cache_mb"])
        return PatchDataset(corpus, dc["patch"], rotate_deg=dc["rotate"], small_images=dc["small_images"],
                            cache_mb=dc["cache_mb"])

    def model_stride(self) -> int:
        return MODELS.get(self.cfg["model"]["arch"]).stride

    @staticmethod
    def split_refs(corpus, groups: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
        """Hold out whole scenes (all rows of a reference and of its stereo twin), so held-out images
        were never trained on."""
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

    def autocast(self):
        return autocast(self.device, self.cfg["train"]["amp"])

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        return to_device(x, self.device, self.cfg["train"]["channels_last"])

    # -- one optimisation step ---------------------------------------------------------------
    def ranked_loss(self, batch) -> tuple[torch.Tensor, dict]:
        x, items = batch
        with self.autocast():
            y = self.net(self.to_device(x))
        y = gather(y.float(), self.d)
        order = self.ranked.order(gather_ints(items.tolist(), self.d)).to(self.device)
        loss = allpairs_rank_loss(y, order, self.cfg["loss"]["margin"])
        return loss, {"rank": loss.item()}

    def labeled_loss(self, batch) -> tuple[torch.Tensor, dict]:
        if self.task == "counting":
            x, dens, items = batch
            with self.autocast():
                pred = self.net(self.to_device(x), maps=True)
            pred, dens = gather(pred.float(), self.d), gather(self.to_device(dens), self.d)
            loss = counting_loss(pred, dens)
            return loss, {"count": loss.item()}
        x, items = batch
        items = gather_ints(items.tolist(), self.d)
        target = torch.from_numpy(self.labeled.target[items]).to(self.device)
        if self.objective == "dcr":
            with self.autocast():
                y, z = self.net(self.to_device(x), with_embedding=True)
            y, z = gather(y.float(), self.d), gather(z.float(), self.d)
            ann = self.labeled.annotator
            ann = torch.from_numpy(ann[items] if ann is not None else np.zeros(len(items), np.int64))
            return self.criterion(y, z, target, ann.to(self.device))
        with self.autocast():
            y = self.net(self.to_device(x))
        loss = F.mse_loss(gather(y.float(), self.d), target)
        return loss, {"reg": loss.item()}

    def loss(self, batches) -> tuple[torch.Tensor, dict]:
        """The objective on one (ranked, labeled) pair of batches, either may be None."""
        ranked_batch, labeled_batch = batches
        self.net.train()
        loss, parts = 0.0, {}
        if labeled_batch is not None:
            l, p = self.labeled_loss(labeled_batch)
            loss, parts = loss + l, {**parts, **p}
        if ranked_batch is not None:
            l, p = self.ranked_loss(ranked_batch)
            weight = self.cfg["loss"]["lambda"] if labeled_batch is not None else 1.0
            loss, parts = loss + weight * l, {**parts, **p}
        return loss, parts

    # -- epochs ------------------------------------------------------------------------------
    def batches(self):
        """(ranked, labeled) pairs for one epoch; the shorter stream is cycled."""
        n = self.cfg["optim"]["iters_per_epoch"]
        streams = {}
        for name, loader in self.loaders.items():
            loader.batch_sampler.set_epoch(self.epoch)
            streams[name] = loader
        n = n or max(len(l) for l in streams.values())
        iters = {k: iter(v) for k, v in streams.items()}
        passes = {k: 0 for k in streams}
        for _ in range(n):
            out = {}
            for k, loader in streams.items():
                try:
                    out[k] = next(iters[k])
                except StopIteration:
                    passes[k] += 1
                    loader.batch_sampler.set_epoch(self.epoch * 1000 + passes[k])
                    iters[k] = iter(loader)
                    out[k] = next(iters[k])
            yield out.get("ranked"), out.get("labeled")

    def train_epoch(self) -> dict:
        n = self.cfg["optim"]["iters_per_epoch"] or max(len(l) for l in self.loaders.values())
        row = train_one_epoch(self.loss, self.batches(), self.optimizer, self.scaler, epoch=self.epoch + 1,
                              first_step=self.steps, steps=n, progress=self.d.main and self.cfg["train"]["progress"],
                              count=lambda b: sum(len(x[0]) for x in b if x is not None) * self.d.world)
        self.steps += row.pop("steps")
        self.scheduler.step()
        return {"epoch": self.epoch + 1, "loss": row.pop("loss"), "lr": self.optimizer.param_groups[0]["lr"], **row}

    # -- evaluation --------------------------------------------------------------------------
    def predict_items(self, dataset, items: np.ndarray, n_crops: int, seeds: np.ndarray | None = None) -> np.ndarray:
        """Scores of `items`, each process scoring every world-th one (no rank idles at a barrier
        while another evaluates alone, which a long evaluation turns into an NCCL timeout)."""
        mine = np.arange(self.d.rank, len(items), self.d.world)

        def inputs():
            for k in mine:
                item = items[k]
                if self.task == "counting" and isinstance(dataset, DensityDataset):
                    yield to_tensor(dataset.cache(int(item)))[None]
                else:
                    yield dataset.test_crops(int(item), n_crops, seed=int(item if seeds is None else seeds[k]))
        return np.array(gather_shards(predict(self.model, inputs(), self.device).tolist(), self.d), dtype=np.float64)

    def evaluate(self) -> dict:
        res = {}
        dc = self.cfg["data"]
        if self.ranked_eval is not None:
            groups = self.ranked_eval.groups
            items, seeds = group_crop_seeds(groups)
            pred = np.full(int(items.max()) + 1, np.nan)
            pred[items] = self.predict_items(self.ranked_ds, items, dc["test_crops"], seeds)
            res["heldout_pra"] = M.pra_groups(pred, groups)
        if self.labeled_val is not None:
            res.update({f"val_{k}": v for k, v in self.labeled_metrics(self.labeled_val).items()})
        if self.labeled_eval is not None and len(self.labeled_eval.items):
            res.update(self.labeled_metrics(self.labeled_eval))
        return res

    def labeled_metrics(self, split: Split) -> dict:
        items = split.items
        pred = self.predict_items(split.dataset, items, self.cfg["data"]["test_crops"])
        y = split.target[items]
        if M.collapsed(pred):
            log(f"warning: the {len(pred)} predictions on {split.corpus.path.name} have collapsed (std "
                f"{pred.std():.2g}): the network outputs one value for every image; for dcr raise loss.gamma "
                "(e.g. 0.1) or loss.lambda1, else lower optim.lr", self.d)
        if self.task == "counting":
            return {"mae": M.mae(y, pred), "rmse": M.rmse(y, pred)}
        res = M.per_annotator(y, pred, split.annotator[items] if split.annotator is not None else None)
        if "true_score" in split.corpus.columns():
            true = split.corpus.column("true_score")[items]
            res.update(lcc_true=M.lcc(true, pred), srocc_true=M.srocc(true, pred))
        return res

    def key_metric(self, res: dict) -> float:
        """The score best.pt maximizes: the first of these the run reports, nan when undefined
        (a nan never counts as an improvement; falling back to another key would compare apples
        with pears across epochs). Only data carved from training: never the test split."""
        for key, sign in (("val_srocc", 1), ("val_mae", -1), ("heldout_pra", 1)):
            if key in res:
                return sign * res[key]
        return -self.history[-1]["loss"] if self.history else -float("inf")

    # -- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "arch": self.entry.name, "config": self.cfg, "epoch": self.epoch, "best": self.best, "best_epoch": self.best_epoch,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "history": self.history,
            "criterion": self.criterion.state_dict() if self.criterion else None,
            "scaler": self.scaler.state_dict(), "steps": self.steps, "rng": rng_state(),
        }

    def restore(self, ck: dict) -> None:
        if ck["arch"] != self.entry.name:
            raise TrainError(f"cannot resume: the checkpoint is of model {ck['arch']!r}, the recipe builds {self.entry.name!r}")
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        if self.criterion is not None and ck.get("criterion"):
            self.criterion.load_state_dict(ck["criterion"])
        self.epoch, self.best, self.history = ck["epoch"], ck["best"], ck["history"]
        self.best_epoch, self.steps = ck.get("best_epoch", 0), ck.get("steps", 0)
        if ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
        set_rng_state(ck.get("rng"))


def write_metrics(history: list[dict], run_dir: Path) -> None:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    tmp = run_dir / "metrics.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, run_dir / "metrics.csv")


def plot_curves(history: list[dict], run_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    evals = [k for k in history[-1] if k.startswith(("heldout_", "srocc", "plcc", "pra", "lcc", "mae", "rmse"))]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].plot(epochs, [r["loss"] for r in history], label="train loss")
    axes[0].set_xlabel("epoch")
    axes[0].legend()
    for k in evals:
        axes[1].plot(epochs, [r.get(k, np.nan) for r in history], label=k)
    axes[1].set_xlabel("epoch")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(run_dir / "curves.png", dpi=80)
    plt.close(fig)


def tensorboard_writer(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional: tensorboard is not a dependency
        return None
    return SummaryWriter(str(run_dir / "tb"))


def run(cfg: dict, resume: bool = False) -> dict:
    """Train per the resolved config; return the last evaluation (printed by the CLI)."""
    d = init_from_env(pick_device(cfg["train"]["device"]))
    run_dir = Path(cfg["out"]) / cfg["name"]
    lock = None
    if d.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = lock_run_dir(run_dir)
    try:
        result = _run(cfg, resume, d)
    finally:
        if lock is not None:
            lock.close()
    shutdown(d)
    return result


# What a resumed run may change: how long it runs and how it is executed, never what it trains.
RESUMABLE = ("optim.epochs", "optim.patience", "data.workers", "data.cache_mb", "data.build")


def resume_mismatch(saved: dict, cfg: dict) -> list[str]:
    old, new = _flat(saved), _flat(cfg)
    return sorted(k for k in set(old) | set(new)
                  if old.get(k) != new.get(k) and k not in RESUMABLE and not k.startswith("train."))


def lock_run_dir(run_dir: Path):
    """Lock runs/<name>/.lock for the whole run: a second `train run` on the same folder (say a
    --resume while the first still trains) stops at once instead of interleaving checkpoints."""
    try:
        return exclusive_lock(run_dir / ".lock")
    except LockHeld as held:
        raise TrainError(f"another process (pid {held.owner}) is training in {run_dir}; wait for it to finish "
                         "or choose another --set name=...") from None


def _run(cfg: dict, resume: bool, d: Dist) -> dict:
    run_dir = Path(cfg["out"]) / cfg["name"]
    last = run_dir / "last.pt"
    if d.main:
        if last.exists() and not resume:
            raise TrainError(f"{run_dir} already holds a run; pass --resume to continue it or --set name=OTHER")
    barrier(d)
    ck = None
    if resume and last.exists():
        ck = load_checkpoint(last)
        changed = resume_mismatch(ck["config"], cfg)
        if changed:
            raise TrainError(f"--resume: {run_dir} was trained with other settings ({', '.join(changed)}); "
                             "only optim.epochs, optim.patience, data.workers and train.* may change, "
                             "or start a new run with --set name=OTHER")
    elif resume:
        # The same command works before and after the first checkpoint: nothing to continue yet.
        log(f"--resume: {run_dir} has no checkpoint yet; starting from the first epoch", d)
    if d.main:
        (run_dir / "config.yaml").write_text(dump(cfg))
    trainer = Trainer(cfg, d)
    if ck is not None:
        trainer.restore(ck)
        log(f"resumed {run_dir} after epoch {trainer.epoch}", d)
    tb = tensorboard_writer(run_dir) if d.main else None
    res: dict = {}
    while trainer.epoch < cfg["optim"]["epochs"]:
        row = trainer.train_epoch()
        trainer.epoch += 1
        res = trainer.evaluate()
        if d.main:
            row.update(res)
            trainer.history.append(row)
            score = trainer.key_metric(res)
            shown = "  ".join(f"{k}={v:.4g}" for k, v in row.items() if k not in ("epoch", "lr", "seconds"))
            log(f"epoch {trainer.epoch}: {shown}")
            improved = bool(np.isfinite(score) and score > trainer.best)
            if improved:
                trainer.best, trainer.best_epoch = score, trainer.epoch
            state = trainer.state()
            atomic_save(state, last)
            if improved:
                atomic_save(state, run_dir / "best.pt")
            write_metrics(trainer.history, run_dir)
            plot_curves(trainer.history, run_dir)
            if tb is not None:
                for k, v in row.items():
                    if k != "epoch":
                        tb.add_scalar(k, v, trainer.epoch)
        barrier(d)
        patience = cfg["optim"]["patience"]
        if decided_by_main(bool(patience) and trainer.epoch - trainer.best_epoch >= patience, d):
            log(f"early stop: no better validation score for {patience} epochs (best: epoch {trainer.best_epoch})", d)
            break
    if tb is not None:
        tb.close()
    if d.main and trainer.history:
        res = {k: v for k, v in trainer.history[-1].items()}
    return {"run_dir": str(run_dir), **res}
