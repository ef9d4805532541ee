"""Recipes: YAML over a fixed tree of defaults, `--set key=value` overrides, validation.

Every key a recipe may hold is in DEFAULTS; anything else is an error naming the key and its
closest valid spellings, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import math
import difflib
from pathlib import Path

import yaml

from .errors import TrainError

RECIPES_DIR = Path(__file__).resolve().parent.parent / "data_recipes"

DEFAULTS: dict = {
    "name": None,            # run folder runs/<name>; default: the recipe's file name
    "out": "runs",
    "seed": 0,
    "task": "iqa",           # iqa | counting
    "objective": "rank",     # rank | regress | multitask | dcr
    "data": {
        "ranked": None,      # distort (iqa) or crops (counting) corpus
        "labeled": None,     # annotate (iqa, dcr) or density (counting) corpus; trains on split "train"
        "test": None,        # evaluation corpus (all items); default: split "test" of data.labeled
        "build": None,       # rankgen commands that create missing corpora: {path: [args...]}
        "target": "score",   # labeled column regressed on and evaluated against
        "heldout": 0.34,     # fraction of ranked references kept out of training to measure PRA
        "val": 0.2,          # fraction of the labeled training references kept out to choose best.pt
        "patch": 224,        # training sub-image side (pixels, no rescaling for IQA)
        "small_images": "reflect",  # reflect | resize: images smaller than the patch
        "rotate": 0.0,       # +- degrees of random rotation (DCR uses 45)
        "scales": [56, 448], # counting: side range of multi-scale square patches
        "test_crops": 30,    # IQA: random crops averaged per test image
        "workers": 0,
        "cache_mb": 512,
    },
    "model": {"arch": "vgg16", "weights": None, "width": None},
    "loss": {
        "margin": 1.0,       # epsilon of the ranking hinge (Eq. 4)
        "lambda": 1.0,       # weight of L_rank in L_reg + lambda L_rank (Eq. 5)
        "lambda1": 0.2, "lambda2": 0.2, "lambda3": 0.2,  # DCR Eq. 7
        "gamma": 0.1,        # DCR margin (Eq. 2); 0 lets every prediction collapse to one value (docs/training.md)
        "disjoint": True,    # DCR: L_d-rank (True) or plain L_rank (False)
        "grl": True,         # DCR: annotator classifier with gradient reversal (False = DCR[-])
    },
    "optim": {
        "optimizer": "sgd",  # sgd | adam
        "lr": 1e-4, "momentum": 0.9, "weight_decay": 5e-4,
        "step_every": 10, "step_gamma": 0.1,   # step decay, in epochs
        "epochs": 20,
        "batch_size": 72,    # images per ranked (or DCR) batch
        "labeled_batch": 32, # images per labeled batch in regress / multitask / counting
        "iters_per_epoch": None,
        "patience": None,    # stop after this many epochs without a better validation score
    },
    "train": {"device": "auto", "amp": True, "channels_last": True, "compile": False, "progress": True},
}

CHOICES = {
    "task": ("iqa", "counting"),
    "objective": ("rank", "regress", "multitask", "dcr"),
    "data.small_images": ("reflect", "resize"),
    "train.device": ("auto", "cpu", "cuda"),
    "optim.optimizer": ("sgd", "adam"),
}

# Allowed ranges, (low, high, what): None is unbounded; an int default means a whole number. A value
# outside is refused with the key and the range, never clamped or left to fail deep in torch.
RANGES = {
    "seed": (0, 2**63 - 1, "a non-negative whole number"),
    "data.heldout": (0.0, 0.99, "a fraction in [0, 0.99]"),
    "data.val": (0.0, 0.9, "a fraction in [0, 0.9]"),
    "data.patch": (16, 2048, "pixels in [16, 2048]"),
    "data.rotate": (0.0, 180.0, "degrees in [0, 180]"),
    "data.test_crops": (1, 1000, "a whole number in [1, 1000]"),
    "data.workers": (0, 256, "a whole number in [0, 256]"),
    "data.cache_mb": (0, None, "megabytes >= 0"),
    "loss.margin": (0.0, None, "a number >= 0"),
    "loss.lambda": (0.0, None, "a number >= 0"),
    "loss.lambda1": (0.0, None, "a number >= 0"),
    "loss.lambda2": (0.0, None, "a number >= 0"),
    "loss.lambda3": (0.0, None, "a number >= 0"),
    "loss.gamma": (0.0, None, "a number >= 0"),
    "optim.lr": (1e-12, None, "a number > 0"),
    "optim.momentum": (0.0, 0.9999, "a number in [0, 1)"),
    "optim.weight_decay": (0.0, None, "a number >= 0"),
    "optim.step_every": (1, None, "a whole number of epochs >= 1"),
    "optim.step_gamma": (1e-12, 1.0, "a factor in (0, 1]"),
    "optim.epochs": (1, None, "a whole number >= 1"),
    "optim.batch_size": (2, None, "a whole number >= 2 (a pair)"),
    "optim.labeled_batch": (1, None, "a whole number >= 1"),
    "optim.iters_per_epoch": (1, None, "null or a whole number >= 1"),
    "optim.patience": (1, None, "null or a whole number of epochs >= 1"),
}

# A recipe must say what it trains; everything else has a default.
REQUIRED = ("objective", "model.arch")

# Which corpora each objective needs (checked after overrides, so --set can supply them).
NEEDS = {"rank": ("ranked",), "regress": ("labeled",), "multitask": ("ranked", "labeled"), "dcr": ("labeled",)}


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        key = prefix + str(k)
        if isinstance(v, dict) and key != "data.build":
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


KEYS = _flat(DEFAULTS)


def _unknown(key: str, where: str, keys: dict) -> TrainError:
    close = difflib.get_close_matches(key, list(keys), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return TrainError(f"unknown key {key!r} in {where}.{hint}")


def _set(cfg: dict, key: str, value, where: str, keys: dict = KEYS) -> None:
    if key not in keys:
        raise _unknown(key, where, keys)
    *parents, last = key.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    node[last] = value


def resolve_recipe(recipe: str | None) -> Path | None:
    if recipe is None:
        return None
    path = Path(recipe)
    if not path.exists() and (RECIPES_DIR / path.name).exists():
        path = RECIPES_DIR / path.name
    if not path.exists() and (RECIPES_DIR / f"{recipe}.yaml").exists():
        path = RECIPES_DIR / f"{recipe}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
        raise TrainError(f"recipe {recipe!r} not found (looked in . and {RECIPES_DIR}); known: {', '.join(known)}")
    return path


def read_recipe(path: Path) -> dict:
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TrainError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise TrainError(f"{path} must be a mapping of keys to values")
    return loaded


def apply_settings(cfg: dict, loaded: dict, overrides, path: Path, keys: dict = KEYS) -> dict:
    """cfg <- the recipe's keys <- `--set key=value` overrides (values parsed as YAML); name defaults to the recipe's."""
    for key, value in _flat(loaded).items():
        _set(cfg, key, value, str(path), keys)
    for item in overrides:
        if "=" not in item:
            raise TrainError(f"--set {item!r}: expected key=value, e.g. --set optim.lr=1e-3")
        key, raw = item.split("=", 1)
        _set(cfg, key.strip(), yaml.safe_load(raw) if raw.strip() else None, "--set", keys)
    if cfg["name"] is None:
        cfg["name"] = path.stem
    return cfg


def load_config(recipe: str | None, overrides: list[str] = ()) -> dict:
    """Defaults <- recipe (data_recipes/default.yaml when none) <- --set overrides, validated."""
    path = resolve_recipe(recipe) or RECIPES_DIR / "default.yaml"
    loaded = read_recipe(path)
    missing = [k for k in REQUIRED if k not in _flat(loaded)]
    if missing:
        raise TrainError(f"{path} lacks required key{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                         f"(e.g. objective: rank, model.arch: vgg16)")
    cfg = apply_settings(copy.deepcopy(DEFAULTS), loaded, overrides, path)
    validate(cfg)
    return cfg


def validate(cfg: dict) -> None:
    flat = _flat(cfg)
    for key, allowed in CHOICES.items():
        if flat[key] not in allowed:
            raise TrainError(f"{key}={flat[key]!r}: choose one of {', '.join(allowed)}")
    for role in NEEDS[cfg["objective"]]:
        if not cfg["data"][role]:
            raise TrainError(f"objective {cfg['objective']!r} needs data.{role} (a corpus path); "
                             f"add it to the recipe or pass --set data.{role}=FILE.h5")
    for key, default in KEYS.items():
        value = flat[key]
        if isinstance(default, float) and isinstance(value, str):
            # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
            else:
                _set(cfg, key, value, "recipe")
        if isinstance(default, bool) and not isinstance(value, bool):
            raise TrainError(f"{key}={value!r}: expected true or false")
        numeric = isinstance(default, (int, float)) or key in RANGES
        if numeric and not isinstance(default, bool) and value is not None and (
                not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise TrainError(f"{key}={value!r}: expected a number")
        check_range(cfg, key, value)
    lc = cfg["loss"]
    if cfg["objective"] == "dcr" and lc["grl"] and lc["lambda2"] == 0 and lc["lambda3"] > 0:
        raise TrainError(f"loss.lambda2=0 with loss.lambda3={lc['lambda3']}: the annotator classifier h_psi would never "
                         "learn (Eq. 5), so L_theta would fight a random classifier; give lambda2 > 0, or drop the "
                         "adversarial term with --set loss.grl=false")
    scales = cfg["data"]["scales"]
    if (not isinstance(scales, list) or len(scales) != 2 or not all(isinstance(v, int) for v in scales)
            or not 1 <= scales[0] <= scales[1]):
        raise TrainError(f"data.scales={scales!r}: expected [low, high] pixel sides with 1 <= low <= high")
    if cfg["task"] == "counting" and cfg["objective"] == "dcr":
        raise TrainError("objective dcr is for labeled scores (task iqa), not counting")


def check_range(cfg: dict, key: str, value) -> None:
    """Refuse a value outside RANGES[key], naming the key and the range; 2.0 for a whole number is 2."""
    if key not in RANGES or (value is None and KEYS[key] is None):
        return
    low, high, what = RANGES[key]
    whole = isinstance(low, int)
    if (value is None or not math.isfinite(value) or (whole and value != int(value))
            or value < low or (high is not None and value > high)):
        raise TrainError(f"{key}={value!r}: expected {what}")
    if whole:
        _set(cfg, key, int(value), "recipe")


def dump(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
