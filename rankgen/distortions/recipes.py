"""Distortion recipes: per distortion, a table of parameters for levels 1..T (mild -> severe).

`params(name, n_levels)` maps levels 1..n_levels-1 onto the table (level 0 is the pristine
reference). Level k sits at table position u = (k-1)(T-1)/(n_levels-2), so the first and last
levels are the table's ends and n_levels = T+1 gives the table itself; a single distorted level
(n_levels = 2) takes the middle, u = (T-1)/2. Between table entries values are piecewise linear in u,
in log space for `scale: log`. Integer parameters are rounded and then moved the least needed to
stay strictly monotone, which fails only when the table's range holds too few integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

import rankgen

from ..errors import RankgenError
from .base import DISTORTIONS, distort

RECIPES_DIR = Path(rankgen.__file__).parent.parent / "data_recipes"
TOP_KEYS = {"description", "distortions"}
TABLE_KEYS = {"params", "scale", "integer", "note"}
SCALES = ("linear", "log")
PROBE_SIDE = 32


@dataclass(frozen=True)
class Table:
    values: tuple[float, ...]
    scale: str = "linear"
    integer: bool = False


def table_positions(n_levels: int, table_size: int) -> np.ndarray:
    """Table positions (0-based, fractional) of levels 1..n_levels-1."""
    if n_levels < 2:
        raise RankgenError(f"--levels must be >= 2 (the reference and at least one distortion), got {n_levels}")
    if n_levels == 2:
        return np.array([(table_size - 1) / 2])
    return np.arange(n_levels - 1) * (table_size - 1) / (n_levels - 2)


def interpolate(table: Table, n_levels: int) -> np.ndarray:
    positions = table_positions(n_levels, len(table.values))
    values = np.asarray(table.values, dtype=np.float64)
    index = np.arange(len(values))
    if table.scale == "log":
        sign = np.sign(values[0])
        curve = sign * np.exp(np.interp(positions, index, np.log(np.abs(values))))
    else:
        curve = np.interp(positions, index, values)
    # Levels that land on a table entry get it exactly, not its exp(log(.)) round trip.
    on_entry = np.isclose(positions, np.rint(positions), rtol=0, atol=1e-9)
    curve[on_entry] = values[np.rint(positions[on_entry]).astype(int)]
    return curve


def distinct_integers(targets: np.ndarray, first: int, last: int) -> np.ndarray:
    """Rounded targets, nudged to strictly increasing integers from `first` to `last` inclusive."""
    count = len(targets)
    steps = np.arange(count)
    low, high = first + steps, last - (count - 1 - steps)
    out = np.clip(np.rint(targets), low, high).astype(np.int64)
    for k in range(1, count):
        out[k] = max(out[k], out[k - 1] + 1)
    return out


def integer_schedule(name: str, table: Table, values: np.ndarray) -> np.ndarray:
    direction = 1 if table.values[-1] > table.values[0] else -1
    first, last = direction * int(table.values[0]), direction * int(table.values[-1])
    available = last - first + 1
    wanted = len(values)
    if wanted > available:
        raise RankgenError(
            f"distortion {name!r}: its integer parameter has only {available} distinct values from "
            f"{table.values[0]:g} to {table.values[-1]:g}, too few for {wanted} distorted levels; "
            f"use --levels {available + 1} or fewer, or leave {name} out of the recipe"
        )
    return direction * distinct_integers(direction * values, first, last)


@dataclass(frozen=True)
class Recipe:
    name: str
    text: str
    tables: dict[str, Table]

    @property
    def names(self) -> list[str]:
        return list(self.tables)

    def table(self, name: str) -> Table:
        canonical = DISTORTIONS.canonical(name)
        if canonical not in self.tables:
            raise RankgenError(f"recipe {self.name!r} has no distortion {name!r}; it has {', '.join(self.names)}")
        return self.tables[canonical]

    def params(self, name: str, n_levels: int) -> list[float]:
        """Parameters of levels 1..n_levels-1, strictly monotone from mild to severe."""
        table = self.table(name)
        values = interpolate(table, n_levels)
        if table.integer:
            values = integer_schedule(DISTORTIONS.canonical(name), table, values)
        return [float(v) for v in values]

    def tid(self, name: str) -> int:
        self.table(name)
        return int(DISTORTIONS.entry(name).info["tid"])


def _fail(recipe: str, key: str, message: str) -> RankgenError:
    return RankgenError(f"recipe {recipe!r}: {key}: {message}")


def _number(value: object) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def parse_table(recipe: str, name: str, spec: object) -> Table:
    key = f"distortions.{name}"
    if not isinstance(spec, dict):
        raise _fail(recipe, key, "must be a mapping with params (and optionally scale, integer, note)")
    unknown = sorted(set(spec) - TABLE_KEYS, key=str)  # key=str: YAML keys may mix numbers and text
    if unknown:
        raise _fail(recipe, f"{key}.{unknown[0]}", f"unknown key; allowed: {', '.join(sorted(TABLE_KEYS))}")
    values = spec.get("params")
    if not isinstance(values, list) or len(values) < 2 or not all(_number(v) for v in values):
        raise _fail(recipe, f"{key}.params", f"must be a list of at least 2 finite numbers, got {values!r}")
    steps = np.diff(np.asarray(values, dtype=np.float64))
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise _fail(recipe, f"{key}.params", f"must be strictly monotone (mild -> severe), got {values}")
    scale = spec.get("scale", "linear")
    if scale not in SCALES:
        raise _fail(recipe, f"{key}.scale", f"must be one of {', '.join(SCALES)}, got {scale!r}")
    if scale == "log" and not (all(v > 0 for v in values) or all(v < 0 for v in values)):
        raise _fail(recipe, f"{key}.scale", f"log scale needs params of one sign, none zero, got {values}")
    integer = spec.get("integer", False)
    if not isinstance(integer, bool):
        raise _fail(recipe, f"{key}.integer", f"must be true or false, got {integer!r}")
    if integer and not all(float(v).is_integer() for v in values):
        raise _fail(recipe, f"{key}.params", f"integer: true needs whole numbers, got {values}")
    if "note" in spec and not isinstance(spec["note"], str):
        raise _fail(recipe, f"{key}.note", "must be text")
    return Table(tuple(float(v) for v in values), scale, integer)


@lru_cache(maxsize=None)
def _domain_error(name: str, value: float) -> str | None:
    """Run one value on a tiny image; cached because loading is repeated and jpeg2000 costs ~30 ms."""
    probe = np.full((PROBE_SIDE, PROBE_SIDE, 3), 128, dtype=np.uint8)
    try:
        distort(probe, name, value, np.random.default_rng(0))
    except RankgenError as error:
        return str(error)
    except Exception as error:  # noqa: BLE001  e.g. OpenCV refusing a huge kernel: still the table's fault
        return f"{value:g} does not work ({type(error).__name__}: {error}); use a value in the distortion's range"
    return None


def _probe(recipe: str, name: str, table: Table) -> None:
    """Out-of-domain params fail at load, naming the key, not hours into a run."""
    for value in table.values:
        error = _domain_error(name, value)
        if error:
            raise _fail(recipe, f"distortions.{name}.params", error)


def parse_recipe(name: str, text: str) -> Recipe:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RankgenError(f"recipe {name!r} is not valid YAML: {error}") from None
    except RecursionError:
        raise RankgenError(f"recipe {name!r} is nested too deeply to be a recipe") from None
    if not isinstance(data, dict):
        raise RankgenError(f"recipe {name!r} must be a mapping with a 'distortions' table")
    unknown = sorted(set(data) - TOP_KEYS, key=str)
    if unknown:
        raise _fail(name, unknown[0], f"unknown key; allowed: {', '.join(sorted(TOP_KEYS))}")
    specs = data.get("distortions")
    if not isinstance(specs, dict) or not specs:
        raise _fail(name, "distortions", "must be a non-empty mapping of distortion name -> table")
    tables: dict[str, Table] = {}
    for key, spec in specs.items():
        if str(key) not in DISTORTIONS:
            try:
                DISTORTIONS.canonical(str(key))
            except RankgenError as error:
                raise _fail(name, f"distortions.{key}", str(error)) from None
        canonical = DISTORTIONS.canonical(str(key))
        if canonical in tables:
            raise _fail(name, f"distortions.{key}", f"names {canonical!r} a second time")
        tables[canonical] = parse_table(name, canonical, spec)
        _probe(name, canonical, tables[canonical])
    return Recipe(name, text, tables)


def available_recipes() -> list[str]:
    return sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A recipe by name (data_recipes/<name>.yaml) or by path to a YAML file."""
    text_form = str(name_or_path)
    is_path = isinstance(name_or_path, Path) or text_form.endswith((".yaml", ".yml")) or "/" in text_form
    path = Path(name_or_path) if is_path else RECIPES_DIR / f"{text_form}.yaml"
    if not path.is_file():
        known = ", ".join(available_recipes()) or "none"
        raise RankgenError(f"no recipe {text_form!r} (looked for {path}); recipes in {RECIPES_DIR}: {known}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise RankgenError(f"recipe {text_form!r} is not UTF-8 text (byte {error.start}); save it as UTF-8 YAML") from None
    return parse_recipe(path.stem, text)
