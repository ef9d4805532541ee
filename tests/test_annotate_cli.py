"""`rankgen annotate` end to end: embedded default, labeled sets, --from, determinism, resume, errors, preview."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import rankgen.jobs.annotate as annotate_module
from rankgen import annotators as A
from rankgen.cli import main
from rankgen.corpus import Corpus
from rankgen.sources import scene_of
from rankgen.jobs.distort import distort as generate


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def columns(path):
    c = Corpus(path, kind="annotate")
    return c, {name: c.column(name) for name in c.columns()}


def check_model_invariants(c, cols):
    for k in range(len(c.table("annotator_shift"))):
        mine = cols["annotator"] == k
        assert A.kendall_tau(cols["true_score"][mine], cols["score"][mine]) == 1.0
    scenes = np.array([scene_of(r) for r in cols["ref"]])
    test_scenes = set(scenes[cols["split"] == "test"].tolist())
    assert test_scenes and not test_scenes & set(scenes[cols["split"] == "train"].tolist())
    lo, hi = c.attrs["annotator_model"]["lo"], c.attrs["annotator_model"]["hi"]
    assert cols["score"].min() == lo and cols["score"].max() == hi
    for g, k, part in zip(c.groups, c.table("group_annotator"), c.table("group_split")):
        g = g[g >= 0]
        assert np.all(cols["annotator"][g] == k) and np.all(cols["split"][g] == part)
        assert np.all(np.diff(cols["score"][g]) <= 0)
    assert sorted(np.concatenate([g[g >= 0] for g in c.groups]).tolist()) == list(range(len(c)))


@pytest.fixture
def scored(tmp_path, photo):
    """A csv set: 12 crops of a real photo from 6 references, scores higher = better."""
    folder = tmp_path / "set"
    folder.mkdir()
    lines = ["path,score,ref"]
    for i in range(12):
        Image.fromarray(photo[i * 4 : i * 4 + 40, i * 5 : i * 5 + 48]).save(folder / f"p{i:02d}.png")
        lines.append(f"p{i:02d}.png,{(i * 7) % 12 / 11:.4f},r{i % 6}")
    (folder / "scores.csv").write_text("\n".join(lines) + "\n")
    return folder / "scores.csv"


def test_embedded_default_biases_annotators_but_keeps_their_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run("annotate", "--annotators", 4, "--workers", 2, "--quiet")
    assert r.exit_code == 0, r.output
    c, cols = columns(tmp_path / "annotate.h5")
    assert c.image(0).dtype == np.uint8 and c.image(0).ndim == 3
    check_model_invariants(c, cols)
    rate, _ = A.cross_contradiction(cols["true_score"], cols["score"], cols["annotator"])
    assert rate > 0.15
    assert r.output.count("1.000000") == 4 and f"{100 * rate:.1f}%" in r.output
    assert set(cols["distortion"]) >= {"reference", "jpeg"} and cols["path"][0].startswith("embedded:samples#")
    # The references (level 0, SSIM 1) are the best items.
    assert np.all(cols["true_score"][cols["level"] == 0] == 1.0)
    assert run("preview", tmp_path / "annotate.h5", "-o", tmp_path / "hist.png").exit_code == 0
    assert Image.open(tmp_path / "hist.png").size[0] > 600


def test_same_seed_same_bytes_for_any_worker_count(tmp_path, scored):
    # The same output path both times: the stored command line names it.
    outs = []
    out = tmp_path / "a.h5"
    for workers in (1, 2):
        assert run("annotate", "--dataset", "csv", "--root", scored, "--annotators", 3, "--workers", workers,
                   "--quiet", "-o", out).exit_code == 0
        outs.append(out.read_bytes())
        out.rename(tmp_path / f"w{workers}.h5")
    assert outs[0] == outs[1]
    other = tmp_path / "other.h5"
    run("annotate", "--dataset", "csv", "--root", scored, "--annotators", 3, "--seed", 1, "--quiet", "-o", other)
    assert not np.array_equal(Corpus(other).column("score"), Corpus(tmp_path / "w1.h5").column("score"))


def test_csv_set_with_reference_assignment(tmp_path, scored):
    out = tmp_path / "mine.h5"
    r = run("annotate", "--dataset", "csv", "--root", scored, "--range", 0, 1, "--annotators", 3,
            "--assign", "reference", "--quiet", "-o", out)
    assert r.exit_code == 0, r.output
    c, cols = columns(out)
    check_model_invariants(c, cols)
    assert len(c) == 12 and cols["path"][0].endswith("p00.png")
    for ref in set(cols["ref"].tolist()):
        assert len(set(cols["annotator"][cols["ref"] == ref].tolist())) == 1
    np.testing.assert_array_equal(c.image(1), np.asarray(Image.open(scored.parent / "p01.png").convert("RGB")))
    assert set(c.tables()) >= {"groups", "annotator_shift", "warp_knots_x", "warp_knots_y"}


def test_tid2013_tree_end_to_end(tmp_path, photo):
    root = tmp_path / "tid2013"
    (root / "distorted_images").mkdir(parents=True)
    lines = []
    for ref in range(1, 6):
        for kind, level in ((1, 1), (8, 3), (10, 5)):
            name = f"i{ref:02d}_{kind:02d}_{level}.bmp"
            Image.fromarray(photo[ref:ref + 32, :40]).save(root / "distorted_images" / name)
            lines.append(f"{ref + 1 / level:.5f} {name}")
    (root / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "tid.h5"
    r = run("annotate", "--dataset", "tid2013", "--root", root, "--annotators", 4, "--seed", 0, "--quiet", "-o", out)
    assert r.exit_code == 0, r.output
    c, cols = columns(out)
    check_model_invariants(c, cols)
    assert set(cols["ref"].tolist()) == {"I01", "I02", "I03", "I04", "I05"}
    assert set(cols["distortion"].tolist()) == {"additive_gaussian_noise", "gaussian_blur", "jpeg_compression"}
    assert sorted(set(cols["level"].tolist())) == [1, 3, 5] and c.attrs["task"] == "iqa"


def test_from_a_distort_corpus(tmp_path, photo):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(photo[i * 8 : i * 8 + 64, :64]).save(folder / f"{i}.png")
    corpus = tmp_path / "corpus.h5"
    generate(corpus, dataset="folder", root=folder, distortions=("gaussian_blur", "jpeg"), levels=3, progress=False)
    for score in ("psnr", "level"):
        out = tmp_path / f"{score}.h5"
        r = run("annotate", "--from", corpus, "--score", score, "--annotators", 2, "--quiet", "-o", out)
        assert r.exit_code == 0, r.output
        c, cols = columns(out)
        check_model_invariants(c, cols)
        best = 100.0 if score == "psnr" else 0.0
        assert np.all(cols["true_score"][cols["level"] == 0] == best)
        if score == "level":
            np.testing.assert_array_equal(cols["true_score"], -cols["level"])
        np.testing.assert_array_equal(c.image(4), Corpus(corpus).image(4))


def test_interrupted_run_resumes_to_the_same_content(tmp_path, scored, monkeypatch, ctrl_c_at):
    clean = tmp_path / "clean.h5"
    run("annotate", "--dataset", "csv", "--root", scored, "--quiet", "--workers", 1, "-o", clean)
    real = annotate_module.annotate_item
    big = tmp_path / "big.csv"  # enough rows to pass a commit (every 64 items) before dying
    big.write_text("".join(f"{scored.parent}/p{i % 12:02d}.png,{i},r{i % 9}\n" for i in range(100)))
    out = tmp_path / "resumed.h5"
    monkeypatch.setattr(annotate_module, "annotate_item", ctrl_c_at(real, 70))
    r = run_catching("annotate", "--dataset", "csv", "--root", big, "--quiet", "--workers", 1, "-o", out)
    assert r.exit_code == 130 and (tmp_path / "resumed.h5.partial").exists() and not out.exists()
    monkeypatch.setattr(annotate_module, "annotate_item", real)
    r = run("annotate", "--dataset", "csv", "--root", big, "--workers", 1, "-o", out)
    assert r.exit_code == 0 and "resumed after 69" in r.output
    fresh = tmp_path / "fresh.h5"
    run("annotate", "--dataset", "csv", "--root", big, "--quiet", "--workers", 1, "-o", fresh)
    for name in Corpus(fresh).columns():
        np.testing.assert_array_equal(Corpus(out).column(name), Corpus(fresh).column(name))


def run_catching(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_an_undecodable_image_is_skipped_or_stops(tmp_path, scored):
    (scored.parent / "broken.png").write_bytes(b"\x89PNG truncated")
    table = tmp_path / "with_broken.csv"
    table.write_text(scored.read_text() + "broken.png,0.5,r9\n")
    table = table.rename(scored.parent / "with_broken.csv")
    out = tmp_path / "skip.h5"
    r = run("annotate", "--dataset", "csv", "--root", table, "--annotators", 2, "--quiet", "-o", out)
    assert r.exit_code == 0 and "skipped 1" in r.output and "broken.png" in r.output
    c, cols = columns(out)
    assert len(c) == 12 and "broken.png" not in " ".join(cols["path"])
    check_model_invariants(c, cols)
    r = run_catching("annotate", "--dataset", "csv", "--root", table, "--on-error", "stop", "--quiet", "-o", tmp_path / "stop.h5")
    assert r.exit_code != 0 and "broken.png" in r.output and not (tmp_path / "stop.h5").exists()


def test_afew_va_defaults_to_the_affect_range(tmp_path, photo):
    import json

    root = tmp_path / "afew"
    for clip in ("001", "002", "003"):
        (root / clip).mkdir(parents=True)
        frames = {}
        for f in range(3):
            Image.fromarray(photo[f:f + 40, :40]).save(root / clip / f"{f:05d}.png")
            frames[f"{f:05d}"] = {"valence": int(clip) * 3 - f - 5, "arousal": f}
        (root / clip / f"{clip}.json").write_text(json.dumps({"frames": frames}))
    out = tmp_path / "afew.h5"
    r = run("annotate", "--dataset", "afew-va", "--root", root, "--target", "valence", "--annotators", 2,
            "--test-fraction", 0.34, "--quiet", "-o", out)
    assert r.exit_code == 0, r.output
    c, cols = columns(out)
    assert cols["score"].min() == -1.0 and cols["score"].max() == 1.0 and c.attrs["task"] == "affect"
    check_model_invariants(c, cols)


@pytest.mark.parametrize("args, message", [
    (("--dataset", "csv", "--from", "x.h5"), "either --dataset or --from"),
    (("--dataset", "folder", "--root", "."), "has no scores"),
    (("--dataset", "tid2013", "--root", "NOWHERE"), "is not a folder"),
    (("--dataset", "csv", "--root", "SCORES", "--target", "arousal"), "--target applies to --dataset afew-va only"),
    (("--dataset", "csv", "--root", "SCORES", "--assign", "reference", "--annotators", 7), "more than the 6 reference images"),
    (("--dataset", "csv", "--root", "SCORES", "--range", 1, 0), "--range needs finite LO < HI"),
    (("--dataset", "csv", "--root", "NANS"), "nans.csv:2: score is nan"),
    (("--dataset", "csv", "--root", "GONE"), "1 of 1 images listed in .*gone.csv are missing"),
    (("--from", "NOWHERE.h5"), "does not exist"),
    (("--from", "OLD"), "is a 'annotate' corpus; this needs 'distort'"),
    (("--root", "."), "--root and --target need --dataset"),
    (("--dataset", "tid2031", "--root", "."), "Did you mean tid2013"),
])
def test_errors_are_one_clear_line_and_keep_existing_output(tmp_path, scored, args, message):
    old = tmp_path / "old.h5"
    assert run("annotate", "--dataset", "csv", "--root", scored, "--quiet", "-o", old).exit_code == 0
    before = old.read_bytes()
    (tmp_path / "nans.csv").write_text(f"{scored.parent}/p00.png,1\n{scored.parent}/p01.png,nan\n")
    (tmp_path / "gone.csv").write_text("missing.png,1\n")
    names = {"SCORES": scored, "NANS": tmp_path / "nans.csv", "GONE": tmp_path / "gone.csv", "OLD": old,
             "NOWHERE": tmp_path / "nowhere", "NOWHERE.h5": tmp_path / "nowhere.h5"}
    args = [names.get(a, a) if isinstance(a, str) else a for a in args]
    r = run_catching("annotate", *args, "--quiet", "--overwrite", "-o", old)
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    import re

    assert re.search(message, r.output), r.output
    assert old.read_bytes() == before


def test_help_teaches():
    r = run("annotate", "--help")
    assert "rankgen annotate --annotators 4" in r.output and "--assign" in r.output and "tid2013" in r.output
