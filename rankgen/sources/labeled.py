"""Labeled sets with one score per image: TID2013, KADID-10k, LIVE R2, CSIQ, AFEW-VA, and any CSV.

Every reader lists SourceItems whose meta holds `score` (float, **higher = better** for every set),
`published` (the value as the dataset publishes it), `ref` (reference image or clip id: the unit
of the train/test split), `distortion` (str, "" if none) and `level` (int, -1 if unknown).
Published DMOS (lower = better) is turned around by `score = top - dmos` with the top of the
published scale (docs/annotators.md has the table). Listing checks that every listed image exists,
so a wrong --root fails before any work starts.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import RankgenError
from . import SOURCES, SourceItem, require_dir

IQA, AFFECT = "iqa", "affect"

TID2013_TYPES = (
    "additive_gaussian_noise", "additive_noise_in_color_components", "spatially_correlated_noise",
    "masked_noise", "high_frequency_noise", "impulse_noise", "quantization_noise", "gaussian_blur",
    "image_denoising", "jpeg_compression", "jpeg2000_compression", "jpeg_transmission_errors",
    "jpeg2000_transmission_errors", "non_eccentricity_pattern_noise",
    "local_block_wise_distortions", "mean_shift", "contrast_change", "change_of_color_saturation",
    "multiplicative_gaussian_noise", "comfort_noise", "lossy_compression_of_noisy_images",
    "color_quantization_with_dither", "chromatic_aberrations", "sparse_sampling_and_reconstruction",
)
KADID10K_TYPES = (
    "gaussian_blur", "lens_blur", "motion_blur", "color_diffusion", "color_shift", "color_quantization",
    "color_saturation_hsv", "color_saturation_lab", "jpeg2000", "jpeg", "white_noise",
    "white_noise_in_color_component", "impulse_noise", "multiplicative_noise", "denoise", "brighten",
    "darken", "mean_shift", "jitter", "non_eccentricity_patch", "pixelate", "quantization",
    "color_block", "high_sharpen", "contrast_change",
)
# LIVE R2: dmos.mat lists the five folders in this order with these many images each.
LIVE_FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))
# Tops of the published DMOS scales: score = top - dmos.
LIVE_TOP = 100.0
CSIQ_TOP = 1.0
# The CSIQ sheet spells some types differently from its folders (dst_imgs/awgn/1600.AWGN.1.png).
CSIQ_FOLDERS = {"noise": "awgn", "jpeg 2000": "jpeg2000", "1/f noise": "fnoise"}
AFEW_TARGETS = ("valence", "arousal")

TID_NAME = re.compile(r"i(\d{2})_(\d{2})_(\d)\.bmp", re.IGNORECASE)
KADID_NAME = re.compile(r"(i\d{2})_(\d{2})_(\d{2})\.png", re.IGNORECASE)



def _file(path: Path, dataset: str, layout: str) -> Path:
    if not path.is_file():
        raise RankgenError(f"{path} not found: --dataset {dataset} expects {layout}")
    return path


@lru_cache(maxsize=None)
def _listing(folder: Path) -> dict[str, str]:
    return {p.name.lower(): p.name for p in folder.iterdir()} if folder.is_dir() else {}


def _find(folder: Path, name: str) -> Path:
    """folder/name, matched case-insensitively: the archives mix I01/i01 and .BMP/.bmp."""
    if (folder / name).exists():
        return folder / name
    actual = _listing(folder).get(name.lower())
    return folder / (actual or name)


def _check_present(items: list[SourceItem], dataset: str, listed_in: Path) -> list[SourceItem]:
    if not items:
        raise RankgenError(f"{listed_in} lists no images for --dataset {dataset}")
    folders = [it.path for it in items if Path(it.path).is_dir()]
    if folders:
        raise RankgenError(f"--dataset {dataset}: {folders[0]} (listed in {listed_in}) is a folder, not an image file; "
                           "list the image files themselves")
    missing = [it.path for it in items if not Path(it.path).is_file()]
    if missing:
        raise RankgenError(
            f"--dataset {dataset}: {len(missing)} of {len(items)} images listed in {listed_in} are missing, "
            f"e.g. {missing[0]}; check that --root is the dataset's top folder and the download is complete"
        )
    return items


def _number(text, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise RankgenError(f"{where}: score {text!r} is not a number") from None
    if not math.isfinite(value):
        raise RankgenError(f"{where}: score is {value}; every score must be a finite number")
    return value


def _item(id: str, path: Path, score: float, published: float, ref: str, distortion: str = "", level: int = -1) -> SourceItem:
    return SourceItem(id=id, path=str(path), meta={"score": score, "published": published, "ref": ref,
                                                   "distortion": distortion, "level": level})


def _csv_text(path: Path) -> io.StringIO:
    """The CSV's text, or a message naming the file when it is not UTF-8 (csv would raise mid-listing)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return io.StringIO(f.read(), newline="")
    except UnicodeDecodeError as exc:
        raise RankgenError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                           "save the CSV as UTF-8") from None


