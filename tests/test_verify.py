"""rankgen verify: scores per series, violations, --drop, the plot, and the 24-type promise on photos."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from skimage import data

from rankgen.cli import main
from rankgen.corpus import Corpus, CorpusWriter
from rankgen.distortions import distort, load_recipe
from rankgen.jobs.distort import COLUMNS, RAGGED
from rankgen.jobs.distort import distort as generate
from rankgen.verify import drop_series, score_series, summary


def _photos() -> dict[str, np.ndarray]:
    """Real photographs in several framings: whole, cropped and rescaled, at small sizes."""
    astronaut, chelsea, coffee, rocket = data.astronaut(), data.chelsea(), data.coffee(), data.rocket()
    moto = data.stereo_motorcycle()[0]
    views = {
        "astronaut": astronaut, "chelsea": chelsea, "coffee": coffee, "rocket": rocket, "motorcycle": moto,
        "astronaut_face": astronaut[30:250, 140:360], "coffee_cup": coffee[100:400, 150:500],
        "chelsea_eyes": chelsea[40:220, 100:370], "rocket_tower": rocket[50:427, 200:450],
    }
    sizes = [(128, 96), (96, 128), (144, 96), (112, 112)]
    return {name: cv2.resize(img, sizes[i % len(sizes)], interpolation=cv2.INTER_AREA)
            for i, (name, img) in enumerate(views.items())}


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name, image in _photos().items():
        cv2.imwrite(str(folder / f"{name}.png"), image[:, :, ::-1])
    return folder


@pytest.fixture(scope="module")
def full_corpus(photo_folder, tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "full.h5"
    generate(path, dataset="folder", root=str(photo_folder), recipe="tid2013-full", workers=2, progress=False)
    return path


def test_all_24_types_are_ranked_on_real_photos(full_corpus):
    result = score_series(Corpus(full_corpus), workers=2)
    rows = summary(result)
    assert sorted({r.tid for r in rows}) == list(range(1, 25))
    assert all(r.series == len(_photos()) for r in rows)
    assert [(r.distortion, r.violations) for r in rows if r.violations] == []


def _write(path, levels_of_blur):
    """A one-reference corpus whose gaussian_blur series uses the given kernel sizes in this order."""
    image = cv2.resize(data.astronaut(), (64, 48), interpolation=cv2.INTER_AREA)
    rows = [{"ref": 0, "distortion": "reference", "tid": 0, "level": 0, "param": np.nan, "seed": 0, "crop": 0,
             "attempts": 0, "image": image}]
    for level, size in enumerate(levels_of_blur, start=1):
        rows.append({"ref": 0, "distortion": "gaussian_blur", "tid": 8, "level": level, "param": float(size),
                     "seed": 0, "crop": 0, "attempts": 1,
                     "image": distort(image, "gaussian_blur", size, np.random.default_rng(0))})
    rows.append({"ref": 0, "distortion": "jpeg", "tid": 10, "level": 1, "param": 20.0, "seed": 0, "crop": 0,
                 "attempts": 1, "image": distort(image, "jpeg", 20, np.random.default_rng(0))})
    writer = CorpusWriter(path, "distort", columns=COLUMNS, ragged=RAGGED, attrs={}, fingerprint="t")
    with writer:
        writer.append(rows)
        n = len(levels_of_blur)
        groups = np.array([[0, *range(1, n + 1)], [0, n + 1] + [n + 1] * (n - 1)], dtype=np.int64)
        # The jpeg row repeats its one level: equal scores, so it is out of order as well.
        writer.finish(tables={"groups": groups, "ref_id": np.array(["a"], dtype=object),
                              "ref_path": np.array(["a"], dtype=object),
                              "distortions": np.array(["gaussian_blur", "jpeg"], dtype=object)})
    return path


def test_a_swapped_series_is_reported_and_dropped(tmp_path):
    path = _write(tmp_path / "bad.h5", [7, 3, 15])
    result = score_series(Corpus(path))
    assert result.violations().tolist() == [True, True]
    good = _write(tmp_path / "good.h5", [3, 7, 15])
    assert score_series(Corpus(good)).violations().tolist() == [False, True]
    series, items = drop_series(Corpus(good), np.array([False, True]), tmp_path / "kept.h5")
    kept = Corpus(tmp_path / "kept.h5")
    assert (series, items) == (1, 4) and len(kept) == 4
    assert kept.groups.tolist() == [[0, 1, 2, 3]]
    assert kept.column("distortion").tolist() == ["reference", "gaussian_blur", "gaussian_blur", "gaussian_blur"]
    original = Corpus(good)
    for i in range(4):
        np.testing.assert_array_equal(kept.image(i), original.image(i))
    assert not score_series(kept).violations().any()


def test_drop_remaps_indices_when_middle_items_go(full_corpus, tmp_path):
    source = Corpus(full_corpus)
    groups = source.groups
    drop = np.zeros(len(groups), dtype=bool)
    drop[::3] = True
    drop_series(source, drop, tmp_path / "thin.h5")
    thin = Corpus(tmp_path / "thin.h5")
    assert len(thin.groups) == (~drop).sum()
    used = np.unique(groups[~drop])
    assert len(thin) == len(used)
    for old_row, new_row in zip(groups[~drop][:40], thin.groups[:40]):
        for old, new in zip(old_row, new_row):
            assert source.column("distortion")[old] == thin.column("distortion")[new]
            np.testing.assert_array_equal(source.image(old), thin.image(new))


def test_cli_exit_codes_table_drop_and_plot(tmp_path):
    mixed = _write(tmp_path / "mixed.h5", [3, 7, 15])  # blur ranked, jpeg not
    runner = CliRunner()
    result = runner.invoke(main, ["verify", str(mixed), "--workers", "1"])
    assert result.exit_code == 1, result.output
    assert "1/1" in result.output and "gaussian_blur" in result.output and "0/1" in result.output
    assert runner.invoke(main, ["verify", str(mixed), "--max-violations", "1", "--workers", "1"]).exit_code == 0
    out, plot = tmp_path / "ranked.h5", tmp_path / "curves.png"
    result = runner.invoke(main, ["verify", str(mixed), "--drop", "-o", str(out), "--plot", str(plot), "--workers", "1"])
    assert result.exit_code == 1 and out.exists() and plot.stat().st_size > 10_000, result.output
    assert runner.invoke(main, ["verify", str(out), "--workers", "1"]).exit_code == 0
    assert runner.invoke(main, ["verify", str(mixed), "--drop"]).exit_code == 2


def test_verify_refuses_other_kinds(tmp_path):
    path = tmp_path / "c.h5"
    writer = CorpusWriter(path, "crops", columns={"rank": "int64"}, ragged={}, attrs={}, fingerprint="x")
    with writer:
        writer.append([{"rank": 0}])
        writer.finish(tables={"groups": np.zeros((1, 1), dtype=np.int64)})
    assert CliRunner().invoke(main, ["verify", str(path)]).exit_code == 2


def test_recipe_tables_load():
    assert len(load_recipe("tid2013-full").names) == 26


def test_scoring_a_path_again_after_it_is_rewritten_reads_the_new_file(tmp_path):
    """The workers' per-process Corpus cache kept a handle to the first file: a long-lived process (the
    active-learning loop) scored the old pixels of a path rewritten since."""
    from rankgen.corpus import open_corpus
    from rankgen.fr_metrics import score_corpus

    path = _write(tmp_path / "c.h5", [7, 3, 15])
    assert score_series(Corpus(path)).violations().tolist() == [True, True]
    assert open_corpus.cache_info().currsize == 0
    psnr = score_corpus(Corpus(path), "psnr", progress=False)
    assert open_corpus.cache_info().currsize == 0
    os.replace(_write(tmp_path / "new.h5", [3, 7, 15]), path)
    assert score_series(Corpus(path)).violations().tolist() == [False, True]
    assert not np.array_equal(score_corpus(Corpus(path), "psnr", progress=False), psnr)
