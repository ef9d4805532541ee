"""Do the papers' directions hold on data rankgen makes here? Over N seeds, paired per seed:

- RankIQA Table 1: regression from scratch vs RankIQA+FT (rank, then fine-tune with regression at
  1/100 of the rate, as the rankiqa_* / rankiqa_ft_* recipes do) vs MT-RankIQA (multitask); every
  arm takes the same number of optimizer steps; test SROCC/PLCC.
- DCR Table 5: regression vs L_rank vs L_d-rank (gamma 0.1, batch 64 as the dcr recipe) under 4
  biased annotators, on the data of issue #15's measurement (`rankgen annotate --annotators 4`, the
  embedded default) for its 160 iterations; test PRA/SROCC (per-annotator means).
- RankIQA pair selection: all comparable pairs of the batch vs as many random pairs as a two-branch
  Siamese network sees (batch/2) vs the batch/2 hardest pairs; held-out PRA at equal steps.

Data for RankIQA and pair selection: 15 images bundled with scikit-image (no download) copied into
a folder; `rankgen distort` of them (96 px crops, 5 distortions x 5 levels) scored by SSIM and
re-annotated by 4 annotators is the labeled set; a second `rankgen distort` (other seed) of the
references outside the labeled test split is the ranked set, so no test scene is ranked on. Small
CNN, CPU. A benchmark, not a test: it prints means, standard deviations and paired wins, and
writes docs/directions.md.

    nice python benchmarks/directions.py [--seeds 5] [--steps 200] [--out runs/directions]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SMALL = ["model.arch=small", "model.width=8", "data.patch=64", "data.test_crops=4", "train.device=cpu",
         "train.progress=false", "data.build=null", "optim.optimizer=adam", "optim.lr=1e-3"]
# The rankiqa_* recipes rank at 1e-4 and fine-tune at 1e-6. Fine-tuning at the ranking rate wrecks
# the ranked network: the ranking loss leaves the output offset free, so its outputs sit far from
# the [0, 1] targets (mean MSE of 30 fine-tuning steps 11-49, of regression from scratch 0.05-0.13), and the
# steps spent on that offset scramble the features (test SROCC 0.49 after ranking, -0.11 after 30
# fine-tuning steps at 1e-3, 0.47 at 1e-5; docs/directions.md).
FT_LR = "optim.lr=1e-5"
# Bundled with scikit-image (skimage/data): photographs and textures; grey ones become RGB. One of
# the stereo pair motorcycle_left/right only, which would be one scene anyway.
IMAGES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "camera.png",
          "coins.png", "moon.png", "brick.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png",
          "retina.jpg", "cell.png")
DISTORTIONS = "gaussian_blur,gaussian_noise,impulse_noise,contrast_decrease,jpeg"
DCR_ITERS = 160  # issue #15's measurement
DCR_BATCH = 64   # data_recipes/dcr_tid2013_4ann.yaml; L_d-rank compares pairs within one annotator only


def build(out: Path) -> tuple[Path, Path, Path]:
    """(ranked, labeled, dcr) corpora, each built once under `out`."""
    import skimage

    from train.data import open_corpus

    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def make(path: Path, args: list[str]) -> Path:
        if not path.exists():
            subprocess.run([sys.executable, "-m", "rankgen", *args, "-o", str(path)], check=True, cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return path

    photos = out / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for name in IMAGES:
        if not (photos / name).exists():
            shutil.copy(Path(skimage.__file__).parent / "data" / name, photos / name)
    crops = ["--levels", "5", "--crop", "96", "--crops-per-image", "4", "--quiet", "--distortions", DISTORTIONS]
    scored = make(out / "scored.h5", ["distort", "--dataset", "folder", "--root", str(photos), "--seed", "1", *crops])
    labeled = make(out / "labeled.h5", ["annotate", "--from", str(scored), "--score", "ssim", "--annotators", "4",
                                        "--seed", "0", "--quiet"])
    corpus = open_corpus(labeled, ("annotate",), "labeled")
    test = {str(r) for r in corpus.column("ref")[corpus.column("split") == "test"]}
    corpus.close()
    pool = out / "ranked_photos"
    pool.mkdir(exist_ok=True)
    for name in IMAGES:
        if name not in test and not (pool / name).exists():
            shutil.copy(photos / name, pool / name)
    ranked = make(out / "ranked.h5", ["distort", "--dataset", "folder", "--root", str(pool), "--seed", "0", *crops])
    dcr = make(out / "dcr.h5", ["annotate", "--annotators", "4", "--seed", "0", "--quiet"])
    return ranked, labeled, dcr


def train(out: Path, name: str, seed: int, sets: list[str]) -> dict:
    from train.config import load_config
    from train.loop import run

    cfg = load_config(None, [*SMALL, f"out={out}/runs", f"name={name}_s{seed}", f"seed={seed}", *sets])
    with contextlib.redirect_stderr(io.StringIO()):
        return run(cfg)


# -- pair selection: the all-pairs loss restricted to k pairs ---------------------------------------
def pair_loss(mode: str):
    import torch
    import torch.nn.functional as F

    from train.losses import allpairs_rank_loss

    def loss(y, order, margin, reduction="mean"):
        if mode == "all":
            return allpairs_rank_loss(y, order, margin, reduction)
        upper = torch.triu(torch.ones_like(order, dtype=torch.bool), 1) & (order != 0)
        hinge = F.relu(margin - order.to(y.dtype) * (y[:, None] - y[None, :]))[upper]
        k = max(1, len(y) // 2)  # the pairs of a two-branch Siamese batch of the same images
        if mode == "random":
            pick = torch.randperm(len(hinge))[:k]
        else:
            pick = torch.topk(hinge.detach(), min(k, len(hinge))).indices
        return hinge[pick].mean()

    return loss


def arms(ranked: Path, labeled: Path, dcr: Path, steps: int) -> dict[str, dict]:
    """Every arm of a comparison takes the same optimizer steps, in two evaluated epochs; the
    figures are the last epoch's (best.pt, chosen on validation, only seeds the fine-tuning)."""
    half = max(1, steps // 2)
    two = ["optim.epochs=2", f"optim.iters_per_epoch={half}"]
    lab = [f"data.labeled={labeled}", "optim.labeled_batch=16", "data.val=0.25"]
    rk = [f"data.ranked={ranked}", "optim.batch_size=30", "data.heldout=0.34"]
    d = [f"data.labeled={dcr}", "data.val=0.25", "optim.epochs=2", f"optim.iters_per_epoch={DCR_ITERS // 2}"]
    dcr_loss = ["objective=dcr", *d, f"optim.batch_size={DCR_BATCH}", "loss.gamma=0.1"]
    return {
        "RankIQA Table 1 (test SROCC / PLCC)": {
            "metrics": ["srocc", "plcc"],
            "pairs": [("RankIQA+FT", "regression"), ("MT-RankIQA", "regression"), ("MT-RankIQA", "RankIQA+FT")],
            "arms": {
                "regression": [["objective=regress", *lab, *two]],
                "RankIQA+FT": [["objective=rank", *rk, *lab, "optim.epochs=1", f"optim.iters_per_epoch={half}"],
                               ["objective=regress", *lab, "optim.epochs=1", f"optim.iters_per_epoch={half}", FT_LR,
                                "model.weights={prev}/best.pt"]],
                "MT-RankIQA": [["objective=multitask", *rk, *lab, *two]],
            }},
        f"DCR Table 5 (test PRA / SROCC, per-annotator means; {DCR_ITERS} iterations, batch {DCR_BATCH}, gamma 0.1)": {
            "metrics": ["pra", "srocc"],
            "pairs": [("L_rank", "regression"), ("L_d-rank", "regression"), ("L_d-rank", "L_rank")],
            "arms": {
                "regression": [["objective=regress", *d, f"optim.labeled_batch={DCR_BATCH}"]],
                "L_rank": [[*dcr_loss, "loss.disjoint=false"]],
                "L_d-rank": [[*dcr_loss, "loss.disjoint=true"]],
            }},
        "Pair selection (held-out PRA of the ranked set)": {
            "metrics": ["heldout_pra"],
            "pairs": [("random", "all"), ("hard", "all")],
            "arms": {mode: [["objective=rank", *rk, *two, f"#pairs={mode}"]] for mode in ("all", "random", "hard")},
        },
    }


def run_arm(out: Path, tag: int, label: str, stages: list[list[str]], seed: int) -> dict:
    """Train the stages of one arm in turn. Run folders are named by comparison too: the regression
    arms of two comparisons are different runs."""
    import train.loop as loop

    res, prev = {}, None
    for k, sets in enumerate(stages):
        mode = next((s.split("=")[1] for s in sets if s.startswith("#pairs=")), "all")
        sets = [s.replace("{prev}", str(prev)) for s in sets if not s.startswith("#")]
        name = f"c{tag}_{label}_{k}".replace(" ", "_").replace("+", "p")
        saved = loop.allpairs_rank_loss
        loop.allpairs_rank_loss = pair_loss(mode)
        try:
            res = train(out, name, seed, sets)
        finally:
            loop.allpairs_rank_loss = saved
        prev = res["run_dir"]
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200, help="optimizer steps of every RankIQA and pair-selection arm")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "directions")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "directions.md")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    t0 = time.perf_counter()
    ranked, labeled, dcr = build(args.out)
    # Every invocation trains afresh: a run folder left by other settings would refuse to be reused.
    shutil.rmtree(args.out / "runs", ignore_errors=True)
    lines = [f"seeds {args.seeds}, {args.steps} steps per RankIQA and pair-selection arm, {DCR_ITERS} per DCR arm, "
             f"load average at start {os.getloadavg()[0]:.2f}", ""]
    print(lines[0], flush=True)
    for tag, (title, spec) in enumerate(arms(ranked, labeled, dcr, args.steps).items()):
        first = len(lines)
        names = list(spec["arms"])
        scores = {a: {m: [] for m in spec["metrics"]} for a in names}
        for seed in range(args.seeds):
            for a in names:
                r = run_arm(args.out, tag, a, spec["arms"][a], seed)
                for m in spec["metrics"]:
                    scores[a][m].append(float(r.get(m, np.nan)))
        lines += [f"### {title}", "", "| arm | " + " | ".join(f"{m} mean ± sd" for m in spec["metrics"]) + " |",
                  "|---|" + "---|" * len(spec["metrics"])]
        for a in names:
            cells = [f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}" for v in scores[a].values()]
            lines.append(f"| {a} | " + " | ".join(cells) + " |")
        lines.append("")
        for a, b in spec["pairs"]:
            for m in spec["metrics"]:
                d = np.array(scores[a][m]) - np.array(scores[b][m])
                lines.append(f"- {a} vs {b}, {m}: wins {int((d > 0).sum())}/{len(d)}, mean difference {np.nanmean(d):+.3f}")
        lines.append("")
        print("\n".join(lines[first:]), flush=True)
    lines.append(f"total {time.perf_counter() - t0:.0f} s, load average at end {os.getloadavg()[0]:.2f}")
    print(lines[-1])
    head = ("# The papers' directions over seeds\n\nWritten by `benchmarks/directions.py` (the figures below are "
            "its output, not edited). Small CNN on the CPU, data rankgen makes from images bundled with "
            "scikit-image; few references, so read the paired wins as much as the means.\n\n")
    args.doc.write_text(head + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
