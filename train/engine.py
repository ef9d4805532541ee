"""The one engine every command trains and scores with: device and precision, optimizer, one epoch
of steps, float32 prediction, checkpoints with RNG state.

`train run` (loop.py), `train active` (active.py), `train eval` and `train predict` (evaluate.py)
build their pieces with train.build and their loss, and hand them to these functions; none has a
loop of its own. Read
top to bottom: pick_device -> autocast/GradScaler -> make_optimizer -> train_one_epoch -> labeled_loss
-> predict -> save/load.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from .distributed import Dist, any_rank
from .errors import TrainError
from .losses import counting_loss
from .models import read_torch_file


# -- device and precision ---------------------------------------------------------------------------
def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("train.device=cuda but no CUDA device is available; use --set train.device=cpu")
    return torch.device(name)


def amp_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the GPU has it (Ampere and later); fp16 with loss scaling on older GPUs."""
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, amp: bool):
    """Mixed precision for training steps on CUDA only; prediction never runs under it (see predict)."""
    if device.type == "cuda" and amp:
        return torch.autocast("cuda", dtype=amp_dtype(device))
    return contextlib.nullcontext()


def grad_scaler(device: torch.device, amp: bool) -> torch.amp.GradScaler:
    """Enabled only for fp16, whose small gradients underflow without scaling; a no-op otherwise."""
    on = device.type == "cuda" and amp and amp_dtype(device) == torch.float16
    return torch.amp.GradScaler("cuda", enabled=on)


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    # non_blocking only overlaps the copy when the loader pins memory (pin_memory=True on CUDA).
    x = x.to(device, non_blocking=True)
    if channels_last and device.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


