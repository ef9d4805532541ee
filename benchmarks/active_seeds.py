"""Active vs random selection over several seeds: one run's table is within the noise of a toy pool,
so the comparison docs/active.md reports is the mean over seeds and the number of seeds where
active is at or above random, at each budget.

    python benchmarks/active_seeds.py                                    # embedded default, seeds 0-4
    python benchmarks/active_seeds.py --seeds 3 --set active.balance=false
    python benchmarks/active_seeds.py --recipe active_counting --seeds 3

Runs go to runs/active_seeds/<recipe>_s<seed>/ (existing runs are resumed, so an interrupted
benchmark continues where it stopped). Each seed draws its own initial set, test photos and θ₀.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from train.active import load_config, metric_names, run_active


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default="active_default")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default="runs/active_seeds")
    args = ap.parse_args()
    # By cycle, not by labeled fraction: seeds whose held-out scenes differ in size have pools of other
    # sizes, so the same cycle lands on slightly different fractions (10.4 % and 9.7 %).
    table: dict[int, dict[str, list[dict]]] = {}
    for seed in range(args.seeds):
        cfg = load_config(args.recipe, [*args.overrides, f"seed={seed}", f"out={args.out}",
                                        f"name={args.recipe}_s{seed}"])
        resume = (Path(args.out) / cfg["name"] / "config.yaml").exists()
        for row in run_active(cfg, resume=resume)["rows"]:
            table.setdefault(row["cycle"], {}).setdefault(row["strategy"], []).append(row)
    names = metric_names(cfg)
    lower_better = cfg["task"] == "counting"
    print(" ".join([args.recipe, *args.overrides]) + f": mean over {args.seeds} seeds")
    print("labeled | " + " | ".join(f"active {m} | random {m}" for m in names) + f" | seeds active at least as good ({names[0]})")
    print(" | ".join(["---"] * (2 * len(names) + 2)))
    for cycle in sorted(table):
        a, r = table[cycle]["active"], table[cycle]["random"]
        frac = np.mean([x["labeled_fraction"] for x in a])
        cells = []
        for m in names:
            cells += [f"{np.mean([x[m] for x in a]):.3f}", f"{np.mean([x[m] for x in r]):.3f}"]
        ahead = sum((x[names[0]] <= y[names[0]]) if lower_better else (x[names[0]] >= y[names[0]]) for x, y in zip(a, r))
        print(f"{frac:.0%} (cycle {cycle}) | " + " | ".join(cells) + f" | {ahead}/{len(a)}")


if __name__ == "__main__":
    main()
