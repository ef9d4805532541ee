"""The distortion registry, its recipes and the monotonicity promise, iterated over every type."""

from __future__ import annotations

import hashlib
from functools import lru_cache

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data

from rankgen.distortions import DISTORTIONS, METRICS, distort, load_recipe
from rankgen.distortions.base import FAMILIES
from rankgen.distortions.recipes import RECIPES_DIR, Table, interpolate, integer_schedule, parse_recipe
from rankgen.errors import BadImage, RankgenError

NAMES = DISTORTIONS.names()
TID = load_recipe("tid2013")
# tid2013-full.yaml: tid2013.yaml's tables plus the seven types RankIQA could not generate.
FULL = load_recipe("tid2013-full")
# Registered types allowed outside tid2013.yaml, each with the reason.
NOT_IN_TID2013: dict[str, str] = {
    name: "approximates a type RankIQA could not generate; in tid2013-full.yaml"
    for name in ("spatially_correlated_noise", "masked_noise", "jpeg_transmission_errors",
                 "jpeg2000_transmission_errors", "comfort_noise", "noisy_image_compression", "sparse_sampling")
}
KADID = load_recipe("kadid10k")
# Types registered for KADID-10k only; they take their tables from kadid10k.yaml.
KADID_ONLY = sorted(n for n in NAMES if DISTORTIONS.entry(n).info["tid"] == 0)
RECIPE = {name: FULL if name in FULL.names else KADID for name in NAMES}
# Nested blocks (2, 4, 8, 16, 32 px) at the table levels only; 9 levels interpolate sides that do not nest.
NOT_MONOTONE_AT_9 = {"pixelate"}
# quantization_noise has 7 whole threshold counts (9..3), so at most 8 levels.
TOO_FEW_INTEGERS = {("quantization_noise", 9)}
SIZES = ((128, 96), (256, 192))


def _greyish(image: np.ndarray) -> np.ndarray:
    grey = image.mean(axis=2, keepdims=True)
    return np.rint(grey + 0.25 * (image - grey)).astype(np.uint8)


@lru_cache(maxsize=None)
def photo(name: str, size: tuple[int, int]) -> np.ndarray:
    sources = {
        "astronaut": data.astronaut,
        "chelsea": data.chelsea,
        "coffee": data.coffee,
        "rocket": data.rocket,
        "greyish_coffee": lambda: _greyish(data.coffee()),
    }
    image = cv2.resize(sources[name](), size, interpolation=cv2.INTER_AREA)
    image.setflags(write=False)
    return image


PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "greyish_coffee")


def _rng(seed: int, level: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, level])


def _quality_curve(name: str, image: np.ndarray, n_levels: int, seed: int) -> list[float]:
    measure = METRICS[DISTORTIONS.entry(name).info["metric"]]
    params = RECIPE[name].params(name, n_levels)
    # Independent streams per level, as a corpus derives them, so nothing relies on shared noise.
    return [measure(image, image)] + [
        measure(image, distort(image, name, p, _rng(seed, level))) for level, p in enumerate(params, 1)
    ]


@pytest.mark.parametrize("name", NAMES)
def test_registration_info(name):
    info = DISTORTIONS.entry(name).info
    assert isinstance(info["tid"], int) and 1 <= info["tid"] <= 24 or (info["tid"] == 0 and 1 <= info["kadid"] <= 25)
    assert info["family"] in FAMILIES
    assert info["metric"] in METRICS
    assert isinstance(info["random"], bool)


def test_tid_aliases():
    assert DISTORTIONS.canonical("tid08") == "gaussian_blur"
    assert DISTORTIONS.canonical("tid16") == "mean_shift"
    assert DISTORTIONS.canonical("tid17") == "contrast_decrease"
    assert DISTORTIONS.canonical("tid12") == "jpeg_transmission_errors"
    assert len(NAMES) == 26 + len(KADID_ONLY)
    assert sorted({DISTORTIONS.entry(n).info["tid"] for n in FULL.names}) == list(range(1, 25))


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_and_input_untouched(name):
    image = photo("chelsea", (128, 96))
    for param in RECIPE[name].params(name, 5):
        out = distort(image, name, param, _rng(0))
        assert out.shape == image.shape and out.dtype == np.uint8


@pytest.mark.parametrize("name", NAMES)
def test_determinism_by_seed(name):
    image = photo("coffee", (128, 96))
    param = RECIPE[name].params(name, 5)[1]
    first = distort(image, name, param, _rng(7)).tobytes()
    assert distort(image, name, param, _rng(7)).tobytes() == first
    other = distort(image, name, param, _rng(8)).tobytes()
    assert (other != first) == DISTORTIONS.entry(name).info["random"]