# -- optimizer ----------------------------------------------------------------------------------------
def make_optimizer(params, oc: dict) -> torch.optim.Optimizer:
    """SGD with momentum, as the papers train; Adam (momentum unused) for the small networks the CPU
    active-learning recipes train from scratch, where SGD either diverges or barely moves."""
    if oc["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=oc["lr"], weight_decay=oc["weight_decay"])
    return torch.optim.SGD(params, lr=oc["lr"], momentum=oc["momentum"], weight_decay=oc["weight_decay"])


def make_scheduler(optimizer, oc: dict):
    return torch.optim.lr_scheduler.StepLR(optimizer, oc["step_every"], oc["step_gamma"])


# -- one epoch ------------------------------------------------------------------------------------------
def check_finite(loss: torch.Tensor, parts: dict, step: int, epoch: int, d: Dist | None = None) -> None:
    """Stop at the first non-finite loss, before it reaches the weights: training on would only
    spread nan through every parameter and every later score. Under DDP every rank stops at the
    same step (any_rank), so none is left waiting in the next step's gradient all-reduce."""
    finite = bool(torch.isfinite(loss).all())
    if not (any_rank(not finite, d) if d is not None else not finite):
        return
    terms = ", ".join(f"{k}={v:.4g}" for k, v in parts.items())
    where = f"loss became {loss.item()}" if not finite else "the loss of another process became non-finite"
    # Checkpoints of earlier epochs may exist and hold finite weights; the same name would then
    # need --resume, which refuses another optim.lr: a new name is the advice that always works.
    raise TrainError(f"{where} at step {step} (epoch {epoch}; {terms}); the run diverged and stopped before "
                     "this step reached the weights: lower optim.lr (e.g. --set optim.lr=1e-4) and train under "
                     "a new name (--set name=OTHER)")


def train_one_epoch(loss_fn: Callable, batches: Iterable, optimizer, scaler, *, epoch: int, first_step: int = 0,
                    steps: int | None = None, progress: bool = False, count: Callable = len,
                    d: Dist | None = None) -> dict:
    """loss_fn(batch) -> (loss, parts) for every batch, one optimizer step each.

    Returns the epoch's row: mean loss and mean of each part, images/s, seconds, steps done.
    `count(batch)` gives the images a batch holds (for images/s); `d`, the process group whose
    ranks stop together at a non-finite loss.
    """
    from tqdm import tqdm

    bar = tqdm(batches, total=steps, desc=f"epoch {epoch}", disable=not progress, leave=False, file=sys.stderr)
    total, n, images, sums = 0.0, 0, 0, {}
    t0 = time.perf_counter()
    for batch in bar:
        loss, parts = loss_fn(batch)
        check_finite(loss, parts, first_step + n + 1, epoch, d)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        value = loss.item()
        total += value
        n += 1
        images += count(batch)
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
        if progress:
            bar.set_postfix(loss=f"{value:.4f}", img_s=f"{images / (time.perf_counter() - t0):.0f}")
    elapsed = time.perf_counter() - t0
    row = {"loss": total / max(n, 1), "images_per_s": images / max(elapsed, 1e-9), "seconds": elapsed, "steps": n}
    row.update({f"loss_{k}": v / max(n, 1) for k, v in sums.items()})
    return row


# -- the labeled loss --------------------------------------------------------------------------------------
def labeled_loss(net, batch, target: Callable, device: torch.device, *, counting: bool, amp: bool,
                 channels_last: bool = False, gather: Callable = lambda t: t) -> tuple[torch.Tensor, dict]:
    """Regression (MSE to `target(items)`, the batch's targets on the device) or, for counting,
    Eq. 17 on density maps: the loss of `train run`'s regress/multitask/counting and of every
    `train active` cycle. `gather` joins every DDP process's outputs (the identity on one)."""
    if counting:
        x, dens, _ = batch
        with autocast(device, amp):
            pred = net(to_device(x, device, channels_last), maps=True)
        loss = counting_loss(gather(pred.float()), gather(to_device(dens, device)))
        return loss, {"count": loss.item()}
    x, items = batch
    with autocast(device, amp):
        y = net(to_device(x, device, channels_last))
    loss = F.mse_loss(gather(y.float()), target(items))
    return loss, {"reg": loss.item()}


# -- prediction -------------------------------------------------------------------------------------------
@torch.no_grad()
def predict(model, inputs: Iterable[torch.Tensor], device: torch.device) -> np.ndarray:
    """One score per input (the mean over its crops), in eval mode and float32.

    Never under the training autocast: bf16 keeps 8 bits of mantissa, which turned a DCR model's
    132 test predictions into 3 distinct values.
    """
    model.eval()
    with torch.autocast(device.type, enabled=False):
        out = [model(x.to(device).float()).float().mean().item() for x in inputs]
    return np.array(out, dtype=np.float64)


# -- checkpoints ------------------------------------------------------------------------------------------
def nonfinite_tensors(state: dict) -> list[str]:
    return [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
            and not torch.isfinite(v).all()]


def rng_state() -> dict:
    """Every generator a step may draw from (dropout uses torch's), so a resumed run is the same run.

    Only tensors, numbers and strings: a checkpoint must stay loadable with weights_only=True (a
    best.pt is also a model.weights file)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict | None) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(obj, path: Path) -> None:
    """Write to a temporary name, fsync, then rename: a crash never leaves a torn checkpoint.

    A model whose weights are not finite is refused: such a file could only mislead later."""
    path = Path(path)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        bad = nonfinite_tensors(obj["model"])
        if bad:
            raise TrainError(f"the weights became non-finite ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}); "
                             f"{path.name} was not written: lower optim.lr and train under a new name (--set name=OTHER)")
    tmp = path.with_name(path.name + ".tmp")
    buf = io.BytesIO()
    torch.save(obj, buf)
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path) -> dict:
    """A train checkpoint, its tensors on the CPU whatever device wrote it (read_torch_file maps them)."""
    ck = read_torch_file(path, "checkpoint", weights_only=False)
    if not isinstance(ck, dict) or "model" not in ck or "arch" not in ck or "config" not in ck:
        raise TrainError(f"{path} is not a train checkpoint (use --set model.weights=... for plain weight files)")
    return ck
