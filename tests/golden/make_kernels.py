"""Regenerate tests/golden/kernels.json: sha256 and PSNR of every registered type at every level.

    PYTHONPATH=. python tests/golden/make_kernels.py [--keep-psnr]

Run it only in the commit that changes a kernel's bytes on purpose (with KERNEL_VERSION raised).
--keep-psnr keeps the stored PSNR: a faster kernel with another random stream must land on the old
per-level PSNR, which is what tests/test_kernels.py then checks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from test_kernels import GOLDEN_PATH, golden_cases, run_case  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep-psnr", action="store_true")
    args = ap.parse_args()
    old = json.loads(GOLDEN_PATH.read_text()) if GOLDEN_PATH.exists() else {}
    table = {}
    for name, recipe, params in golden_cases():
        hashes, psnr = zip(*[run_case(name, param, level) for level, param in enumerate(params, 1)])
        psnr = [round(p, 4) for p in psnr]
        if args.keep_psnr and name in old:
            psnr = old[name]["psnr"]
        table[name] = {"recipe": recipe, "params": params, "psnr": psnr,
                       "sha256": list(hashes)}
    GOLDEN_PATH.write_text(json.dumps(table, sort_keys=True).replace('}, "', '},\n "') + "\n")
    print(f"wrote {GOLDEN_PATH} ({len(table)} types)")


if __name__ == "__main__":
    main()