def _csv_rows(path: Path, columns: tuple[str, ...], dataset: str) -> list[tuple[int, dict]]:
    with _csv_text(path) as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        lacking = [c for c in columns if c not in header]
        if lacking:
            raise RankgenError(f"{path}: --dataset {dataset} needs the columns {', '.join(columns)}; "
                               f"missing {', '.join(lacking)} (header: {', '.join(header) or 'empty'})")
        reader.fieldnames = header
        return [(i, {k: (v or "").strip() for k, v in row.items() if k}) for i, row in enumerate(reader, start=2)]


@SOURCES.register("tid2013", kind="scores", task=IQA,
                  help="TID2013: <root>/mos_with_names.txt and distorted_images/i01_01_1.bmp (MOS, higher = better)")
def tid2013(root=None) -> list[SourceItem]:
    root = require_dir(root, "tid2013", "~/tid2013")
    listing = _file(root / "mos_with_names.txt", "tid2013", "<root>/mos_with_names.txt and <root>/distorted_images/")
    items = []
    for lineno, line in enumerate(listing.read_text(encoding="latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{listing}:{lineno}"
        parts = line.split()
        if len(parts) != 2:
            raise RankgenError(f"{where}: expected 'score name', got {line.strip()!r}")
        mos = _number(parts[0], where)
        match = TID_NAME.fullmatch(parts[1])
        if not match or not (1 <= int(match[2]) <= len(TID2013_TYPES) and 1 <= int(match[3]) <= 5):
            raise RankgenError(f"{where}: image name {parts[1]!r} does not parse as iRR_TT_L.bmp "
                               f"(reference RR, distortion type TT in 01-{len(TID2013_TYPES)}, level L in 1-5)")
        ref, kind, level = match[1], int(match[2]), int(match[3])
        items.append(_item(parts[1].lower(), _find(root / "distorted_images", parts[1]), mos, mos,
                           f"I{ref}", TID2013_TYPES[kind - 1], level))
    return _check_present(items, "tid2013", listing)


@SOURCES.register("kadid10k", aliases=("kadid-10k",), kind="scores", task=IQA,
                  help="KADID-10k: <root>/dmos.csv (dist_img, ref_img, dmos, var) and images/ (1-5 rating, higher = better)")
def kadid10k(root=None) -> list[SourceItem]:
    root = require_dir(root, "kadid10k", "~/kadid10k")
    table = _file(root / "dmos.csv", "kadid10k", "<root>/dmos.csv and <root>/images/")
    items = []
    for lineno, row in _csv_rows(table, ("dist_img", "ref_img", "dmos"), "kadid10k"):
        where = f"{table}:{lineno}"
        # KADID's column is called dmos but is a degradation rating with 5 = imperceptible: higher is better.
        dmos = _number(row["dmos"], where)
        match = KADID_NAME.fullmatch(row["dist_img"])
        if not match or not (1 <= int(match[2]) <= len(KADID10K_TYPES) and 1 <= int(match[3]) <= 5):
            raise RankgenError(f"{where}: image name {row['dist_img']!r} does not parse as IRR_TT_LL.png "
                               f"(distortion type TT in 01-{len(KADID10K_TYPES)}, level LL in 01-05)")
        ref = Path(row["ref_img"]).stem.upper() or match[1].upper()
        items.append(_item(row["dist_img"], _find(root / "images", row["dist_img"]), dmos, dmos, ref,
                           KADID10K_TYPES[int(match[2]) - 1], int(match[3])))
    return _check_present(items, "kadid10k", table)


def _mat_vector(mat: dict, key: str, path: Path) -> np.ndarray:
    if key not in mat:
        raise RankgenError(f"{path} has no variable {key!r} (it has {', '.join(k for k in mat if not k.startswith('__'))})")
    return np.asarray(mat[key]).ravel()


def _loadmat(path: Path) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(path)
    except NotImplementedError:
        raise RankgenError(f"{path} is a MATLAB v7.3 (HDF5) file; save it as v7 (save -v7) or use the original release") from None
    except Exception as exc:  # noqa: BLE001  MatReadError, or whatever a damaged header trips on (IndexError, ...)
        raise RankgenError(f"{path} is not a readable MATLAB file ({exc}); re-download it") from None


@SOURCES.register("live", aliases=("live2",), kind="scores", task=IQA,
                  help="LIVE release 2: <root>/dmos.mat, refnames_all.mat, jp2k/ jpeg/ wn/ gblur/ fastfading/ "
                       f"(score = {LIVE_TOP:g} - DMOS)")
def live(root=None) -> list[SourceItem]:
    root = require_dir(root, "live", "~/databaserelease2")
    layout = "<root>/dmos.mat (dmos, orgs), <root>/refnames_all.mat and the folders " + ", ".join(f for f, _ in LIVE_FOLDERS)
    dmos_path = _file(root / "dmos.mat", "live", layout)
    names_path = _file(root / "refnames_all.mat", "live", layout)
    mat = _loadmat(dmos_path)
    dmos = _mat_vector(mat, "dmos", dmos_path).astype(np.float64)
    orgs = _mat_vector(mat, "orgs", dmos_path)
    refnames = _mat_vector(_loadmat(names_path), "refnames_all", names_path)
    total = sum(n for _, n in LIVE_FOLDERS)
    for what, values, path in (("dmos", dmos, dmos_path), ("orgs", orgs, dmos_path), ("refnames_all", refnames, names_path)):
        if len(values) != total:
            raise RankgenError(f"{path}: {what} has {len(values)} entries; LIVE release 2 has {total} "
                               f"({', '.join(f'{f} {n}' for f, n in LIVE_FOLDERS)})")
    items = []
    index = 0
    for folder, count in LIVE_FOLDERS:
        for number in range(1, count + 1):
            if not orgs[index]:  # orgs == 1 marks the undistorted originals, whose DMOS is 0 by definition
                where = f"{dmos_path}: dmos[{index}] ({folder}/img{number}.bmp)"
                value = _number(dmos[index], where)
                ref = Path(str(np.asarray(refnames[index]).ravel()[0])).stem
                items.append(_item(f"{folder}/img{number}.bmp", _find(root / folder, f"img{number}.bmp"),
                                   LIVE_TOP - value, value, ref, folder))
            index += 1
    return _check_present(items, "live", dmos_path)


@SOURCES.register("csiq", kind="scores", task=IQA,
                  help="CSIQ: a CSV export of the DMOS sheet (image, dst_idx, dst_type, dst_lev, dmos) next to "
                       f"dst_imgs/<type>/<image>.<type>.<lev>.png (score = {CSIQ_TOP:g} - DMOS)")
def csiq(root=None) -> list[SourceItem]:
    if root is None:
        raise RankgenError("--dataset csiq needs --root: the CSV export of the DMOS sheet, e.g. --root ~/csiq/csiq.csv")
    table = Path(root).expanduser()
    if table.is_dir():
        found = sorted(table.glob("*.csv"))
        if len(found) != 1:
            raise RankgenError(f"--root {table}: expected exactly one .csv (the DMOS sheet) in the folder, found "
                               f"{len(found)}; pass the CSV file itself as --root")
        table = found[0]
    _file(table, "csiq", "a CSV with columns image, dst_idx, dst_type, dst_lev, dmos next to dst_imgs/")
    images = table.parent / "dst_imgs"
    items = []
    for lineno, row in _csv_rows(table, ("image", "dst_type", "dst_lev", "dmos"), "csiq"):
        where = f"{table}:{lineno}"
        dmos = _number(row["dmos"], where)
        kind = CSIQ_FOLDERS.get(row["dst_type"].lower(), row["dst_type"].lower())
        try:
            level = int(float(row["dst_lev"]))
        except ValueError:
            raise RankgenError(f"{where}: dst_lev {row['dst_lev']!r} is not a whole number") from None
        image = row["image"].removesuffix(".0")  # spreadsheet exports write numeric names as 1600.0
        if not image or not kind:
            raise RankgenError(f"{where}: empty image or dst_type")
        name = f"{image}.{kind}.{level}.png"
        items.append(_item(f"{kind}/{name}", _find(images / kind, name), CSIQ_TOP - dmos, dmos, image, kind, level))
    return _check_present(items, "csiq", table)


@SOURCES.register("afew-va", aliases=("afew_va", "afewva"), kind="scores", task=AFFECT,
                  help="AFEW-VA: <root>/<clip>/<clip>.json with per-frame valence/arousal in [-10, 10], frames "
                       "<clip>/00000.png (--target valence|arousal)")
def afew_va(root=None, target: str = "valence") -> list[SourceItem]:
    if target not in AFEW_TARGETS:
        raise RankgenError(f"--target must be one of {', '.join(AFEW_TARGETS)} for afew-va, got {target!r}")
    root = require_dir(root, "afew-va", "~/AFEW-VA")
    clips = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not clips:
        raise RankgenError(f"{root} has no clip folders; --dataset afew-va expects <root>/<clip>/<clip>.json")
    items = []
    for clip in clips:
        annotation = _file(clip / f"{clip.name}.json", "afew-va", "<root>/<clip>/<clip>.json in every clip folder")
        try:
            frames = json.loads(annotation.read_text(encoding="utf-8"))["frames"]
            entries = sorted(frames.items())
        except (ValueError, KeyError, TypeError, AttributeError):
            raise RankgenError(f"{annotation}: expected JSON with a \"frames\" object mapping frame numbers to "
                               "{\"valence\": v, \"arousal\": a}") from None
        for frame, labels in entries:
            where = f"{annotation}: frame {frame}"
            value = _number(labels.get(target) if isinstance(labels, dict) else None, f"{where} {target}")
            items.append(_item(f"{clip.name}/{frame}", _find(clip, f"{frame}.png"), value, value, clip.name))
    return _check_present(items, "afew-va", root)


@SOURCES.register("csv", kind="scores", task=IQA,
                  help="any CSV of path,score rows (higher = better; optional header with ref, distortion, level); "
                       "--root is the CSV file")
def csv_scores(root=None) -> list[SourceItem]:
    if root is None:
        raise RankgenError("--dataset csv needs --root: the CSV file of path,score rows, e.g. --root ~/my_scores.csv")
    table = Path(root).expanduser()
    _file(table, "csv", "--root to be a CSV file of path,score rows")
    with _csv_text(table) as f:
        rows = [(i, [c.strip() for c in row]) for i, row in enumerate(csv.reader(f), start=1) if any(c.strip() for c in row)]
    header = ["path", "score"]
    if rows and {"path", "score"} & {c.lower() for c in rows[0][1]}:
        header = [h.lower() for h in rows.pop(0)[1]]
        lacking = [c for c in ("path", "score") if c not in header]
        if lacking:
            raise RankgenError(f"{table}: the header lacks {', '.join(lacking)}; it needs path and score "
                               "(and may have ref, distortion, level)")
    items = []
    for lineno, cells in rows:
        where = f"{table}:{lineno}"
        row = dict(zip(header, cells))
        if not row.get("path") or "score" not in row:
            raise RankgenError(f"{where}: expected path,score, got {','.join(cells)!r}")
        score = _number(row["score"], where)
        path = Path(row["path"]).expanduser()
        path = path if path.is_absolute() else table.parent / path
        level = row.get("level") or "-1"
        try:
            level = int(level)
        except ValueError:
            raise RankgenError(f"{where}: level {level!r} is not a whole number") from None
        items.append(_item(row["path"], path, score, score, row.get("ref") or row["path"], row.get("distortion", ""), level))
    return _check_present(items, "csv", table)

