"""Compact distort corpora (`--pixels references|costly|names`): the same items, columns, groups and
tables as the full corpus; the pixels of the other items are regenerated when read, checked against
their recorded CRCs; `rankgen materialize` writes the full file, identical in every dataset."""

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import rankgen
from rankgen.cli import main
from rankgen.corpus import Corpus
from rankgen.corpus.check import check
from rankgen.distortions import DISTORTIONS
from rankgen.errors import RankgenError


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import skimage.data

    root = tmp_path_factory.mktemp("photos")
    for i, name in enumerate(["astronaut", "coffee"]):
        Image.fromarray(getattr(skimage.data, name)()[100:164, 100 : 172 + 8 * i]).save(root / f"{name}.png")
    return root


def datasets(path) -> dict:
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[name] = "\x1f".join(obj.asstr()[...].ravel().tolist()) if h5py.check_string_dtype(obj.dtype) else obj[...].tobytes()

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("recipe", ["tid2013-full", "kadid10k"])
def test_materialize_of_a_compact_corpus_is_the_full_corpus(tmp_path, photos, recipe):
    kw = dict(dataset="folder", root=str(photos), recipe=recipe, levels=3, seed=2, workers=2, progress=False)
    rankgen.distort(tmp_path / "full.h5", **kw)
    r = run("distort", "--dataset", "folder", "--root", photos, "--recipe", recipe, "--levels", 3, "--seed", 2,
            "--pixels", "references", "--quiet", "-o", tmp_path / "compact.h5")
    assert r.exit_code == 0, r.output
    full, compact = Corpus(tmp_path / "full.h5"), Corpus(tmp_path / "compact.h5")
    assert compact.stored_count("image") == 2 and len(compact) == len(full)
    for i in range(len(full)):
        assert compact.image(i).tobytes() == full.image(i).tobytes()
    assert compact.columns() == full.columns() and compact.tables() == full.tables()
    r = run("materialize", tmp_path / "compact.h5", "-o", tmp_path / "mat.h5", "--workers", 2, "--quiet")
    assert r.exit_code == 0, r.output
    assert datasets(tmp_path / "mat.h5") == datasets(tmp_path / "full.h5")
    assert check(tmp_path / "compact.h5", regenerate_all=True) == []


def test_costly_and_named_pixels(tmp_path, photos):
    kw = dict(dataset="folder", root=str(photos), levels=3, workers=1, progress=False)
    rankgen.distort(tmp_path / "costly.h5", pixels="costly", **kw)
    c = Corpus(tmp_path / "costly.h5")
    stored = {str(d) for i, d in enumerate(c.column("distortion")) if c.is_stored("image", i)}
    assert stored == {"reference", "image_denoising", "jpeg2000", "color_quantization"}
    assert c.attrs["stored_types"] == ["image_denoising", "jpeg2000", "color_quantization"]
    rankgen.distort(tmp_path / "named.h5", pixels="jpeg,tid08", **kw)
    assert Corpus(tmp_path / "named.h5").attrs["stored_types"] == ["gaussian_blur", "jpeg"]
    with pytest.raises(RankgenError, match="--pixels 'nosuch': all, references, costly or distortion names"):
        rankgen.distort(tmp_path / "bad.h5", pixels="nosuch", **kw)
    with pytest.raises(RankgenError, match="is the compact corpus itself"):
        rankgen.materialize(tmp_path / "named.h5", tmp_path / "named.h5", overwrite=True)
    with pytest.raises(RankgenError, match="which this run does not make"):
        rankgen.distort(tmp_path / "bad.h5", pixels="jpeg", distortions="gaussian_blur", **kw)


@pytest.fixture(scope="module")
def compact(tmp_path_factory, photos):
    out = tmp_path_factory.mktemp("compact") / "compact.h5"
    rankgen.distort(out, dataset="folder", root=str(photos), distortions="gaussian_noise,jpeg,gaussian_blur", levels=4,
                    pixels="references", workers=1, progress=False)
    return out


