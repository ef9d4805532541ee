"""`rankgen distort` end to end: CLI, corpus content, determinism, resume, crops, errors."""

import io
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import rankgen.jobs.distort as generate_module
from rankgen.cli import main
from rankgen.corpus import Corpus
from rankgen.corpus import schema as S
from rankgen.errors import BadImage
from rankgen.jobs.distort import distort as generate

SUBSET = ("gaussian_blur", "jpeg", "jpeg2000", "gaussian_noise")


@pytest.fixture
def photos(tmp_path, photo):
    root = tmp_path / "photos"
    root.mkdir()
    Image.fromarray(photo[:96, :112]).save(root / "a.png")
    Image.fromarray(photo[20:116, 8:136]).save(root / "b.bmp")
    Image.fromarray(photo[::2, ::2]).convert("L").save(root / "c_gray.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


def contents(path):
    c = Corpus(path)
    cols = {name: c.column(name) for name in c.columns()}
    return c, cols, [c.image(i) for i in range(len(c))]


def test_cli_end_to_end(tmp_path, photos):
    out = tmp_path / "mine.h5"
    r = run("distort", "--dataset", "folder", "--root", photos, "--distortions", ",".join(SUBSET),
            "--levels", 5, "--workers", 1, "-o", out, "--quiet")
    assert r.exit_code == 0, r.output
    assert "broken.jpg" in r.output and "skipped 1" in r.output
    c, cols, images = contents(out)
    assert c.kind == "distort"
    # 3 usable sources x (1 reference + 4 distortions x 4 levels)
    assert len(c) == 3 * (1 + 4 * 4)
    groups = c.groups
    assert groups.shape == (3 * 4, 5)
    for g in groups:
        assert cols["level"][g].tolist() == [0, 1, 2, 3, 4]
        assert len(set(cols["ref"][g].tolist())) == 1
        assert len(set(cols["distortion"][g[1:]].tolist())) == 1
        assert all(images[i].shape == images[g[0]].shape for i in g)
    ref_paths = c.table("ref_path")
    first = Image.open(ref_paths[cols["ref"][groups[0, 0]]]).convert("RGB")
    np.testing.assert_array_equal(images[groups[0, 0]], np.asarray(first))
    attrs = c.attrs
    assert attrs["seed"] == 0 and "distort" in attrs["command"] and "gaussian_blur" in attrs["recipe"]

    r = run("info", out)
    assert r.exit_code == 0 and "jpeg2000" in r.output and "12 ranked groups of 5" in r.output
    sheet = tmp_path / "sheet.png"
    r = run("preview", out, "-o", sheet)
    assert r.exit_code == 0, r.output
    w, h = Image.open(sheet).size
    assert w > 5 * 100 and h > 4 * 100


def test_same_seed_same_content_for_any_worker_count(tmp_path, photos):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    kw = dict(dataset="folder", root=str(photos), distortions=SUBSET, levels=4, seed=3, progress=False)
    generate(a, workers=1, **kw)
    generate(b, workers=2, **kw)
    _, cols_a, img_a = contents(a)
    _, cols_b, img_b = contents(b)
    for name in cols_a:
        np.testing.assert_array_equal(cols_a[name], cols_b[name])
    for x, y in zip(img_a, img_b):
        assert x.tobytes() == y.tobytes()
    generate(tmp_path / "c.h5", workers=1, **{**kw, "seed": 4})
    _, _, img_c = contents(tmp_path / "c.h5")
    assert any(x.tobytes() != y.tobytes() for x, y in zip(img_a, img_c)), "the seed must matter for noise"


def test_a_partial_that_other_kernels_began_is_not_resumed(tmp_path, photos, monkeypatch, ctrl_c_at):
    """The kernel and library versions were not in the resume key: a run killed, then resumed after an
    upgrade, held items of both in a file that names only the old versions."""
    from rankgen.errors import RankgenError

    kw = dict(dataset="folder", root=str(photos), distortions=SUBSET, levels=3, seed=0, workers=1, progress=False)
    real = generate_module.distort_source
    monkeypatch.setattr(generate_module, "distort_source", ctrl_c_at(real, 3))  # in the second source
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "c.h5", **kw)
    monkeypatch.setattr(generate_module, "distort_source", real)
    versions = generate_module.pixel_versions
    monkeypatch.setattr(generate_module, "pixel_versions", lambda names: {**versions(names), "opencv": "9.9.9"})
    with pytest.raises(RankgenError, match="c.h5.partial cannot be resumed: it was written by another command"):
        generate(tmp_path / "c.h5", **kw)


