"""`rankgen crops` and `rankgen density` end to end: content, determinism, resume, bad input, previews."""

import h5py
import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from PIL import Image

import rankgen.jobs.crops as cli_crops
from rankgen.crowd import crops as geometry
from rankgen.cli import main
from rankgen.jobs.crops import crops as generate_crops
from rankgen.jobs.density import density as generate_density
from rankgen.corpus import Corpus
from rankgen.sources.crowd import list_items, read_crowd

SMALL = dict(k=4, s=0.7, r=4.0, size=32, per_image=6, progress=False)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def contents(path):
    c = Corpus(path)
    return {n: c.column(n) for n in c.columns()}, [c.image(i).tobytes() for i in range(len(c))]


@pytest.fixture(scope="module")
def synthetic_crops(tmp_path_factory):
    out = tmp_path_factory.mktemp("crops") / "syn.h5"
    generate_crops(out, dataset="synthetic", n_images=3, seed=1, workers=1, **SMALL)
    return out


@pytest.fixture
def photos(tmp_path, photo):
    root = tmp_path / "photos"
    root.mkdir()
    Image.fromarray(photo[:100, :120]).save(root / "a_rgb.png")
    Image.fromarray(photo[:, :, 0]).convert("L").save(root / "b_gray.png")
    Image.fromarray((photo[:, :, 1].astype(np.uint16) * 257)).save(root / "c_16bit.png")
    Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])).save(root / "d_alpha.png")
    Image.fromarray(photo[:40, :40]).save(root / "e_tiny.png")
    (root / "z_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def test_synthetic_crop_corpus_content(synthetic_crops):
    c = Corpus(synthetic_crops, kind="crops")
    cols, _ = contents(synthetic_crops)
    g = c.groups
    assert g.shape == (3 * 6, 4) and len(c) == g.size
    assert (cols["rank"][g] == np.arange(4)).all() and (np.diff(cols["count"][g], axis=1) <= 0).all()
    assert (cols["count"][g[:, 0]] > 0).any()
    assert {c.ragged_shape("image", i) for i in range(len(c))} == {(32, 32, 3)}
    assert list(c.table("source_id")) == [f"synthetic/train/{i:05d}" for i in range(3)]
    ib = np.stack([cols[f"ibox_{a}"] for a in ("x0", "y0", "x1", "y1")], axis=1)[g]
    assert (ib[:, 1:, :2] >= ib[:, :-1, :2]).all() and (ib[:, 1:, 2:] <= ib[:, :-1, 2:]).all()
    attrs = c.attrs
    assert attrs["params"]["k"] == 4 and attrs["labeled"] and attrs["seed"] == 1


def test_stored_crop_set_replays_from_its_seed(synthetic_crops):
    """The seed column, the boxes, the counts and the pixels all agree with a recomputation."""
    c = Corpus(synthetic_crops)
    cols, _ = contents(synthetic_crops)
    items, _ = list_items("synthetic", None, None, n_images=3, seed=1)
    for row in c.groups[[0, 7, 17]]:
        i = row[0]
        image, points, _ = read_crowd(items[cols["source"][i]])
        h, w = image.shape[:2]
        cs = geometry.crop_set(w, h, 4, 0.7, 4.0, np.random.default_rng(int(cols["seed"][i])))
        assert cs.anchor == (cols["anchor_x"][i], cols["anchor_y"][i])
        np.testing.assert_array_equal(cs.iboxes[:, 0], cols["ibox_x0"][row])
        np.testing.assert_array_equal(cs.boxes[:, 3], cols["box_y1"][row])
        np.testing.assert_array_equal(geometry.points_in_boxes(points, cs.iboxes), cols["count"][row])
        for j, idx in enumerate(row):
            assert np.array_equal(c.image(idx), geometry.cut(image, cs.iboxes[j], 32))


def test_same_seed_same_bytes_for_any_worker_count(tmp_path, synthetic_crops):
    other = tmp_path / "w2.h5"
    generate_crops(other, dataset="synthetic", n_images=3, seed=1, workers=2, **SMALL)
    a, b = contents(synthetic_crops), contents(other)
    for name in a[0]:
        np.testing.assert_array_equal(a[0][name], b[0][name])
    assert a[1] == b[1]
    generate_crops(tmp_path / "s2.h5", dataset="synthetic", n_images=3, seed=2, workers=1, **SMALL)
    assert contents(tmp_path / "s2.h5")[1] != a[1]


@pytest.mark.parametrize("die_at", [2, 3])  # between commits and right after one (sources are committed in pairs)
def test_interrupted_run_resumes_to_the_same_content(tmp_path, synthetic_crops, monkeypatch, die_at, ctrl_c_at):
    real = cli_crops.crop_source
    out = tmp_path / "resumed.h5"
    kw = dict(dataset="synthetic", n_images=3, seed=1, workers=1, **SMALL)
    monkeypatch.setattr(cli_crops, "crop_source", ctrl_c_at(real, die_at))
    with pytest.raises(KeyboardInterrupt):
        generate_crops(out, **kw)
    assert not out.exists() and out.with_name("resumed.h5.partial").exists()
    monkeypatch.setattr(cli_crops, "crop_source", real)
    assert 0 <= generate_crops(out, **kw).resumed_from < die_at
    a, b = contents(synthetic_crops), contents(out)
    assert a[1] == b[1] and all((a[0][n] == b[0][n]).all() for n in a[0])


def test_folder_source_unlabeled_with_conversions_and_bad_files(tmp_path, photos):
    out = tmp_path / "f.h5"
    summary = generate_crops(out, dataset="folder", root=str(photos), k=5, s=0.6, r=8.0, size=112, per_image=2,
                             progress=False)
    c = Corpus(out)
    assert "count" not in c.columns() and not c.attrs["labeled"]
    assert sorted(set(c.column("source").tolist())) == [0, 1, 2, 3]
    skipped = " ".join(summary.skipped)
    assert "z_broken.jpg" in skipped and "e_tiny.png" in skipped and "lower --k or raise --s" in skipped
    notes = " ".join(summary.notes)
    for word in ("b_gray.png", "c_16bit.png", "d_alpha.png", "a_rgb.png: 120x100 px is smaller than --size 112"):
        assert word in notes


def test_stop_on_error_keeps_committed_work(tmp_path, photos):
    r = run("crops", "--dataset", "folder", "--root", photos, "--s", "0.6", "--size", "16", "--per-image", "1",
            "--on-error", "stop", "--workers", "1", "-o", tmp_path / "s.h5", "--quiet")
    assert r.exit_code != 0 and "e_tiny.png" in r.output and "Traceback" not in r.output
    with h5py.File(tmp_path / "s.h5.partial") as f:
        assert f.attrs["n_committed"] == 4 * 5


@pytest.mark.parametrize("args,word", [
    (["--k", "1"], "--k must be"), (["--s", "1.2"], "--s must"), (["--r", "0.5"], "--r must"),
    (["--size", "4"], "--size must"), (["--per-image", "0"], "--per-image"),
    (["--dataset", "folder", "--split", "train"], "no splits"), (["--dataset", "shanghaitech-c"], "shanghaitech-a"),
])
def test_bad_arguments_are_one_clear_line(tmp_path, args, word):
    r = run("crops", *args, "-o", tmp_path / "x.h5")
    assert r.exit_code != 0 and word in r.output and "Traceback" not in r.output


def _shanghaitech(root):
    base = root / "part_B" / "test_data"
    (base / "images").mkdir(parents=True)
    (base / "ground-truth").mkdir()
    rng = np.random.default_rng(0)
    for i in (1, 2, 3):
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(base / "images" / f"IMG_{i}.jpg")
        pts = np.column_stack([rng.uniform(0, 400, 50 * i), rng.uniform(0, 300, 50 * i)])
        pts[0] = (400.5, 10)  # an annotation click just outside the frame
        st = np.zeros((1, 1), dtype=[("location", "O"), ("number", "O")])
        st[0, 0]["location"], st[0, 0]["number"] = pts, np.array([[float(len(pts))]])
        cell = np.empty((1, 1), dtype=object)
        cell[0, 0] = st
        scipy.io.savemat(base / "ground-truth" / f"GT_IMG_{i}.mat", {"image_info": cell} if i < 3 else {"other": pts})


def test_shanghaitech_crops_and_density(tmp_path):
    _shanghaitech(tmp_path)
    r = run("crops", "--dataset", "shanghaitech-b", "--root", tmp_path, "--split", "test", "--size", "16",
            "--per-image", "50", "-o", tmp_path / "c.h5", "--quiet")
    assert r.exit_code == 0, r.output
    assert "GT_IMG_3.mat: no 'image_info'" in r.output and "1 head point(s) outside" in r.output
    assert "never increase along any of the 100 crop sets" in r.output
    r = run("density", "--dataset", "shanghaitech-b", "--root", tmp_path, "--split", "test", "--stride", "8",
            "--max-side", "256", "-o", tmp_path / "d.h5", "--quiet")
    assert r.exit_code == 0, r.output
    c = Corpus(tmp_path / "d.h5", kind="density")
    assert c.column("count").tolist() == [49.0, 99.0] and list(c.column("split")) == ["test", "test"]
    assert c.image(0).shape == (192, 256, 3) and c.ragged("density", 0).shape == (24, 32)
    assert c.attrs["stride"] == 8 and c.attrs["sigma"] == "15.0"


@pytest.mark.parametrize("sigma,stride,max_side", [("15", 1, None), ("adaptive", 8, None), ("4", 3, 200)])
def test_density_maps_sum_to_counts(tmp_path, sigma, stride, max_side):
    out = tmp_path / "d.h5"
    generate_density(out, n_images=4, sigma=sigma, stride=stride, max_side=max_side, progress=False)
    c = Corpus(out)
    for i in range(len(c)):
        d = c.ragged("density", i)
        h, w = c.image(i).shape[:2]
        assert d.dtype == np.float32 and d.shape == (-(-h // stride), -(-w // stride))
        assert abs(float(d.sum(dtype=np.float64)) - c.column("count")[i]) < 1e-3
    assert max(c.image(0).shape) == (max_side or 512)


def test_density_refuses_unlabeled_and_bad_sigma(tmp_path, photos):
    r = run("density", "--dataset", "folder", "--root", photos, "-o", tmp_path / "x.h5")
    assert r.exit_code != 0 and "no head points" in r.output
    r = run("density", "--sigma", "wide", "-o", tmp_path / "x.h5")
    assert r.exit_code != 0 and "--sigma" in r.output


def test_previews(tmp_path, synthetic_crops, photos):
    png = tmp_path / "c.png"
    assert run("preview", synthetic_crops, "-o", png).exit_code == 0
    w, h = Image.open(png).size
    assert w > 4 * 100 and h > 3 * 200
    # Sources that moved away: the boxes are still drawn, on grey.
    out = tmp_path / "f.h5"
    generate_crops(out, dataset="folder", root=str(photos), k=3, s=0.7, r=4.0, size=16, per_image=1, progress=False)
    for p in photos.iterdir():
        p.unlink()
    assert run("preview", out, "-o", tmp_path / "f.png").exit_code == 0
    generate_density(tmp_path / "d.h5", n_images=2, stride=4, progress=False)
    assert run("preview", tmp_path / "d.h5", "-o", tmp_path / "d.png").exit_code == 0
    assert Image.open(tmp_path / "d.png").size[1] == 2 * (256 + 4)


def test_help_teaches():
    r = run("crops", "--help")
    assert "Examples" in r.output and "shanghaitech-a" in r.output and "W/r and H/r" in r.output
    r = run("density", "--help")
    assert "adaptive" in r.output and "--stride" in r.output