def test_a_changed_kernel_is_refused_naming_item_type_and_versions(tmp_path, compact, monkeypatch):
    import shutil

    path = tmp_path / "c.h5"
    shutil.copy(compact, path)
    with h5py.File(path, "a") as f:  # as if written by another OpenCV
        versions = json.loads(f.attrs["pixel_versions"])
        versions["opencv"] = "0.0.1"
        f.attrs["pixel_versions"] = json.dumps(versions)
    import dataclasses

    entry = DISTORTIONS.entry("jpeg")  # as if the JPEG kernel had changed its bytes
    changed = dataclasses.replace(entry, obj=lambda image, param, rng: np.ascontiguousarray(entry.obj(image, param, rng) ^ 1))
    monkeypatch.setitem(DISTORTIONS._entries, "jpeg", changed)
    c = Corpus(path)
    jpeg = int(np.flatnonzero(c.column("distortion") == "jpeg")[0])
    with pytest.raises(RankgenError) as exc:
        c.image(jpeg)
    message = str(exc.value)
    assert f"item {jpeg} (jpeg level 1" in message and "opencv 0.0.1 (here" in message and "materialize" in message
    blur = int(np.flatnonzero(c.column("distortion") == "gaussian_blur")[0])
    assert c.image(blur).shape == c.image(0).shape  # other types still regenerate


def test_a_changed_parameter_is_refused(tmp_path, compact):
    import shutil

    path = tmp_path / "c.h5"
    shutil.copy(compact, path)
    with h5py.File(path, "a") as f:
        level = f["items/level"][...]
        f["items/param"][int(np.flatnonzero(level == 2)[0])] *= 1.5
    c = Corpus(path)
    with pytest.raises(RankgenError, match="regenerates to other pixels"):
        c.image(int(np.flatnonzero(c.column("level") == 2)[0]))
    assert any("regenerates to other pixels" in p or "changed since it was written" in p for p in check(path))


def test_info_and_check_of_a_compact_corpus(compact):
    r = run("info", compact)
    assert r.exit_code == 0 and "compact: pixels of 2 items stored (references)" in r.output
    r = run("check", compact, "--all")
    assert r.exit_code == 0 and "ok" in r.output


def test_verify_preview_and_merge_accept_compact_files(tmp_path, photos):
    kw = dict(dataset="folder", root=str(photos), distortions="gaussian_blur,jpeg", levels=3, workers=1,
              progress=False, pixels="references")
    for i in range(2):
        rankgen.distort(tmp_path / f"p{i}.h5", shard=(i, 2), **kw)
    assert run("merge", tmp_path / "p0.h5", tmp_path / "p1.h5", "-o", tmp_path / "m.h5").exit_code == 0
    merged = Corpus(tmp_path / "m.h5")
    assert merged.stored_count("image") == 2
    rankgen.distort(tmp_path / "whole.h5", **kw)
    whole = Corpus(tmp_path / "whole.h5")
    assert all(merged.image(i).tobytes() == whole.image(i).tobytes() for i in range(len(whole)))
    r = run("verify", tmp_path / "m.h5")
    assert r.exit_code == 0, r.output
    r = run("preview", tmp_path / "m.h5", "-o", tmp_path / "sheet.png")
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "sheet.png").size[0] > 0


class Images:
    """A map-style dataset as a trainer has it: the Corpus opens its file in each worker."""

    def __init__(self, path):
        self.corpus = Corpus(path)

    def __len__(self):
        return len(self.corpus)

    def __getitem__(self, i):
        import torch

        return torch.from_numpy(np.ascontiguousarray(self.corpus.image(i)[:32, :32]))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers_regenerate_identical_batches(compact, context):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    reference = [b for b in DataLoader(Images(compact), batch_size=4, num_workers=0)]
    loader = DataLoader(Images(compact), batch_size=4, num_workers=2, multiprocessing_context=context)
    batches = list(loader)
    assert len(batches) == len(reference)
    assert all(torch.equal(a, b) for a, b in zip(batches, reference))


def test_aligned_crops_regenerate_from_their_own_window(tmp_path, photos):
    kw = dict(dataset="folder", root=str(photos), distortions="gaussian_noise,block_wise,jpeg", levels=3, crop=48,
              crops_per_image=2, workers=1, progress=False)
    rankgen.distort(tmp_path / "full.h5", **kw)
    rankgen.distort(tmp_path / "compact.h5", pixels="references", **kw)
    full, compact = Corpus(tmp_path / "full.h5"), Corpus(tmp_path / "compact.h5")
    assert compact.stored_count("image") == 4  # 2 sources x 2 windows
    assert all(compact.image(i).tobytes() == full.image(i).tobytes() for i in range(len(full)))