def test_interrupted_run_resumes_to_the_same_content(tmp_path, photos, monkeypatch, ctrl_c_at):
    kw = dict(dataset="folder", root=str(photos), distortions=SUBSET, levels=3, seed=0, workers=1, progress=False)
    generate(tmp_path / "whole.h5", **kw)
    real = generate_module.distort_source
    # Each source is two jobs (jpeg2000, a costly type, starts the second): the fourth call is the
    # second source's second part, so the run is killed in the middle of a source.
    monkeypatch.setattr(generate_module, "distort_source", ctrl_c_at(real, 4))
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "resumed.h5", **kw)
    assert not (tmp_path / "resumed.h5").exists() and (tmp_path / "resumed.h5.partial").exists()
    with h5py.File(tmp_path / "resumed.h5.partial") as f:
        assert f.attrs[S.ATTR_JOBS_DONE] == 2  # the first source whole; the second's first part is not kept
    monkeypatch.setattr(generate_module, "distort_source", real)
    summary = generate(tmp_path / "resumed.h5", **kw)
    assert summary.resumed_from == 1  # sources whose every part was done
    _, cols_a, img_a = contents(tmp_path / "whole.h5")
    _, cols_b, img_b = contents(tmp_path / "resumed.h5")
    for name in cols_a:
        np.testing.assert_array_equal(cols_a[name], cols_b[name])
    assert [x.tobytes() for x in img_a] == [y.tobytes() for y in img_b]
    with h5py.File(tmp_path / "resumed.h5") as f:
        assert len(f["items/ref"]) == f.attrs["n_items"]


@pytest.mark.parametrize("levels", [2, 3, 7])
def test_levels_other_than_five(tmp_path, photos, levels):
    out = tmp_path / "x.h5"
    generate(out, dataset="folder", root=str(photos), distortions=("gaussian_blur",), levels=levels, progress=False)
    c = Corpus(out)
    assert c.groups.shape[1] == levels
    params = c.column("param")[c.groups[0, 1:]]
    assert np.all(np.diff(params) > 0)


def test_aligned_crops(tmp_path, photos):
    out = tmp_path / "crops.h5"
    generate(out, dataset="folder", root=str(photos), distortions=("gaussian_blur", "jpeg"), levels=3, crop=48,
             crops_per_image=2, progress=False)
    c = Corpus(out)
    cols = {n: c.column(n) for n in ("ref", "crop", "level")}
    assert {c.image(i).shape for i in range(len(c))} == {(48, 48, 3)}
    assert c.groups.shape == (3 * 2 * 2, 3)
    for g in c.groups:
        assert len({(cols["ref"][i], cols["crop"][i]) for i in g}) == 1
    # The crop of level 0 is a window of the pristine source.
    i = c.groups[0, 0]
    src = np.asarray(Image.open(c.table("ref_path")[cols["ref"][i]]).convert("RGB"))
    patch = c.image(i)
    hits = [(y, x) for y in range(src.shape[0] - 47) for x in range(src.shape[1] - 47)
            if np.array_equal(src[y : y + 48, x : x + 48], patch)]
    assert hits


def test_errors_are_one_clear_line(tmp_path, photos):
    out = tmp_path / "x.h5"
    assert run("distort", "--dataset", "folder", "--root", photos, "--distortions", "jpeg", "-o", out, "--quiet").exit_code == 0
    r = run("distort", "--dataset", "folder", "--root", photos, "--distortions", "jpeg", "-o", out, "--quiet")
    assert r.exit_code != 0 and "--overwrite" in r.output and "Traceback" not in r.output
    r = run("distort", "--dataset", "folder", "--root", photos, "--distortions", "gausian_blur", "-o", tmp_path / "y.h5")
    assert r.exit_code != 0 and "gaussian_blur" in r.output
    r = run("distort", "--dataset", "folder", "--root", tmp_path / "nowhere", "-o", tmp_path / "z.h5")
    assert r.exit_code != 0 and "not a folder" in r.output
    r = run("distort", "--levels", 1, "-o", tmp_path / "w.h5")
    assert r.exit_code != 0 and "at least 2" in r.output
    r = run("distort", "-o", tmp_path / "missing_dir" / "v.h5")
    assert r.exit_code != 0 and "does not exist" in r.output
    r = run("info", tmp_path / "nope.h5")
    assert r.exit_code != 0 and "does not exist" in r.output


