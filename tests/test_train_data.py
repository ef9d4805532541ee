import os
from pathlib import Path

import numpy as np
import pytest
import torch

from rankgen.corpus import Corpus
from train.data import GroupBatchSampler, PatchDataset, RankedIndex, fit_small, group_crop_seeds
from train.testing import make_distort


def test_group_batches_hold_whole_rows_and_share_crops(tmp_path):
    corpus = Corpus(make_distort(tmp_path / "d.h5", refs=4, levels=4))
    index = RankedIndex(corpus.groups)
    assert index.row_len == 4  # read from the table
    sampler = GroupBatchSampler(index, batch_images=9, seed=0)
    assert sampler.rows_per_batch == 2
    seen_rows = 0
    for keys in sampler:
        items = [k[0] for k in keys]
        assert len(items) == len(set(items))
        rows = [r for r in corpus.groups if set(r) <= set(items)]
        seen_rows += len(rows)
        # every row is complete and cut at one window
        for r in rows:
            assert len({dict(keys)[i] for i in r}) == 1
        # every pair inside each row is comparable, levels of different rows are not
        order = index.order(items)
        assert int((order != 0).sum()) // 2 == 6 * len(rows)
    assert seen_rows == len(corpus.groups)


def test_order_matrix_signs(tmp_path):
    index = RankedIndex(np.array([[0, 1, 2], [0, 3, 4], [5, 6, -1]]))
    o = index.order([2, 0, 3, 6, 5])
    assert o[1, 0] == 1 and o[0, 1] == -1 and o[1, 2] == 1
    assert o[0, 2] == 0  # levels of different series are not comparable
    assert o[4, 3] == 1 and o[3, 0] == 0


def test_patches_are_cut_not_rescaled(tmp_path):
    corpus = Corpus(make_distort(tmp_path / "d.h5", refs=1, levels=2, size=(40, 41)))
    ds = PatchDataset(corpus, 32)
    x, item = ds[(0, 7)]
    assert x.shape == (3, 32, 32) and item == 0
    img = torch.from_numpy(corpus.image(0)).permute(2, 0, 1).float() / 255
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    raw = x * std + mean
    found = any(torch.allclose(raw, img[:, y : y + 32, x0 : x0 + 32], atol=1e-5) for y in range(9) for x0 in range(9))
    assert found
    assert torch.equal(ds[(0, 7)][0], ds[(0, 7)][0])
    rot = PatchDataset(corpus, 24, rotate_deg=45)
    assert rot[(0, 3)][0].shape == (3, 24, 24)


def test_small_images_are_padded_or_resized():
    img = np.arange(20 * 10 * 3, dtype=np.uint8).reshape(20, 10, 3)
    assert fit_small(img, 16, "reflect").shape == (20, 16, 3)
    assert fit_small(img, 16, "resize").shape[:2] == (32, 16)


def test_group_crop_seeds_follow_anchor():
    items, seeds = group_crop_seeds(np.array([[0, 1, 2], [0, 3, -1]]))
    assert items.tolist() == [0, 1, 2, 3] and seeds.tolist() == [0, 0, 0, 0]


def test_loader_workers_die_with_a_killed_trainer(tmp_path):
    """They share the trainer's run-folder lock; torch's own watchdog lets them outlive a kill -9 by
    seconds, long enough to refuse the `train run --resume` typed at once."""
    import signal
    import subprocess
    import sys
    import time

    if not sys.platform.startswith("linux"):
        pytest.skip("workers die with their parent through Linux's PR_SET_PDEATHSIG")
    script = tmp_path / "trainer.py"
    script.write_text(
        "import os, sys, time, torch\n"
        "from torch.utils.data import DataLoader\n"
        "from train.build import loader_options\n"
        "loader = DataLoader(list(range(64)), batch_size=4,\n"
        "                    **loader_options({'data': {'workers': 2}}, torch.device('cpu')))\n"
        "next(iter(loader))\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parents[1], env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert proc.stdout.readline().strip() == "up"
    workers = [int(p) for p in open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()]
    assert len(workers) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    alive = [p for p in workers if os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split()[2] != "Z"]
    assert alive == [], "DataLoader workers outlived the killed trainer"
