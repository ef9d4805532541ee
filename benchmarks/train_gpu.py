"""CUDA training throughput: VGG-16 and ResNet-50 at 224 px, bf16 autocast, channels-last, with and
without torch.compile (images/s and peak memory), then one short `train run` on CUDA end to end.

    python benchmarks/train_gpu.py [--steps 30] [--batch 64] [--no-compile]

Needs a CUDA GPU; without one it says so and exits 1. It has not been run yet (docs/benchmarks.md).
Each configuration: a few warm-up steps (compilation happens there), then `--steps` timed steps
with synthetic inputs and the all-pairs ranking loss, synchronised before reading the clock.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bench(arch: str, batch: int, steps: int, compile_: bool, warmup: int) -> dict:
    import torch

    from train.engine import amp_dtype, autocast, grad_scaler, make_optimizer
    from train.losses import allpairs_rank_loss
    from train.models import build_model

    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build_model(arch).to(device).to(memory_format=torch.channels_last)
    net = torch.compile(model) if compile_ else model
    opt = make_optimizer(model.parameters(), {"optimizer": "sgd", "lr": 1e-4, "momentum": 0.9, "weight_decay": 5e-4})
    scaler = grad_scaler(device, True)
    x = torch.randn(batch, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)
    # Groups of 6 (a reference and 5 levels), as the ranked corpora give.
    group = torch.arange(batch, device=device) // 6
    rank = torch.arange(batch, device=device) % 6
    order = torch.where(group[:, None] == group[None, :], torch.sign(rank[None, :] - rank[:, None]), 0).to(torch.int8)
    torch.cuda.reset_peak_memory_stats()

    def step():
        with autocast(device, True):
            y = net(x)
        loss = allpairs_rank_loss(y.float(), order, 1.0)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    return {"arch": arch, "compile": compile_, "dtype": str(amp_dtype(device)).replace("torch.", ""),
            "images_per_s": batch * steps / elapsed, "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
            "warmup_s": warm_s}


def short_run() -> tuple[int, float, str]:
    """`train run` of the small default recipe on CUDA, on a synthetic corpus: exit code, seconds, tail."""
    from train.testing import make_distort

    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_distort(Path(tmp) / "d.h5", refs=8, levels=5, size=(96, 128))
        cmd = [sys.executable, "-m", "train", "run"]
        for s in (f"data.ranked={corpus}", "data.build=null", f"out={tmp}/runs", "train.device=cuda", "optim.epochs=2",
                  "optim.iters_per_epoch=20", "train.progress=false", "data.workers=2"):
            cmd += ["--set", s]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
        return proc.returncode, time.perf_counter() - t0, tail


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("train_gpu.py needs a CUDA GPU and this machine has none; nothing was measured", file=sys.stderr)
        return 1
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  batch {args.batch}  "
          f"steps {args.steps}  load average {os.getloadavg()[0]:.2f}")
    print(f"{'model':10} {'compile':8} {'autocast':9} {'images/s':>9} {'peak GiB':>9} {'warm-up s':>10}")
    for arch in ("vgg16", "resnet50"):
        for compile_ in (False, True) if not args.no_compile else (False,):
            r = bench(arch, args.batch, args.steps, compile_, args.warmup)
            print(f"{r['arch']:10} {str(r['compile']):8} {r['dtype']:9} {r['images_per_s']:9.0f} {r['peak_gib']:9.2f} "
                  f"{r['warmup_s']:10.1f}")
            torch.cuda.empty_cache()
    rc, seconds, tail = short_run()
    print(f"train run on cuda: exit {rc} in {seconds:.1f} s\n{tail}")
    return 0 if rc == 0 else 2


if __name__ == "__main__":
    sys.exit(main())