def test_stop_on_error(tmp_path, photos):
    r = run("distort", "--dataset", "folder", "--root", photos, "--distortions", "jpeg", "--on-error", "stop",
            "-o", tmp_path / "s.h5", "--quiet")
    assert r.exit_code != 0 and "broken.jpg" in r.output
    assert (tmp_path / "s.h5.partial").exists(), "work done before the bad file is kept for a resume"


def test_help_teaches():
    r = run("distort", "--help")
    assert "Examples" in r.output and "--levels" in r.output and "waterloo" in r.output
    r = run("list", "distortions")
    assert "gaussian_blur" in r.output and "#08" in r.output


def test_plain_h5py_reads_a_distort_corpus_as_documented(tmp_path, photos):
    """Follows docs/schema.md with h5py alone: groups, levels, references, pixels."""
    out = tmp_path / "plain.h5"
    generate(out, dataset="folder", root=str(photos), distortions=("jpeg", "gaussian_blur"), levels=5, progress=False)
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "rankgen" and f.attrs["kind"] == "distort" and f.attrs["complete"]
        groups = f["tables/groups"][...]
        level = f["items/level"][...]
        ref = f["items/ref"][...]
        names = f["items/distortion"].asstr()[...]
        g = f["ragged/image"]
        for row in groups:
            assert level[row].tolist() == [0, 1, 2, 3, 4] and names[row[0]] == "reference"
            images = []
            assert g.attrs["encoding"] == "png"
            for i in row:
                start, size = g["offset"][i], g["size"][i]
                images.append(np.asarray(Image.open(io.BytesIO(g["data"][start : start + size].tobytes()))))
                assert images[-1].shape == tuple(g["shape"][i])
            path = f["tables/ref_path"].asstr()[ref[row[0]]]
            np.testing.assert_array_equal(images[0], np.asarray(Image.open(path).convert("RGB")))
            assert all(not np.array_equal(images[0], im) for im in images[1:])


def test_stored_seed_replays_the_item(tmp_path, photos):
    from rankgen.distortions import distort

    out = tmp_path / "replay.h5"
    generate(out, dataset="folder", root=str(photos), distortions=("gaussian_noise", "block_wise"), levels=3,
             crop=48, crops_per_image=2, progress=False)
    c = Corpus(out)
    names, params, seeds = c.column("distortion"), c.column("param"), c.column("seed")
    for row in c.groups:
        reference = c.image(row[0])
        for i in row[1:]:
            again = distort(reference, names[i], params[i], np.random.default_rng(int(seeds[i])))
            assert again.tobytes() == c.image(i).tobytes()


def test_retry_counts_are_recorded(tmp_path, photos):
    from rankgen.distortions import distort, distort_recorded

    out = tmp_path / "tx.h5"
    generate(out, dataset="folder", root=str(photos), recipe="tid2013-full",
             distortions=("jpeg_transmission_errors", "jpeg"), levels=3, progress=False)
    c = Corpus(out)
    attempts, level, names = c.column("attempts"), c.column("level"), c.column("distortion")
    assert (attempts[level == 0] == 0).all() and (attempts[level > 0] >= 1).all()
    assert (attempts[names == "jpeg"] == 1).all()
    img = c.image(int(c.groups[0, 0]))
    for name in ("jpeg_transmission_errors", "jpeg2000_transmission_errors", "gaussian_noise"):
        a, n = distort_recorded(img, name, 0.2 if "transmission" in name else 0.01, np.random.default_rng(3))
        assert n >= 1 and a.tobytes() == distort(img, name, 0.2 if "transmission" in name else 0.01,
                                                 np.random.default_rng(3)).tobytes()


