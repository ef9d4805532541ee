"""All-pairs ranking vs a naive two-branch Siamese network on the same batches, and the data
pipeline's throughput next to the model step's.

    python benchmarks/train_allpairs.py                      # CPU, small CNN, 64 px
    python benchmarks/train_allpairs.py --device cuda        # + VGG-16 / ResNet-50 images/s at 224, bf16 AMP

One all-pairs step forwards each image once; the Siamese step forwards both images of every
comparable pair, i.e. n(n-1) forwards for a group of n, so the expected ratio is about n-1.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from rankgen.corpus import Corpus
from train.data import GroupBatchSampler, PatchDataset, RankedIndex
from train.losses import allpairs_rank_loss
from train.models import build_model
from train.testing import make_distort


def timed(fn, repeats: int, device) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


def allpairs_vs_siamese(model, batches, device, margin=1.0, repeats=3):
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)

    def allpairs():
        for x, order in batches:
            opt.zero_grad()
            allpairs_rank_loss(model(x), order, margin, "sum").backward()
            opt.step()

    def siamese():
        for x, order in batches:
            # each comparable pair appears once with l_ij = +1 (i the better image)
            i, j = torch.nonzero(order == 1, as_tuple=True)
            opt.zero_grad()
            F.relu(model(x[j]) - model(x[i]) + margin).sum().backward()
            opt.step()

    ta = timed(allpairs, repeats, device) / len(batches)
    ts = timed(siamese, repeats, device) / len(batches)
    return ta, ts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--levels", type=int, default=5, help="images per group (n)")
    ap.add_argument("--batch", type=int, default=20, help="images per batch")
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        path = make_distort(Path(tmp) / "bench.h5", refs=8, levels=args.levels, size=(96, 128), kinds=("blur",))
        corpus = Corpus(path)
        index = RankedIndex(corpus.groups)
        sampler = GroupBatchSampler(index, args.batch, seed=0)
        ds = PatchDataset(corpus, args.patch)
        loader = DataLoader(ds, batch_sampler=sampler)
        batches = []
        t0 = time.perf_counter()
        n_images = 0
        for _, (x, items) in zip(range(args.steps), loader):
            batches.append((x.to(device), index.order(items.tolist()).to(device)))
            n_images += len(x)
        data_rate = n_images / (time.perf_counter() - t0)

    n = args.levels
    model = build_model("small", width=16).to(device)
    ta, ts = allpairs_vs_siamese(model, batches, device)
    per_batch = len(batches[0][0])
    print(f"batches of {per_batch} images = whole groups of n={n}, {args.patch}px, small CNN on {device}")
    print(f"  all-pairs step    {ta * 1e3:8.1f} ms")
    print(f"  two-branch step   {ts * 1e3:8.1f} ms")
    print(f"  ratio             {ts / ta:8.2f}   (theory: n-1 = {n - 1})")
    print(f"  data pipeline     {data_rate:8.0f} images/s (one process)")
    print(f"  model step        {per_batch / ta:8.0f} images/s (all-pairs)")

    if device.type == "cuda":
        for arch in ("vgg16", "resnet50"):
            net = build_model(arch).to(device).to(memory_format=torch.channels_last)
            opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)
            x = torch.randn(64, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)
            order = torch.sign(torch.arange(64, device=device)[None] - torch.arange(64, device=device)[:, None]).to(torch.int8)

            def step():
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    y = net(x)
                allpairs_rank_loss(y.float(), order, 1.0).backward()
                opt.step()

            t = timed(step, 10, device)
            print(f"  {arch:9s} 224px bf16 AMP, batch 64: {64 / t:8.0f} images/s (train step)")


if __name__ == "__main__":
    main()