@pytest.mark.parametrize("name", NAMES)
def test_every_type_is_in_tid2013_recipe(name):
    assert name in TID.names or name in NOT_IN_TID2013 or name in KADID_ONLY
    assert name in FULL.names or name in KADID.names


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", SIZES)
def test_quality_strictly_decreases_along_table_levels(name, size):
    for source in PHOTOS:
        curve = _quality_curve(name, photo(source, size), 5, seed=1)
        assert all(a > b for a, b in zip(curve, curve[1:])), f"{name} on {source} {size}: {curve}"


@pytest.mark.parametrize("name", NAMES)
def test_quality_strictly_decreases_along_nine_levels(name):
    if (name, 9) in TOO_FEW_INTEGERS:
        pytest.skip("integer table too short for 9 levels (see TOO_FEW_INTEGERS)")
    if name in NOT_MONOTONE_AT_9:
        pytest.skip("see NOT_MONOTONE_AT_9")
    for source in PHOTOS[:4]:
        curve = _quality_curve(name, photo(source, (256, 192)), 9, seed=2)
        assert all(a > b for a, b in zip(curve, curve[1:])), f"{name} on {source}: {curve}"


def test_table_levels_are_the_recipe_values_and_exclude_the_reference():
    tables = yaml.safe_load((RECIPES_DIR / "tid2013.yaml").read_text())["distortions"]
    for name in TID.names:
        assert TID.params(name, 5) == [float(v) for v in tables[name]["params"]]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n_levels", [2, 3, 7, 9])
def test_interpolated_schedules_are_strictly_monotone(name, n_levels):
    recipe = RECIPE[name]
    if (name, n_levels) in TOO_FEW_INTEGERS:
        with pytest.raises(RankgenError, match=name):
            recipe.params(name, n_levels)
        return
    params = recipe.params(name, n_levels)
    table = recipe.table(name).values
    assert len(params) == n_levels - 1
    assert min(table) <= min(params) and max(params) <= max(table)
    if n_levels > 2:
        assert (params[0], params[-1]) == (table[0], table[-1])
        assert np.all(np.diff(params) * np.sign(table[-1] - table[0]) > 0)


def test_interpolation_rule_examples():
    # One distorted level: the table's middle, in log space for log tables.
    assert TID.params("gaussian_noise", 2) == pytest.approx([np.sqrt(0.005 * 0.01)])
    assert TID.params("mean_shift", 2) == pytest.approx([37.5])
    # Seven levels: positions 0, 0.6, ..., 3; jpeg is log-interpolated, then rounded.
    assert TID.params("mean_shift", 7) == pytest.approx([15, 24, 33, 42, 51, 60])
    assert TID.params("jpeg", 7) == [43.0, 20.0, 11.0, 8.0, 6.0, 4.0]
    with pytest.raises(RankgenError, match="--levels 8 or fewer"):
        TID.params("quantization_noise", 9)


def test_too_few_levels_is_an_error():
    with pytest.raises(RankgenError, match="--levels"):
        TID.params("jpeg", 1)


@st.composite
def tables(draw):
    integer = draw(st.booleans())
    scale = draw(st.sampled_from(["linear", "log"]))
    size = draw(st.integers(2, 6))
    if integer:
        values = sorted(draw(st.lists(st.integers(1, 400), min_size=size, max_size=size, unique=True)))
    else:
        # Entries at least 0.1% apart: closer ones are one value for any practical purpose.
        steps = draw(st.lists(st.floats(1e-3, 1.0), min_size=size - 1, max_size=size - 1))
        start = draw(st.floats(1e-3, 10.0))
        values = list(start * np.cumprod([1.0] + [1 + step for step in steps]))
    if draw(st.booleans()):
        values = values[::-1]
    sign = -1 if scale == "linear" and draw(st.booleans()) else 1
    return Table(tuple(sign * float(v) for v in values), scale, integer)


@settings(max_examples=200, deadline=None)
@given(tables(), st.integers(2, 12))
def test_schedule_interpolation_properties(table, n_levels):
    values = interpolate(table, n_levels)
    if table.integer:
        available = abs(table.values[-1] - table.values[0]) + 1
        if n_levels - 1 > available:
            with pytest.raises(RankgenError):
                integer_schedule("x", table, values)
            return
        values = integer_schedule("x", table, values)
        assert np.all(values == np.rint(values))
    low, high = min(table.values), max(table.values)
    assert np.all((values >= low - 1e-9 * abs(low)) & (values <= high + 1e-9 * abs(high)))
    direction = np.sign(table.values[-1] - table.values[0])
    assert np.all(np.diff(values) * direction > 0)
    if n_levels == len(table.values) + 1:
        assert list(values) == list(table.values)


