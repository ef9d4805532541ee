"""Two gloo processes on halves of each global batch end with the same weights as one process."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from train.config import load_config
from train.distributed import Dist, shutdown
from train.engine import train_one_epoch
from train.loop import Trainer
from train.testing import make_annotate, make_distort

STEPS = 3


def _cfg(tmp, objective):
    corpus = {"rank": f"data.ranked={tmp}/d.h5", "dcr": f"data.labeled={tmp}/a.h5"}[objective]
    return load_config(None, [f"objective={objective}", corpus, "data.build=null", "data.patch=32", "data.heldout=0",
                              "model.width=4", "optim.batch_size=12", "optim.lr=0.05", "train.progress=false"])


def _train(cfg, d: Dist) -> dict:
    trainer = Trainer(cfg, d)
    loader = trainer.data.loaders["ranked" if cfg["objective"] == "rank" else "labeled"]
    pairs = ((b, None) if cfg["objective"] == "rank" else (None, b) for _, b in zip(range(STEPS), loader))
    train_one_epoch(trainer.loss, pairs, trainer.optimizer, trainer.scaler, epoch=1)
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def _worker(rank, tmp, objective):
    os.environ.update(MASTER_ADDR="127.0.0.1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/pg", rank=rank, world_size=2)
    d = Dist(rank, 2, torch.device("cpu"))
    torch.save(_train(_cfg(tmp, objective), d), f"{tmp}/rank{rank}.pt")
    shutdown(d)


@pytest.mark.parametrize("objective", ["rank", "dcr"])
def test_ddp_matches_single_process(tmp_path, objective):
    make_distort(tmp_path / "d.h5", refs=4, levels=4, size=(40, 48))
    make_annotate(tmp_path / "a.h5", refs=4, per_ref=6, annotators=2, size=(40, 48))
    torch.manual_seed(0)
    single = _train(_cfg(tmp_path, objective), Dist())
    mp.spawn(_worker, args=(str(tmp_path), objective), nprocs=2, join=True)
    for rank in (0, 1):
        ddp = torch.load(tmp_path / f"rank{rank}.pt")
        for key, value in single.items():
            torch.testing.assert_close(ddp[key], value, rtol=1e-4, atol=1e-6, msg=f"{key} differs on rank {rank}")
    init = Trainer(_cfg(tmp_path, objective), Dist()).model.state_dict()
    assert any(not torch.equal(init[k], single[k]) for k in single)
