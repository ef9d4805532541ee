"""Fuzzing the two parsers that read untrusted files: image decoding and the recipe parser.

Either one returns a good value or raises the user-facing error (BadImage / RankgenError); any
other exception would reach the user as a traceback instead of a line that names the file.
"""

import io
import string

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from rankgen.distortions import DISTORTIONS
from rankgen.distortions.recipes import Recipe, load_recipe
from rankgen.errors import BadImage, RankgenError
from rankgen.sources.images import load_rgb

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _encoded(fmt: str, **options) -> bytes:
    rng = np.random.default_rng(7)
    image = Image.fromarray((rng.random((34, 40, 3)) * 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: mutations of the EXIF block then reach exif_transpose
    return exif


VALID = {"png": _encoded("PNG"), "jpg": _encoded("JPEG", quality=80, exif=_exif()), "bmp": _encoded("BMP")}


def _check_decoding(tmp_path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"fuzz.{suffix}"
    path.write_bytes(data)
    try:
        image, notes = load_rgb(path)
    except BadImage as error:
        assert "fuzz." in str(error), "the message names the file"
        return
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert all(isinstance(n, str) for n in notes)


def test_the_seeds_decode(tmp_path):
    # Mutations must start from files that decode, or the fuzz only explores garbage.
    for suffix, data in VALID.items():
        path = tmp_path / f"ok.{suffix}"
        path.write_bytes(data)
        assert load_rgb(path)[0].shape[:2] in ((34, 40), (40, 34))


@FUZZ
@given(data=st.binary(max_size=512), suffix=st.sampled_from(["png", "jpg", "bmp", "webp", "tif"]))
@example(data=b"", suffix="png")
@example(data=b"\x89PNG\r\n\x1a\n", suffix="png")
@example(data=b"BM", suffix="bmp")
def test_random_bytes_decode_or_raise_bad_image(tmp_path, data, suffix):
    _check_decoding(tmp_path, data, suffix)


@st.composite
def mutated(draw):
    suffix = draw(st.sampled_from(sorted(VALID)))
    data = bytearray(VALID[suffix])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite_header"]))
        if not data:
            break
        if kind == "flip":
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif kind == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        else:  # headers and EXIF sit in the first bytes, where a change matters most
            i = draw(st.integers(0, min(len(data), 160) - 1))
            data[i] = draw(st.integers(0, 255))
    return suffix, bytes(data)


@FUZZ
@given(case=mutated())
def test_mutated_images_decode_or_raise_bad_image(tmp_path, case):
    suffix, data = case
    _check_decoding(tmp_path, data, suffix)


# -- recipes -----------------------------------------------------------------------------------
NAMES = sorted(DISTORTIONS.names())[:6] + ["gaussian_blur", "jpeg", "tid08", "no_such_distortion"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True, allow_infinity=True),
    st.text(string.printable, max_size=8),
)
# Parameter lists are mostly small sane numbers, so the parser gets past the shape checks to the
# monotonicity, scale, integer and domain checks (which run the distortion on a probe image).
numbers = st.one_of(st.integers(-5, 100), st.floats(-1.0, 100.0, allow_nan=False), scalars)
tables = st.one_of(
    scalars,
    st.lists(numbers, max_size=5),
    st.fixed_dictionaries(
        {"params": st.lists(numbers, max_size=5)},
        optional={"scale": st.sampled_from(["linear", "log", "cubic", 3, None]), "integer": st.one_of(st.booleans(), scalars),
                  "note": scalars, "extra": scalars},
    ),
)
documents = st.one_of(
    st.fixed_dictionaries(
        {"distortions": st.one_of(st.dictionaries(st.sampled_from(NAMES), tables, max_size=3), scalars,
                                  st.lists(scalars, max_size=3))},
        optional={"description": scalars, "unknown": scalars},
    ),
    st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), scalars, max_size=3),
    st.lists(scalars, max_size=3),
    scalars,
)


def _check_recipe(tmp_path, raw: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(raw)
    try:
        recipe = load_recipe(path)
    except RankgenError as error:
        assert "fuzz" in str(error), "the message names the recipe"
        return
    assert isinstance(recipe, Recipe) and recipe.names


@FUZZ
@given(doc=documents)
@example(doc={"": None, 0: None})  # unknown keys of mixed types once made sorted() raise TypeError
@example(doc={"distortions": {"gaussian_blur": {"params": [7, 10**30]}}})
def test_yaml_documents_parse_or_raise_rankgen_error(tmp_path, doc):
    _check_recipe(tmp_path, yaml.safe_dump(doc, allow_unicode=True).encode())


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))),
       encode=st.sampled_from(["utf-8", "latin-1"]))
@example(text="distortions: {gaussian_blur: {params: [1, 2]}, 3: x, y: z}", encode="utf-8")
@example(text="distortions:\n  jpeg: {params: [1, 100000000000000000000000000000000000000000000000000000000" + "0" * 300 + "]}",
         encode="utf-8")
@example(text="\xff\xfe not utf-8", encode="latin-1")
@example(text="[" * 2000, encode="utf-8")
def test_any_text_parses_or_raises_rankgen_error(tmp_path, text, encode):
    _check_recipe(tmp_path, text.encode(encode, errors="replace"))


@pytest.mark.parametrize("name", ["gaussian_blur", "jpeg", "impulse_noise"])
def test_a_valid_table_still_parses(tmp_path, name):
    # The fuzz above passes trivially if everything is refused; a plain table must be accepted.
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump({"distortions": {name: {"params": [0.01, 0.05] if name == "impulse_noise" else [7, 15]}}}))
    assert load_recipe(path).names == [name]