@pytest.mark.parametrize("name", NAMES)
def test_small_and_flat_images_do_not_crash(name):
    small = np.ascontiguousarray(photo("astronaut", (128, 96))[:32, :32])
    flat = np.full((40, 48, 3), 128, dtype=np.uint8)
    for image in (small, flat):
        for param in RECIPE[name].params(name, 5):
            assert distort(image, name, param, _rng(3)).shape == image.shape


@pytest.mark.parametrize(
    "image",
    [np.zeros((64, 64), np.uint8), np.zeros((64, 64, 3), np.float32), np.zeros((16, 64, 3), np.uint8)],
)
def test_bad_images_are_refused(image):
    with pytest.raises(BadImage):
        distort(image, "jpeg", 43, _rng(0))


def test_unknown_distortion_suggests_a_name():
    with pytest.raises(RankgenError, match="gaussian_blur"):
        distort(photo("coffee", (128, 96)), "gaussian_blurr", 7, _rng(0))


GOOD = "distortions:\n  jpeg:\n    params: [43, 12, 7, 4]\n    integer: true\n"


@pytest.mark.parametrize(
    "text, key",
    [
        ("distortions: {jpeg: {params: [43, 12, 7, 4]}}\nlevels: 5\n", "levels"),
        ("distortions: {jpeg: {params: [43, 12, 7, 4], sclae: log}}", "distortions.jpeg.sclae"),
        ("distortions: {jpgg: {params: [43, 12, 7, 4]}}", "distortions.jpgg"),
        ("distortions: {jpeg: {params: [43, 7, 12, 4]}}", "distortions.jpeg.params"),
        ("distortions: {jpeg: {params: [43, 43, 7, 4]}}", "distortions.jpeg.params"),
        ("distortions: {jpeg: {params: [43, 12, 7, 4], scale: cubic}}", "distortions.jpeg.scale"),
        ("distortions: {jpeg: {params: [43.5, 12, 7, 4], integer: true}}", "distortions.jpeg.params"),
        ("distortions: {mean_shift: {params: [-15, 15, 30], scale: log}}", "distortions.mean_shift.scale"),
        ("distortions: {contrast_decrease: {params: [1.2, 1.4]}}", "distortions.contrast_decrease.params"),
        ("distortions: {jpeg: {params: [43, 12, 7, 4]}, tid10: {params: [40, 4]}}", "distortions.tid10"),
        ("distortions: {jpeg: 43}", "distortions.jpeg"),
        ("distortions: {}", "distortions"),
        ("distortions: [jpeg", "YAML"),
    ],
)
def test_bad_recipes_raise_naming_the_key(text, key):
    with pytest.raises(RankgenError, match=key.replace(".", r"\.")):
        parse_recipe("bad", text)


def test_recipe_by_path_and_by_name(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD)
    recipe = load_recipe(path)
    assert (recipe.name, recipe.text, recipe.names) == ("mine", GOOD, ["jpeg"])
    assert recipe.tid("tid10") == 10
    with pytest.raises(RankgenError, match="tid2013"):
        load_recipe("no_such_recipe")


def test_full_recipe_keeps_the_tid2013_tables():
    for name in TID.names:
        assert FULL.table(name) == TID.table(name)


def test_kadid_recipe_has_25_types():
    kadid = {DISTORTIONS.entry(n).info.get("kadid") for n in KADID_ONLY}
    assert None not in kadid
    # 27 entries: KADID #18 and #25 run through zero and are split into their two directions.
    assert len(KADID.names) == 27


def test_live_recipe_has_the_four_live_types_with_the_tid2013_tables():
    live = load_recipe("live")
    assert sorted(live.names) == ["gaussian_blur", "gaussian_noise", "jpeg", "jpeg2000"]
    for name in live.names:
        assert live.table(name) == TID.table(name)


# Pinned outputs; a change means corpora made before and after it differ. jpeg also pins the
# libjpeg-turbo build that OpenCV bundles.
GOLDEN = {
    ("gaussian_blur", 15.0): "fb8cedb505568518b861c97ab813f57ec869ceca0563f864b891f2815c1c9cb5",
    ("jpeg", 12.0): "96a2763aa7485e2c3ff7ab2b8bff049474fd0b8d218d6b4265ccdbfff64c580e",
}


@pytest.mark.parametrize("name, param", sorted(GOLDEN))
def test_golden_outputs(name, param):
    out = distort(photo("astronaut", (128, 96)), name, param, _rng(0))
    assert hashlib.sha256(out.tobytes()).hexdigest() == GOLDEN[(name, param)]
