"""Two gloo processes: on halves of each global batch they end with the same weights as one process;
each saves and restores its own RNG state; an error one rank decides stops both."""

import os
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from train.config import load_config
from train.distributed import Dist, shutdown
from train.engine import train_one_epoch
from train.errors import TrainError
from train.loop import Trainer
from train.testing import make_annotate, make_distort

STEPS = 3


def _cfg(tmp, objective):
    corpus = f"data.ranked={tmp}/d.h5" if objective == "rank" else f"data.labeled={tmp}/a.h5"
    return load_config(None, [f"objective={objective}", corpus, "data.build=null", "data.patch=32", "data.heldout=0",
                              "model.width=4", "optim.batch_size=12", "optim.labeled_batch=12", "optim.lr=0.05",
                              "train.progress=false"])


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


@pytest.mark.parametrize("objective", ["rank", "regress", "dcr"])
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


# -- what a rank decides alone must reach every rank -------------------------------------------------
def _spawn(tmp, scenario, timeout=240):
    """Run `scenario(rank, tmp)` in two gloo processes; {rank: outcome} where an outcome is "ok" or
    the exception's type and message. A rank left waiting in a collective fails the test by
    timeout instead of hanging it."""
    ctx = mp.spawn(_scenario_worker, args=(str(tmp), scenario), nprocs=2, join=False)
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"{scenario.__name__}: a rank hung (outcomes so far: {_outcomes(tmp)})")
    return _outcomes(tmp)


def _outcomes(tmp):
    return {r: (Path(tmp) / f"outcome{r}.txt").read_text() for r in (0, 1) if (Path(tmp) / f"outcome{r}.txt").exists()}


def _scenario_worker(rank, tmp, scenario):
    os.environ.update(MASTER_ADDR="127.0.0.1", WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    for stale in Path(tmp).glob(f"outcome{rank}.txt"):
        stale.unlink()
    dist.init_process_group("gloo", init_method=f"file://{tmp}/pg{scenario.__name__}", rank=rank, world_size=2)
    try:
        scenario(rank, tmp)
        outcome = "ok"
    except Exception as exc:  # noqa: BLE001 - the outcome is what the test checks
        outcome = f"{type(exc).__name__}: {exc}"
    (Path(tmp) / f"outcome{rank}.txt").write_text(outcome)
    if dist.is_initialized():
        shutdown(Dist(rank, 2, torch.device("cpu")))


def _run_cfg(tmp, *extra):
    return load_config(None, [f"data.ranked={tmp}/d.h5", "data.build=null", "data.patch=32", "data.heldout=0.5",
                              "data.test_crops=2", "model.width=4", "optim.batch_size=12", "optim.epochs=2",
                              "optim.iters_per_epoch=2", "train.progress=false", "train.device=cpu",
                              f"out={tmp}/runs", "name=ddp", *extra])


def _train_two_epochs(rank, tmp):
    from train import loop

    evaluate = loop.Trainer.evaluate

    def evaluate_then_draw(self):
        # Each rank draws a different amount from torch's generator, as dropout or augmentation
        # on different shards would: the ranks' states differ at the checkpoint.
        res = evaluate(self)
        torch.rand(1 + 7 * self.d.rank)
        return res

    loop.Trainer.evaluate = evaluate_then_draw
    loop.run(_run_cfg(tmp))


def _resume_one_epoch(rank, tmp):
    from train import loop

    restore = loop.Trainer.restore

    def restore_and_record(self, ck):
        restore(self, ck)
        torch.save(torch.get_rng_state(), f"{tmp}/restored{self.d.rank}.pt")

    loop.Trainer.restore = restore_and_record
    loop.run(_run_cfg(tmp, "optim.epochs=3"), resume=True)


def test_every_rank_saves_and_restores_its_own_rng_state(tmp_path):
    make_distort(tmp_path / "d.h5", refs=4, levels=4, size=(40, 48))
    assert _spawn(tmp_path, _train_two_epochs) == {0: "ok", 1: "ok"}
    ck = torch.load(tmp_path / "runs" / "ddp" / "last.pt", weights_only=True)
    assert len(ck["rng"]) == 2 and not torch.equal(ck["rng"][0]["torch"], ck["rng"][1]["torch"])
    assert _spawn(tmp_path, _resume_one_epoch) == {0: "ok", 1: "ok"}
    for rank in (0, 1):
        assert torch.equal(torch.load(tmp_path / f"restored{rank}.pt"), ck["rng"][rank]["torch"])
    # A checkpoint written before issue #15 holds rank 0's state alone, which every rank restores.
    trainer = Trainer(_run_cfg(tmp_path), Dist())
    torch.manual_seed(123)
    trainer.restore({**ck, "rng": ck["rng"][1]})
    assert torch.equal(torch.get_rng_state(), ck["rng"][1]["torch"])


def _rerun_without_resume(rank, tmp):
    from train import loop

    loop.run(_run_cfg(tmp))


def _nan_on_rank_1(rank, tmp):
    from train.engine import check_finite

    loss = torch.tensor(float("nan") if rank == 1 else 1.0)
    check_finite(loss, {"rank": loss.item()}, step=3, epoch=1, d=Dist(rank, 2, torch.device("cpu")))


def _main_fails(rank, tmp):
    from train.distributed import main_decides

    d = Dist(rank, 2, torch.device("cpu"))

    def refuse():
        raise TrainError("the weights became non-finite; last.pt was not written")

    main_decides(refuse, d)


def _main_disk_full(rank, tmp):
    from train.distributed import main_decides

    def write():
        raise OSError(28, "No space left on device")

    main_decides(write, Dist(rank, 2, torch.device("cpu")))


def test_errors_decided_on_one_rank_stop_every_rank(tmp_path):
    make_distort(tmp_path / "d.h5", refs=4, levels=4, size=(40, 48))
    (tmp_path / "runs" / "ddp").mkdir(parents=True)
    (tmp_path / "runs" / "ddp" / "last.pt").write_bytes(b"")
    out = _spawn(tmp_path, _rerun_without_resume)
    assert out[0] == out[1] and out[0].startswith("TrainError:") and "--resume" in out[0]
    out = _spawn(tmp_path, _nan_on_rank_1)
    assert out[0].startswith("TrainError: the loss of another process became non-finite at step 3")
    assert out[1].startswith("TrainError: loss became nan at step 3")
    out = _spawn(tmp_path, _main_fails)
    assert out[0] == out[1] == "TrainError: the weights became non-finite; last.pt was not written"
    out = _spawn(tmp_path, _main_disk_full)
    assert out[0].startswith("OSError:") and out[1].startswith("TrainError: the main process (rank 0) failed:")
    assert "No space left on device" in out[1]
