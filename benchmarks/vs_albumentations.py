"""rankgen's distortions against albumentations 2.0.8 on the types both have; prints a table.

albumentations runs in a benchmark-only environment of its own, as a peer interpreter, with the
OpenCV that rankgen pins, so that both sides call the same library:

    python3 -m venv /work/venvs/albu && /work/venvs/albu/bin/pip install albumentations==2.0.8 opencv-python-headless==5.0.0.93
    PYTHONPATH=. .venv/bin/python benchmarks/vs_albumentations.py --peer /work/venvs/albu/bin/python

Both sides are timed in the same run, alternating rounds, on the same 512x384 photograph (rankgen's
level 3 of 4 of tid2013-full, albumentations' transform fixed at a comparable strength, p=1); each
side's figure is the median over rounds of the median over calls. The PSNR of both outputs against
the photograph shows that the strengths are comparable. The load average is printed: the ratio, not
the absolute figure, is what to compare on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks_common import allocator_as_in_a_run, photo_512x384
from rankgen.distortions import distort, load_recipe
from rankgen.distortions.metrics import psnr

# (rankgen type, albumentations transform as Python source, at about the strength of our level 3)
PAIRS = [
    ("gaussian_noise", "A.GaussNoise(std_range=(0.1, 0.1), p=1)"),
    # Their factor is uniform: +-0.225 has our level's std 0.13 (0.225 / sqrt(3)); ours is normal (MultiGN.m).
    ("multiplicative_noise", "A.MultiplicativeNoise(multiplier=(0.775, 1.225), elementwise=True, p=1)"),
    ("color_noise", "A.ISONoise(color_shift=(0.05, 0.05), intensity=(0.5, 0.5), p=1)"),
    ("impulse_noise", "A.SaltAndPepper(amount=(0.05, 0.05), p=1)"),
    ("gaussian_blur", "A.GaussianBlur(blur_limit=(39, 39), sigma_limit=(6.5, 6.5), p=1)"),
    ("mean_shift", "A.RandomBrightnessContrast(brightness_limit=(0.176, 0.176), contrast_limit=(0, 0), p=1)"),
    ("contrast_decrease", "A.RandomBrightnessContrast(brightness_limit=(0, 0), contrast_limit=(-0.45, -0.45), brightness_by_max=False, p=1)"),
    ("color_saturation", "A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(0.4, 0.4), hue=(0, 0), p=1)"),
    ("block_wise", "A.CoarseDropout(num_holes_range=(8, 8), hole_height_range=(32, 32), hole_width_range=(32, 32), p=1)"),
    ("chromatic_aberration", "A.ChromaticAberration(primary_distortion_limit=(0.05, 0.05), secondary_distortion_limit=(0, 0), mode='red_blue', p=1)"),
    ("jpeg", "A.ImageCompression(compression_type='jpeg', quality_range=(7, 7), p=1)"),
    # Block means (INTER_AREA) blown up as blocks, as ours; their default samples one pixel per block.
    ("pixelate", "A.Downscale(scale_range=(0.125, 0.125), interpolation_pair={'downscale': cv2.INTER_AREA, 'upscale': cv2.INTER_NEAREST}, p=1)"),
    ("motion_blur", "A.MotionBlur(blur_limit=(9, 9), p=1)"),
    ("lens_blur", "A.Defocus(radius=(4, 4), alias_blur=(0.1, 0.1), p=1)"),
]

PEER = r"""
import json, sys, time, warnings
import cv2
import numpy as np
warnings.simplefilter("ignore")
import albumentations as A
img = np.load(sys.argv[1])
calls = int(sys.argv[2])
pairs = json.loads(sys.argv[3])
out = {}
for name, source in pairs:
    transform = eval(source)
    transform.set_random_seed(0)
    times = []
    for _ in range(calls):
        t = time.perf_counter(); result = transform(image=img)["image"]; times.append(time.perf_counter() - t)
    mse = np.mean((img.astype(np.float64) - result) ** 2)
    out[name] = [sorted(times)[len(times) // 2], float(10 * np.log10(255.0**2 / mse)) if mse else float("inf")]
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", default="/work/venvs/albu/bin/python", help="interpreter with albumentations 2.0.8")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=7)
    args = ap.parse_args()
    peer_env = allocator_as_in_a_run()
    img = photo_512x384()
    full, kadid = load_recipe("tid2013-full"), load_recipe("kadid10k")
    path = os.path.join(tempfile.mkdtemp(), "img.npy")
    np.save(path, img)
    ours = {name: [] for name, _ in PAIRS}
    theirs = {name: [] for name, _ in PAIRS}
    quality = {}
    loads = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for name, _ in PAIRS:
            param = (full.params(name, 5)[2] if name in full.names else kadid.params(name, 6)[2])
            times = []
            for c in range(args.calls):
                # Made outside the timing, as albumentations seeds its transform once outside it.
                rng = np.random.default_rng(c)
                t = time.perf_counter()
                out = distort(img, name, param, rng)
                times.append(time.perf_counter() - t)
            ours[name].append(float(np.median(times)))
            quality[name] = psnr(img, out)
        res = subprocess.run([args.peer, "-c", PEER, path, str(args.calls), json.dumps(PAIRS)],
                             capture_output=True, text=True, env=peer_env)
        if res.returncode:
            sys.exit(f"the peer interpreter failed:\n{res.stderr[-2000:]}")
        for name, (seconds, value) in json.loads(res.stdout.strip().splitlines()[-1]).items():
            theirs[name].append((seconds, value))
        loads.append(os.getloadavg()[0])
    print(f"# rankgen vs albumentations 2.0.8, 512x384, {time.strftime('%Y-%m-%d')}, median ms per call, "
          f"{args.rounds} alternating rounds, load average {min(loads):.1f}-{max(loads):.1f} "
          f"on {len(os.sched_getaffinity(0))} cores")
    print(f"{'rankgen':22s} {'albumentations':22s} {'ours ms':>8s} {'theirs ms':>9s} {'theirs/ours':>11s} "
          f"{'PSNR ours':>9s} {'PSNR theirs':>11s}")
    for name, source in PAIRS:
        mine = float(np.median(ours[name])) * 1e3
        other = float(np.median([s for s, _ in theirs[name]])) * 1e3
        print(f"{name:22s} {source[2:source.index('(')]:22s} {mine:8.2f} {other:9.2f} {other / mine:10.2f}x "
              f"{quality[name]:9.2f} {theirs[name][-1][1]:11.2f}")


if __name__ == "__main__":
    main()
