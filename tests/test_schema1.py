"""Corpora of schema version 1 (raw typed pixels under an lzf filter, offsets counted in values) stay
readable: by the reader, `rankgen check`, `info`, `merge` (into a schema 2 file) and `verify --drop`.

The fixture is written with plain h5py in exactly the layout the schema 1 writer produced (the
layout of docs/schema.md's version 1 section, checked against a file that writer made)."""

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from rankgen.cli import main
from rankgen.corpus import Corpus
from rankgen.corpus import schema as S
from rankgen.corpus.check import check
from rankgen.corpus.codec import crc32
from rankgen.corpus.writer import dataset_digests
from rankgen.distortions import corrupt


def write_schema1(path, kind, columns: dict, ragged: dict, tables: dict, attrs: dict):
    """columns: name -> 1-D array; ragged: name -> list of arrays; as the schema 1 writer stored them."""
    n = len(next(iter(columns.values())))
    with h5py.File(path, "w") as f:
        f.attrs.update({S.ATTR_FORMAT: S.FORMAT, S.ATTR_VERSION: 1, S.ATTR_KIND: kind, S.ATTR_RANKGEN_VERSION: "0.1.0",
                        S.ATTR_FINGERPRINT: "schema1", S.ATTR_COMMITTED: n, S.ATTR_COMPLETE: False,
                        S.ATTR_JOBS_DONE: n, S.ATTR_SKIPPED: "[]"})
        for key, value in attrs.items():
            f.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
        items = f.create_group(S.ITEMS)
        for name, values in columns.items():
            values = np.asarray(values)
            dtype = h5py.string_dtype() if values.dtype.kind in "UO" else values.dtype
            items.create_dataset(name, data=values.astype(object) if values.dtype.kind in "UO" else values,
                                 dtype=dtype, maxshape=(None,), chunks=(4096,), track_times=False)
        for name, arrays in ragged.items():
            g = f.create_group(f"{S.RAGGED}/{name}")
            flat = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0, np.float32)
            g.create_dataset(S.DATA, data=flat, maxshape=(None,), chunks=(max(1024, (1 << 18) // flat.itemsize),),
                             compression="lzf", track_times=False)
            sizes = np.array([a.size for a in arrays], dtype=np.int64)
            g.create_dataset(S.OFFSET, data=np.cumsum(sizes) - sizes)
            ndim = arrays[0].ndim if arrays else 2
            g.create_dataset(S.SHAPE, data=np.array([a.shape for a in arrays], dtype=np.int32).reshape(-1, ndim))
            g.create_dataset(S.CRC, data=np.array([crc32(a) for a in arrays], dtype=np.uint32))
        t = f.create_group(S.TABLES)
        for name, value in tables.items():
            value = np.asarray(value)
            if value.dtype.kind in "UO":
                t.create_dataset(name, data=value.astype(object), dtype=h5py.string_dtype())
            else:
                t.create_dataset(name, data=value)
        f.attrs[S.ATTR_N_ITEMS] = n
        f.attrs[S.ATTR_CHECKSUMS] = json.dumps(dataset_digests(f), sort_keys=True)
        f.attrs[S.ATTR_COMPLETE] = True


def distort_schema1(path, photo, shard=None):
    images, ref, level, names = [], [], [], []
    for r, view in enumerate([photo[:48, :64], photo[16:72, 8:80]]):
        for name, lv in (("reference", 0), ("jpeg", 1), ("jpeg", 2)):
            images.append(view if lv == 0 else corrupt(view, name, level=lv * 2))
            ref.append(r), level.append(lv), names.append(name)
    params = {"dataset": "folder", "levels": 3, "shard": shard}
    write_schema1(path, "distort", {"ref": np.array(ref), "distortion": np.array(names), "level": np.array(level)},
                  {"image": images}, {"groups": np.arange(6).reshape(2, 3), "ref_id": np.array(["a", "b"])},
                  {S.ATTR_COMMAND: "rankgen distort", S.ATTR_SEED: 0, S.ATTR_PARAMS: params})
    return images


def test_schema1_corpus_reads_and_checks(tmp_path, photo):
    path = tmp_path / "old.h5"
    images = distort_schema1(path, photo)
    c = Corpus(path, kind="distort")
    assert c.version == 1 and len(c) == 6
    for i, image in enumerate(images):
        np.testing.assert_array_equal(c.image(i), image)
    assert c.ragged_spec("image") == ("|u1", 3)
    c.close()
    assert check(path) == []
    with h5py.File(path, "a") as f:
        f["ragged/image/data"][100] ^= 0xFF
    assert any("fail their CRC, first at item 0" in p for p in check(path))


def test_schema1_float_arrays_read(tmp_path):
    maps = [np.random.default_rng(i).random((5 + i, 7)).astype(np.float32) for i in range(3)]
    path = tmp_path / "density1.h5"
    write_schema1(path, "density", {"count": np.array([1.0, 2.0, 3.0])}, {"density": maps}, {}, {})
    c = Corpus(path, kind="density")
    for i, m in enumerate(maps):
        np.testing.assert_array_equal(c.ragged("density", i), m)
    assert check(path) == []


def test_an_empty_schema1_corpus_reads_as_empty_not_damaged(tmp_path):
    """Every source skipped leaves a finished corpus of no items; the layout check once read the last
    item's shape of such a schema 1 file, and called it damaged."""
    path = tmp_path / "empty1.h5"
    write_schema1(path, "density", {"count": np.zeros(0)}, {"density": []}, {}, {})
    assert len(Corpus(path, kind="density")) == 0
    assert check(path) == []


def test_schema1_shards_merge_into_a_schema2_corpus(tmp_path, photo):
    a = distort_schema1(tmp_path / "p0.h5", photo, shard=[0, 2])
    b = distort_schema1(tmp_path / "p1.h5", photo, shard=[1, 2])
    out = tmp_path / "merged.h5"
    r = CliRunner().invoke(main, ["merge", str(tmp_path / "p0.h5"), str(tmp_path / "p1.h5"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    merged = Corpus(out)
    assert merged.version == S.SCHEMA_VERSION and merged.ragged_encoding("image")[0] == S.PNG
    for i, image in enumerate(a + b):
        np.testing.assert_array_equal(merged.image(i), image)
    assert check(out) == []


@pytest.mark.parametrize("command", ["info", "check"])
def test_schema1_corpus_through_the_cli(tmp_path, photo, command):
    path = tmp_path / "old.h5"
    distort_schema1(path, photo)
    r = CliRunner().invoke(main, [command, str(path)])
    assert r.exit_code == 0, r.output
