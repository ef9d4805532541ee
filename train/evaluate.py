"""Scoring with a finished checkpoint: `train eval` on a corpus, `train predict` on image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rankgen.corpus import Corpus
from rankgen.errors import RankgenError

from . import metrics as M
from .build import build_network
from .data import PatchDataset, group_crop_seeds, to_tensor
from .engine import load_checkpoint, pick_device, predict
from .errors import TrainError
from .models import MODELS


def _model(ck: dict, device: torch.device):
    # The network the run built (train.build), its trained weights from the checkpoint itself.
    model, _ = build_network(ck["config"], ck["arch"], weights=False)
    model.load_state_dict(ck["model"])
    return model.to(device).eval()


def _restore(checkpoint):
    """(its config, device, model in eval mode, whether it outputs density maps).

    Scoring runs on CUDA when this machine has it, else on the CPU, whatever device trained the
    checkpoint (its tensors are loaded onto the CPU first)."""
    ck = load_checkpoint(checkpoint)
    cfg = ck["config"]
    device = pick_device("auto")
    return cfg, device, _model(ck, device), MODELS.entry(ck["arch"]).info["output"] == "density"


def evaluate_checkpoint(checkpoint, data, split: str = "test", crops: int | None = None) -> dict:
    cfg, device, model, counting = _restore(checkpoint)
    n = crops or cfg["data"]["test_crops"]
    try:
        corpus = Corpus(data, kind=("crops", "density") if counting else ("distort", "annotate"))
    except RankgenError as exc:
        raise TrainError(f"--data: {exc}") from None
    ds = PatchDataset(corpus, cfg["data"]["patch"], mode="whole" if corpus.kind == "crops" else "crop",
                      small_images=cfg["data"]["small_images"])

    def score(items, seeds=None):
        def inputs():
            for k, i in enumerate(items):
                seed = int(i if seeds is None else seeds[k])
                yield to_tensor(corpus.image(int(i)))[None] if corpus.kind == "density" else ds.test_crops(int(i), n, seed=seed)
        return predict(model, inputs(), device)

    if corpus.kind in ("distort", "crops"):
        groups = corpus.groups
        items, seeds = group_crop_seeds(groups)
        pred = np.full(int(items.max()) + 1, np.nan)
        pred[items] = score(items, seeds)
        return {"items": len(items), "pra": M.pra_groups(pred, groups)}
    items = np.arange(len(corpus))
    if split != "all":
        items = np.flatnonzero(corpus.column("split") == split)
        if len(items) == 0:
            raise TrainError(f"{data} has no items with split {split!r}; use --split all")
    pred = score(items)
    if corpus.kind == "density":
        y = corpus.column("count")[items]
        return {"items": len(items), "mae": M.mae(y, pred), "rmse": M.rmse(y, pred)}
    target = cfg["data"]["target"]
    y = corpus.column(target)[items]
    ann = corpus.column("annotator")[items] if "annotator" in corpus.columns() else None
    true = corpus.column("true_score")[items] if "true_score" in corpus.columns() else None
    return {"items": len(items), **M.labeled_scores(y, pred, ann, true)}


def predict_files(checkpoint, paths, crops: int | None = None):
    """(path, score) per image file. The checkpoint is read before anything is returned, so a bad
    checkpoint fails before the caller has printed a line."""
    from rankgen.sources.images import load_rgb

    cfg, device, model, counting = _restore(checkpoint)
    n = crops or cfg["data"]["test_crops"]
    sampler = PatchDataset(None, cfg["data"]["patch"], small_images=cfg["data"]["small_images"])

    def scores():
        for k, path in enumerate(paths):
            img, _ = load_rgb(path)
            if counting:
                x = to_tensor(img)[None]
            else:
                rng = np.random.default_rng(k)
                x = torch.stack([sampler.sample(img, rng) for _ in range(n)])
            yield Path(path), float(predict(model, [x], device)[0])

    return scores()