@pytest.mark.parametrize("script", ["rankgen", "train"])
def test_ctrl_c_while_the_console_script_imports_exits_130_with_a_line(script, monkeypatch, capsys):
    import importlib

    from rankgen import console

    def interrupted(module):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib, "import_module", interrupted)
    with pytest.raises(SystemExit) as stop:
        getattr(console, script)()
    assert stop.value.code == 130
    assert capsys.readouterr().err == "\ninterrupted while starting: nothing was done\n"


def test_the_console_scripts_and_python_m_reach_the_same_commands():
    import configparser

    scripts = configparser.ConfigParser()
    scripts.read(Path(__file__).parents[1] / "setup.cfg")
    assert scripts["options.entry_points"]["console_scripts"].split() == [
        "rankgen", "=", "rankgen.console:rankgen", "train", "=", "rankgen.console:train"]
    for package in ("rankgen", "train"):
        result = subprocess.run([sys.executable, "-m", package, "--help"], capture_output=True, text=True,
                                cwd=Path(__file__).parents[1])
        assert result.returncode == 0 and "Usage:" in result.stdout, result.stderr


def test_a_source_is_split_at_costly_types_in_recipe_order():
    from rankgen.distortions import load_recipe
    from rankgen.jobs.distort import COSTLY, DistortJob, split_at_costly
    from rankgen.sources import SourceItem

    names = tuple(load_recipe("tid2013-full").names)
    job = DistortJob(0, SourceItem("x", "x.png"), names, tuple(range(len(names))),
                     tuple((1.0,) for _ in names), 0, None, 1)
    parts = split_at_costly(job)
    assert [n for part in parts for n in part.names] == list(names)
    assert [t for part in parts for t in part.tids] == list(job.tids)
    assert [part.reference for part in parts] == [True] + [False] * (len(parts) - 1)
    assert all(part.names[0] in COSTLY for part in parts[1:])
    assert all(n not in COSTLY for part in parts for n in part.names[1:])
    assert len(parts) == 1 + sum(n in COSTLY for n in names[1:])


def test_a_bad_source_is_reported_once_not_once_per_part(tmp_path, photos):
    summary = generate(tmp_path / "x.h5", dataset="folder", root=str(photos), distortions=SUBSET, levels=3,
                       workers=1, progress=False)
    assert [s for s in summary.skipped if "broken.jpg" in s] == [summary.skipped[0]] and len(summary.skipped) == 1
    assert summary.sources == 4 and "from 3 sources" in summary.lines(tmp_path / "x.h5")[0]


def test_a_worker_reads_a_source_again_once_its_file_changed(tmp_path, photo):
    # A Dask worker keeps its last source from one run to the next.
    from rankgen.jobs.distort import _decoded
    from rankgen.sources import SourceItem

    path = tmp_path / "a.png"
    Image.fromarray(photo[:64, :64]).save(path)
    item = SourceItem("a", str(path))
    assert _decoded(item)[0].tobytes() == photo[:64, :64].tobytes()
    Image.fromarray(photo[64:128, 64:128]).save(path)
    assert _decoded(item)[0].tobytes() == photo[64:128, 64:128].tobytes()


@pytest.mark.parametrize("failing_part", [0, 1])
def test_a_source_one_part_cannot_read_is_left_out_whole_and_listed_once(tmp_path, photos, monkeypatch, failing_part):
    # A read can fail once (a file still being copied, a network hiccup) and succeed for the next part.
    real = generate_module._decoded
    calls = {}

    def flaky(item):
        calls[item.id] = calls.get(item.id, -1) + 1
        if item.path.endswith("a.png") and calls[item.id] == failing_part:
            raise BadImage(f"{item.path}: could not be read this time")
        return real(item)

    monkeypatch.setattr(generate_module, "_decoded", flaky)
    summary = generate(tmp_path / "x.h5", dataset="folder", root=str(photos), distortions=SUBSET, levels=3,
                       workers=1, progress=False)
    assert sorted(s.split(":")[0].rsplit("/", 1)[-1] for s in summary.skipped) == ["a.png", "broken.jpg"]
    c = Corpus(tmp_path / "x.h5")
    paths = c.table("ref_path")[np.unique(c.column("ref"))]
    assert not any(str(p).endswith("a.png") for p in paths)
    assert c.groups.shape[0] == 2 * len(SUBSET)  # the two good sources, every type
