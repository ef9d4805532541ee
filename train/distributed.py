"""Process group setup under torchrun and a differentiable gather of per-process outputs.

Losses are computed on the outputs of the whole global batch (all comparable pairs, all DCR
pairs), identically in every process. The gather's backward returns world_size x the local slice
of the gradient, so after DDP averages parameter gradients the result is exactly the gradient of
one process on the same global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_from_env(device: torch.device) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(0, 1, device)
    if device.type == "cuda":
        # The device first, then a group bound to it: NCCL then creates its communicator on the
        # right GPU instead of guessing one per rank (and warning about it).
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        if device.type == "cuda":
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), device)


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, sizes, world, rank):
        ctx.sizes, ctx.world, ctx.rank = sizes, world, rank
        pad = max(sizes) - x.shape[0]
        padded = torch.cat([x, x.new_zeros(pad, *x.shape[1:])]) if pad else x.contiguous()
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        return torch.cat([p[:n] for p, n in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad):
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]] * ctx.world, None, None, None


def _sizes(n: int, d: Dist) -> list[int]:
    t = torch.tensor([n], device=d.device)
    out = [torch.zeros_like(t) for _ in range(d.world)]
    dist.all_gather(out, t)
    return [int(s) for s in out]


def gather(x: torch.Tensor, d: Dist) -> torch.Tensor:
    """Concatenate x of every process in rank order; gradients flow back to each process's slice."""
    if d.world == 1:
        return x
    return _Gather.apply(x, _sizes(x.shape[0], d), d.world, d.rank)


def gather_ints(values: list[int], d: Dist) -> list[int]:
    if d.world == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.int64, device=d.device)
    return gather(t, d).tolist()


def decided_by_main(flag: bool, d: Dist) -> bool:
    """The main process's flag in every process (a choice made from rank-0 state, e.g. early stop)."""
    if d.world == 1:
        return flag
    t = torch.tensor([int(flag)], device=d.device)
    dist.broadcast(t, 0)
    return bool(t.item())


def any_rank(flag: bool, d: Dist) -> bool:
    """True in every process when `flag` is true in any: a condition one rank sees (a non-finite
    loss) stops them all at the same step, instead of one raising while the others wait in the
    next collective."""
    if d.world == 1:
        return flag
    t = torch.tensor([int(flag)], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def main_decides(fn, d: Dist):
    """fn() on the main process only (work done once: checks of the run folder, building a corpus,
    writing checkpoints), its failure raised in every process.

    Without this, an error on rank 0 leaves the other ranks blocked in their next collective until
    the NCCL timeout. A TrainError reaches every rank with its message; any other exception is
    re-raised on rank 0 and reported as a TrainError naming it on the others. Returns fn's result
    on the main process, None elsewhere.
    """
    from .errors import TrainError

    result, error = None, None
    if d.main:
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - every failure must reach the other ranks
            error = exc
    if d.world > 1:
        box = [None if error is None else (isinstance(error, TrainError), str(error) or type(error).__name__)]
        dist.broadcast_object_list(box, 0)
        if not d.main and box[0] is not None:
            is_train_error, message = box[0]
            raise TrainError(message if is_train_error else f"the main process (rank 0) failed: {message}")
    if error is not None:
        raise error
    return result


def gather_shards(local: list, d: Dist) -> list:
    """Items shared out as items[rank::world] and processed locally, back in the original order."""
    if d.world == 1:
        return local
    parts = [None] * d.world
    dist.all_gather_object(parts, local)
    out = [None] * sum(len(p) for p in parts)
    for r, p in enumerate(parts):
        out[r::d.world] = p
    return out


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


def shutdown(d: Dist) -> None:
    """End a process group cleanly; call after the objects that used it (DDP models) are released.

    A DDP model keeps its process group alive after destroy_process_group, and a gloo group torn
    down at interpreter exit, or by one rank while the other is still communicating, aborts the
    process (SIGABRT, "terminate called without an active exception"). So: collect the garbage that
    may still hold the group, wait for every rank, then destroy.
    """
    if d.world == 1 or not dist.is_initialized():
        return
    import gc

    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
