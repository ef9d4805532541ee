"""`train run`: the pieces of train.build -> epochs of engine.train_one_epoch -> evaluation -> run folder."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch

from rankgen.locking import LockHeld, exclusive_lock

from . import metrics as M
from .build import Split, build_criterion, build_data, build_network, build_optimizer, log, model_entry, place, wrap
from .config import _flat, dump
from .data import DensityDataset, group_crop_seeds, to_tensor
from .distributed import (Dist, decided_by_main, gather, gather_ints, gather_shards, init_from_env,
                          main_decides, shutdown)
from .engine import (atomic_save, autocast, labeled_loss, load_checkpoint, pick_device, predict, rng_state,
                     set_rng_state, to_device, train_one_epoch)
from .errors import TrainError
from .losses import allpairs_rank_loss


class Trainer:
    """`train run`'s engine: the pieces of train.build, the objective's loss on a pair of batches,
    epochs through engine.train_one_epoch, evaluation, and the checkpoint state."""

    def __init__(self, cfg: dict, d: Dist):
        self.cfg, self.d = cfg, d
        self.task, self.objective = cfg["task"], cfg["objective"]
        self.entry = model_entry(cfg)
        torch.manual_seed(cfg["seed"])
        np.random.seed(cfg["seed"] % 2**32)
        self.data = build_data(cfg, d)
        self.model, self.notes = build_network(cfg, self.entry.name)
        for n in self.notes:
            log(f"note: {n}", d)
        self.criterion = build_criterion(cfg, self.model, self.data.labeled)
        self.device = d.device
        place(self.model, self.criterion, cfg, d)
        params = list(self.model.parameters()) + (list(self.criterion.parameters()) if self.criterion else [])
        self.optimizer, self.scheduler, self.scaler = build_optimizer(cfg, params, self.device)
        self.net = wrap(self.model, cfg, d)
        self.epoch = 0
        self.steps = 0
        self.best = -float("inf")
        self.best_epoch = 0
        self.history: list[dict] = []

    # -- helpers -----------------------------------------------------------------------------
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
        order = self.data.ranked.order(gather_ints(items.tolist(), self.d)).to(self.device)
        loss = allpairs_rank_loss(y, order, self.cfg["loss"]["margin"])
        return loss, {"rank": loss.item()}

    def labeled_target(self, items: torch.Tensor) -> torch.Tensor:
        items = gather_ints(items.tolist(), self.d)
        return torch.from_numpy(self.data.labeled.target[items]).to(self.device)

    def labeled_loss(self, batch) -> tuple[torch.Tensor, dict]:
        if self.objective != "dcr":
            tc = self.cfg["train"]
            return labeled_loss(self.net, batch, self.labeled_target, self.device, counting=self.task == "counting",
                                amp=tc["amp"], channels_last=tc["channels_last"], gather=lambda t: gather(t, self.d))
        x, items = batch
        items = gather_ints(items.tolist(), self.d)
        target = torch.from_numpy(self.data.labeled.target[items]).to(self.device)
        with self.autocast():
            y, z = self.net(self.to_device(x), with_embedding=True)
        y, z = gather(y.float(), self.d), gather(z.float(), self.d)
        ann = self.data.labeled.annotator
        ann = torch.from_numpy(ann[items] if ann is not None else np.zeros(len(items), np.int64))
        return self.criterion(y, z, target, ann.to(self.device))

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
        for name, loader in self.data.loaders.items():
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
        n = self.cfg["optim"]["iters_per_epoch"] or max(len(l) for l in self.data.loaders.values())
        row = train_one_epoch(self.loss, self.batches(), self.optimizer, self.scaler, epoch=self.epoch + 1,
                              first_step=self.steps, steps=n, progress=self.d.main and self.cfg["train"]["progress"],
                              count=lambda b: sum(len(x[0]) for x in b if x is not None) * self.d.world,
                              d=self.d)
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
        if self.data.ranked_eval is not None:
            groups = self.data.ranked_eval.groups
            items, seeds = group_crop_seeds(groups)
            pred = np.full(int(items.max()) + 1, np.nan)
            pred[items] = self.predict_items(self.data.ranked_ds, items, dc["test_crops"], seeds)
            res["heldout_pra"] = M.pra_groups(pred, groups)
        if self.data.labeled_val is not None:
            res.update({f"val_{k}": v for k, v in self.labeled_metrics(self.data.labeled_val, "validation").items()})
        if self.data.labeled_eval is not None and len(self.data.labeled_eval.items):
            res.update(self.labeled_metrics(self.data.labeled_eval, "test"))
        return res

    def labeled_metrics(self, split: Split, role: str) -> dict:
        items = split.items
        pred = self.predict_items(split.dataset, items, self.cfg["data"]["test_crops"])
        y = split.target[items]
        if M.collapsed(pred):
            log(f"warning: the {len(pred)} {role} predictions ({split.corpus.path.name}) have collapsed (std "
                f"{pred.std():.2g}): the network outputs one value for every image; for dcr raise loss.gamma "
                "(e.g. 0.1) or loss.lambda1, else lower optim.lr", self.d)
        if self.task == "counting":
            return {"mae": M.mae(y, pred), "rmse": M.rmse(y, pred)}
        true = split.corpus.column("true_score")[items] if "true_score" in split.corpus.columns() else None
        return M.labeled_scores(y, pred, split.annotator[items] if split.annotator is not None else None, true)

    def key_metric(self, res: dict) -> float:
        """The score best.pt maximizes: the first of these the run reports, nan when undefined
        (a nan never counts as an improvement; falling back to another key would compare apples
        with pears across epochs). Only data carved from training: never the test split."""
        for key, sign in (("val_srocc", 1), ("val_mae", -1), ("heldout_pra", 1)):
            if key in res:
                return sign * res[key]
        return -self.history[-1]["loss"] if self.history else -float("inf")

    # -- checkpoints -------------------------------------------------------------------------
    def rng_states(self) -> list[dict]:
        """Every process's RNG state, by rank (collective: call it on every rank). Each rank draws
        from its own generators (dropout, augmentation), so a resumed DDP run needs all of them."""
        return gather_shards([rng_state()], self.d)

    def state(self, rngs: list[dict]) -> dict:
        return {
            "arch": self.entry.name, "config": self.cfg, "epoch": self.epoch, "best": self.best, "best_epoch": self.best_epoch,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "history": self.history,
            "criterion": self.criterion.state_dict() if self.criterion else None,
            "scaler": self.scaler.state_dict(), "steps": self.steps, "rng": rngs,
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
        rng = ck.get("rng")
        if isinstance(rng, list):
            # One state per rank; a run resumed on more processes than saved them starts the extra
            # ranks from rank 0's (their data shards differ anyway: it is not the same run).
            rng = rng[self.d.rank] if self.d.rank < len(rng) else rng[0]
        # Checkpoints written before issue #15 hold rank 0's state only: every rank restores it.
        set_rng_state(rng)


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

    def claim():
        run_dir.mkdir(parents=True, exist_ok=True)
        return lock_run_dir(run_dir)

    lock = main_decides(claim, d)
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

    def check_fresh():
        if last.exists() and not resume:
            raise TrainError(f"{run_dir} already holds a run; pass --resume to continue it or --set name=OTHER")

    main_decides(check_fresh, d)
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
    main_decides(lambda: (run_dir / "config.yaml").write_text(dump(cfg)), d)
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
        rngs = trainer.rng_states()

        def record(row=row, res=res, rngs=rngs):
            """The epoch's row, best.pt choice, checkpoints and curves: the main process's work."""
            row.update(res)
            trainer.history.append(row)
            score = trainer.key_metric(res)
            shown = "  ".join(f"{k}={v:.4g}" for k, v in row.items() if k not in ("epoch", "lr", "seconds"))
            log(f"epoch {trainer.epoch}: {shown}")
            improved = bool(np.isfinite(score) and score > trainer.best)
            if improved:
                trainer.best, trainer.best_epoch = score, trainer.epoch
            state = trainer.state(rngs)
            atomic_save(state, last)
            if improved:
                atomic_save(state, run_dir / "best.pt")
            write_metrics(trainer.history, run_dir)
            plot_curves(trainer.history, run_dir)
            if tb is not None:
                for k, v in row.items():
                    if k != "epoch":
                        tb.add_scalar(k, v, trainer.epoch)

        # A checkpoint refused (non-finite weights) or a full disk stops every rank, not rank 0 alone.
        main_decides(record, d)
        patience = cfg["optim"]["patience"]
        if decided_by_main(bool(patience) and trainer.epoch - trainer.best_epoch >= patience, d):
            log(f"early stop: no better validation score for {patience} epochs (best: epoch {trainer.best_epoch})", d)
            break
    if tb is not None:
        tb.close()
    if d.main and trainer.history:
        res = {k: v for k, v in trainer.history[-1].items()}
    return {"run_dir": str(run_dir), **res}
