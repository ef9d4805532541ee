"""Scoring with a finished checkpoint: `train eval` on a corpus, `train predict` on image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rankgen.corpus import Corpus
from rankgen.errors import RankgenError

from . import metrics as M
from .data import PatchDataset, group_crop_seeds, to_tensor
from .errors import TrainError
from .loop import load_checkpoint, pick_device
from .models import MODELS, build_model


def _model(ck: dict, device: torch.device):
    cfg = ck["config"]
    kwargs = {"width": cfg["model"]["width"]} if cfg["model"]["width"] else {}
    model = build_model(ck["arch"], **kwargs)
    model.load_state_dict(ck["model"])
    return model.to(device).eval()


@torch.no_grad()
def _score(model, x: torch.Tensor, device) -> float:
    return model(x.to(device)).float().mean().item()


def _restore(checkpoint):
    """(its config, device, model in eval mode, whether it outputs density maps)."""
    ck = load_checkpoint(checkpoint)
    cfg = ck["config"]
    device = pick_device(cfg["train"]["device"])
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

    def predict(items, seeds=None):
        out = []
        for k, i in enumerate(items):
            seed = int(i if seeds is None else seeds[k])
            x = to_tensor(corpus.image(int(i)))[None] if corpus.kind == "density" else ds.test_crops(int(i), n, seed=seed)
            out.append(_score(model, x, device))
        return np.array(out)

    if corpus.kind in ("distort", "crops"):
        groups = corpus.groups
        items, seeds = group_crop_seeds(groups)
        pred = np.full(int(items.max()) + 1, np.nan)
        pred[items] = predict(items, seeds)
        return {"items": len(items), "pra": M.pra_groups(pred, groups)}
    items = np.arange(len(corpus))
    if split != "all":
        items = np.flatnonzero(corpus.column("split") == split)
        if len(items) == 0:
            raise TrainError(f"{data} has no items with split {split!r}; use --split all")
    pred = predict(items)
    if corpus.kind == "density":
        y = corpus.column("count")[items]
        return {"items": len(items), "mae": M.mae(y, pred), "rmse": M.rmse(y, pred)}
    target = cfg["data"]["target"]
    y = corpus.column(target)[items]
    ann = corpus.column("annotator")[items] if "annotator" in corpus.columns() else None
    res = {"items": len(items), **M.per_annotator(y, pred, ann)}
    if "true_score" in corpus.columns():
        true = corpus.column("true_score")[items]
        res.update(lcc_true=M.lcc(true, pred), srocc_true=M.srocc(true, pred))
    return res


def predict_files(checkpoint, paths, crops: int | None = None):
    from rankgen.sources.images import load_rgb

    cfg, device, model, counting = _restore(checkpoint)
    n = crops or cfg["data"]["test_crops"]
    sampler = PatchDataset(None, cfg["data"]["patch"], small_images=cfg["data"]["small_images"])
    for k, path in enumerate(paths):
        img, _ = load_rgb(path)
        if counting:
            x = to_tensor(img)[None]
        else:
            rng = np.random.default_rng(k)
            x = torch.stack([sampler.sample(img, rng) for _ in range(n)])
        yield Path(path), _score(model, x, device)
