"""rankgen's distortions against imagecorruptions 1.1.2 on the 8 types both have; prints a table.

imagecorruptions needs an environment of its own (it imports only with setuptools<81 and breaks
on current scikit-image), so it runs in a separate interpreter:

    python3 -m venv .venv-bench && .venv-bench/bin/pip install 'setuptools<81' imagecorruptions==1.1.2
    .venv/bin/python benchmarks/vs_imagecorruptions.py --peer .venv-bench/bin/python

Both sides are timed in the same run, alternating rounds, on the same 512x384 photograph; each
side's figure is the median over rounds of the median over calls. Failures of the peer are printed,
not hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from benchmarks_common import photo_512x384
from rankgen.distortions import corrupt, distort, load_recipe

# (ours, peer) at the middle of both scales: our level 3 of 4, their severity 3 of 5.
PAIRS = [
    ("gaussian_noise", "gaussian_noise"),
    ("impulse_noise", "impulse_noise"),
    ("multiplicative_noise", "speckle_noise"),
    ("gaussian_blur", "gaussian_blur"),
    ("mean_shift", "brightness"),
    ("contrast_decrease", "contrast"),
    ("jpeg", "jpeg_compression"),
    ("color_saturation", "saturate"),
]

PEER = r"""
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from imagecorruptions import corrupt
img = np.load(sys.argv[1])
calls = int(sys.argv[2])
out = {}
for name in sys.argv[3:]:
    try:
        times = []
        for _ in range(calls):
            t = time.perf_counter(); corrupt(img, corruption_name=name, severity=3); times.append(time.perf_counter() - t)
        out[name] = sorted(times)[len(times) // 2]
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
checks = {}
for label, fn in [("level/severity 0", lambda: corrupt(img, corruption_name="gaussian_noise", severity=0)),
                  ("16x16 gaussian_blur", lambda: corrupt(img[:16, :16], corruption_name="gaussian_blur", severity=3)),
                  ("grayscale HxW jpeg", lambda: corrupt(img[..., 0], corruption_name="jpeg_compression", severity=3))]:
    try:
        result = fn()
        checks[label] = f"returns {result.shape}" + (", unchanged" if result.shape == img.shape and (result == img).all() else "")
    except Exception as exc:
        checks[label] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"times": out, "checks": checks}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", default=".venv-bench/bin/python", help="interpreter with imagecorruptions 1.1.2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=5)
    args = ap.parse_args()
    import os
    import tempfile

    img = photo_512x384()
    recipe = load_recipe("tid2013")
    path = os.path.join(tempfile.mkdtemp(), "img.npy")
    np.save(path, img)
    ours = {name: [] for name, _ in PAIRS}
    theirs = {peer: [] for _, peer in PAIRS}
    checks = {}
    for _ in range(args.rounds):
        for name, _ in PAIRS:
            param = recipe.params(name, 5)[2]
            times = []
            for c in range(args.calls):
                t = time.perf_counter()
                distort(img, name, param, np.random.default_rng(c))
                times.append(time.perf_counter() - t)
            ours[name].append(float(np.median(times)))
        res = subprocess.run([args.peer, "-c", PEER, path, str(args.calls), *theirs], capture_output=True, text=True)
        if res.returncode:
            sys.exit(f"the peer interpreter failed:\n{res.stderr[-2000:]}")
        data = json.loads(res.stdout.strip().splitlines()[-1])
        checks = data["checks"]
        for peer, value in data["times"].items():
            theirs[peer].append(value)
    print(f"# rankgen vs imagecorruptions 1.1.2, 512x384, {time.strftime('%Y-%m-%d')}, median ms per call; load average {os.getloadavg()[0]:.2f}")
    print(f"{'rankgen':22s} {'imagecorruptions':18s} {'rankgen ms':>10s} {'peer ms':>10s} {'peer/ours':>10s}")
    for name, peer in PAIRS:
        mine = float(np.median(ours[name])) * 1e3
        values = theirs[peer]
        if all(isinstance(v, float) for v in values):
            other = float(np.median(values)) * 1e3
            print(f"{name:22s} {peer:18s} {mine:10.2f} {other:10.1f} {other / mine:9.1f}x")
        else:
            error = next(v for v in values if not isinstance(v, float))
            print(f"{name:22s} {peer:18s} {mine:10.2f} {'FAILS':>10s}  ({error[:70]})")
    ours_checks = {}
    for label, fn in [("level/severity 0", lambda: corrupt(img, "gaussian_noise", 0)),
                      ("16x16 gaussian_blur", lambda: corrupt(img[:16, :16], "gaussian_blur", 3)),
                      ("grayscale HxW jpeg", lambda: corrupt(img[..., 0], "jpeg", 3))]:
        out = fn()
        ours_checks[label] = f"returns {out.shape}" + (", unchanged" if out.shape == img.shape and (out == img).all() else "")
    print("\n# what users asked about: rankgen.distortions.corrupt vs imagecorruptions.corrupt")
    for label, value in checks.items():
        print(f"{label:22s} rankgen: {ours_checks[label]:28s} imagecorruptions: {value[:80]}")


if __name__ == "__main__":
    main()
