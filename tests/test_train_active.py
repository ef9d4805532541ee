"""Active learning from rankings: Eq. 15 on hand-made models, selection, resume, bad input."""

import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from train import active as A
from train.cli import main
from rankgen.corpus import CorpusWriter
from train.testing import make_annotate, make_density

TINY = ["data.build=null", "data.patch=32", "data.test_crops=2", "model.width=4", "optim.epochs=1",
        "optim.iters_per_epoch=2", "optim.labeled_batch=4", "train.progress=false", "active.pairs=6"]


class Sharpness(torch.nn.Module):
    """Mean absolute horizontal gradient: blur lowers it, so it ranks blurred sets right."""

    def __init__(self, sign=1.0):
        super().__init__()
        self.sign = sign

    def forward(self, x):
        return self.sign * (x[..., 1:] - x[..., :-1]).abs().mean(dim=(1, 2, 3))


class Extent(torch.nn.Module):
    """On an image whose red channel is its x coordinate, the red range of a crop grows with its side."""

    def __init__(self, sign=1.0):
        super().__init__()
        self.sign = sign

    def forward(self, x):
        red = x[:, 0].flatten(1)
        return self.sign * (red.amax(1) - red.amin(1))


class Constant(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(len(x))


# -- Eq. 15 ------------------------------------------------------------------------------------------
def test_certainty_on_hand_made_scores():
    every = np.array([(s, i, j) for s in range(2) for i in range(4) for j in range(i + 1, 4)])
    right = np.array([[4.0, 3, 2, 1], [9, 8, 7, 6]])
    assert A.certainty(right, every) == 1.0
    assert A.certainty(-right, every) == 0.0
    # Set 0 swaps its last two images (5 of 6 pairs right); set 1 ties its first two (1/2 each).
    hand = np.array([[4.0, 3, 1, 2], [8, 8, 7, 6]])
    assert A.certainty(hand, every) == pytest.approx((5 + 5.5) / 12)
    assert A.certainty(hand, every[every[:, 0] == 0]) == pytest.approx(5 / 6)


def test_pair_table_draws_k_distinct_ordered_pairs():
    rng = np.random.default_rng(0)
    n = A.sets_needed(25, 5)
    assert n == 3
    pairs = A.pair_table(n, 5, 25, rng)
    assert len(pairs) == 25 and len({tuple(p) for p in pairs}) == 25
    assert (pairs[:, 1] < pairs[:, 2]).all() and pairs[:, 0].max() < n


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    d = tmp_path_factory.mktemp("active")
    return {"annotate": make_annotate(d / "a.h5", refs=4, per_ref=5, annotators=2, size=(40, 48)),
            "density": make_density(d / "den.h5", n=8, size=64), "ramps": _ramps(d / "ramps.h5")}


def _ramps(path, n=4, size=96):
    """Density items whose red channel is x and green channel y (no people: only geometry matters)."""
    w = CorpusWriter(path, "density", columns={"count": "float64", "split": "str"},
                     ragged={"image": ("uint8", 3), "density": ("float32", 2)},
                     attrs={"command": "ramps", "seed": 0, "params": {}}, fingerprint="ramps", overwrite=True)
    ramp = np.linspace(0, 255, size)
    img = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], np.zeros((size, size))), axis=2).astype(np.uint8)
    for i in range(n):
        w.append([{"count": 0.0, "split": "test" if i >= n - 2 else "train", "image": img,
                   "density": np.zeros((size, size), np.float32)}])
    w.finish({}, attrs={"stride": 1})
    return path


def _pool(cfg):
    return A.counting_pool(cfg) if cfg["task"] == "counting" else A.iqa_pool(cfg)


def _cfg(corpora, *extra, task="iqa"):
    data = corpora["density"] if task == "counting" else corpora["annotate"]
    sets = [*TINY, f"data.labeled={data}", f"task={task}", "active.distortions=[gaussian_blur]", *extra]
    if task == "counting":
        sets += ["model.arch=small_counting", "active.crops.k=3", "data.test=null"]
    return A.load_config(None, sets)


@pytest.mark.parametrize("model, expected", [(Sharpness(1.0), 1.0), (Sharpness(-1.0), 0.0), (Constant(), 0.5)])
def test_certainty_of_blurred_sets(corpora, model, expected):
    cfg = _cfg(corpora, "active.pairs=20")
    pool = _pool(cfg)
    c = A.pool_certainty(model, pool, np.arange(len(pool.names)), cfg, 0, torch.device("cpu"))
    assert c == pytest.approx(np.full(len(pool.names), expected))


@pytest.mark.parametrize("model, expected", [(Extent(1.0), 1.0), (Extent(-1.0), 0.0), (Constant(), 0.5)])
def test_certainty_of_nested_crops(corpora, model, expected):
    cfg = _cfg({**corpora, "density": corpora["ramps"]}, "active.pairs=7", task="counting")
    pool = _pool(cfg)
    c = A.pool_certainty(model, pool, np.arange(len(pool.names)), cfg, 0, torch.device("cpu"))
    assert c == pytest.approx(np.full(len(pool.names), expected))


class NotFinite(torch.nn.Module):
    def forward(self, x):
        return torch.full((len(x),), float("nan"))


def test_a_diverged_network_gives_nan_certainty_and_selects_nothing(corpora):
    from train.errors import TrainError

    cfg = _cfg(corpora)
    pool = _pool(cfg)
    c = A.pool_certainty(NotFinite(), pool, np.arange(len(pool.names)), cfg, 0, torch.device("cpu"))
    assert np.isnan(c).all()
    with pytest.raises(TrainError, match="predictions on the pool are not finite"):
        A.select(cfg, A.Cycle(cfg, pool, torch.device("cpu")), "active", NotFinite(), np.arange(2), 0, 2)


def test_generators_follow_the_units_own_distortion():
    cfg = A.load_config(None, ["active.distortions=[jpeg]"])
    assert A._generators(cfg, "tid08") == ["gaussian_blur"]
    # TID2013's published names map by type number; types rankgen lacks fall back to the list.
    assert A._generators(cfg, "additive_gaussian_noise") == ["gaussian_noise"]
    assert A._generators(cfg, "comfort_noise") == ["jpeg"]


# -- the cycle loop through the CLI --------------------------------------------------------------------
def _invoke(*args):
    return CliRunner().invoke(main, ["active", *args], catch_exceptions=False)


def _sets(tmp_path, corpora, *extra):
    out = []
    for s in [*TINY, f"out={tmp_path}/runs", f"data.labeled={corpora['annotate']}", "active.distortions=[gaussian_blur]",
              "active.initial=0.2", "active.add=0.2", "name=x", *extra]:
        out += ["--set", s]
    return out


def test_cycles_select_least_certain_and_resume(tmp_path, corpora):
    r = _invoke("--cycles", "2", *_sets(tmp_path, corpora))
    assert r.exit_code == 0, r.output
    run = tmp_path / "runs" / "x"
    assert (run / "active.png").exists()
    rows = list(csv.DictReader(open(run / "results.csv")))
    assert [(row["strategy"], row["cycle"]) for row in rows] == [(s, str(t)) for s in A.STRATEGIES for t in range(3)]
    pool = json.loads((run / "pool.json").read_text())
    assert len(pool["units"]) == 15 and pool["counts"] == [3, 6, 9]
    first = {s: json.loads((run / s / "cycle_0.json").read_text()) for s in A.STRATEGIES}
    assert first["active"]["labeled"] == first["random"]["labeled"]
    assert rows[0]["lcc"] == rows[3]["lcc"]
    for t in range(2):
        rec = json.loads((run / "active" / f"cycle_{t}.json").read_text())
        cert = rec["certainty"]
        assert set(cert) == set(pool["units"]) - set(rec["labeled"])
        worst = sorted(cert, key=lambda u: (cert[u], pool["units"].index(u)))[:3]
        assert sorted(rec["selected"]) == sorted(worst)
    nxt = json.loads((run / "random" / "cycle_1.json").read_text())
    assert len(nxt["labeled"]) == 6 and set(first["random"]["labeled"] + first["random"]["selected"]) == set(nxt["labeled"])

    again = _invoke("--cycles", "2", *_sets(tmp_path, corpora))
    assert again.exit_code == 2 and "--resume" in again.output
    # Lose the last cycle of the random branch, as a kill would, and extend the run by one cycle.
    (run / "random" / "cycle_2.json").unlink()
    more = _invoke("--cycles", "3", "--resume", *_sets(tmp_path, corpora, "active.add=0.15"))
    assert more.exit_code == 2 and "active.add" in more.output
    more = _invoke("--cycles", "3", "--resume", *_sets(tmp_path, corpora))
    assert more.exit_code == 0, more.output
    resumed = list(csv.DictReader(open(run / "results.csv")))
    assert len(resumed) == 8
    assert len(json.loads((run / "active" / "cycle_2.json").read_text())["selected"]) == 3
    old = {(r["strategy"], r["cycle"]): r for r in rows}
    for row in resumed:
        if (row["strategy"], row["cycle"]) in old:
            assert row == old[(row["strategy"], row["cycle"])]


def test_training_target_is_standardized_over_the_labeled_set(corpora):
    """SSIM (0-1) and PSNR (dB) must train alike: an affine change of the target leaves the weights."""
    cfg = A.load_config(None, [*TINY, f"data.labeled={corpora['annotate']}", "active.distortions=[gaussian_blur]"])
    pool = A.iqa_pool(cfg)
    cyc = A.Cycle(cfg, pool, torch.device("cpu"))
    items = pool.items(np.arange(4))
    weights = []
    for scale, shift in ((1.0, 0.0), (40.0, 25.0)):
        pool.target = pool.target * scale + shift
        model = cyc.new_model()
        cyc.train(model, items, seed=0)
        weights.append(model.state_dict())
    for key in weights[0]:
        torch.testing.assert_close(weights[1][key], weights[0][key], rtol=1e-4, atol=1e-5)


def test_counting_run(tmp_path, corpora):
    sets = []
    for s in [*TINY, f"out={tmp_path}/runs", f"data.labeled={corpora['density']}", "task=counting",
              "model.arch=small_counting", "active.crops.k=3", "data.scales=[32,48]", "name=c"]:
        sets += ["--set", s]
    r = _invoke("--cycles", "2", "--initial", "0.34", "--add", "0.33", *sets)
    assert r.exit_code == 0, r.output
    assert "active mae" in r.output
    rows = list(csv.DictReader(open(tmp_path / "runs" / "c" / "results.csv")))
    assert len(rows) == 6 and all(np.isfinite(float(row["mae"])) for row in rows)


# -- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--cycles", "9", "--add", "0.2"], "error: budget exceeds the pool"),
    (["--cycles", "0"], "error: active.cycles=0"),
    (["--pairs", "0"], "error: active.pairs=0"),
    (["--set", "active.distortions=[]"], "has no ranked generator"),
    (["--set", "active.distortions=[not_a_blur]"], "error:"),
    (["--set", "active.pairz=3"], "Did you mean active.pairs"),
    (["--add", "0.01"], "less than one unit per cycle"),
    # The model checks of train run (train.build), not a second copy of them.
    (["--set", "model.arch=small_counting"], "model small_counting outputs density maps; use it with task counting"),
    (["--set", "model.arch=vgg16"], "model.width applies to the small models only, not vgg16"),
])
def test_bad_input_is_one_line(tmp_path, corpora, args, message):
    r = _invoke(*_sets(tmp_path, corpora), *args)
    assert r.exit_code == 2, r.output
    assert message in r.output and len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output


def test_balanced_order_lets_types_take_turns():
    from train.active import balanced

    order = np.array([5, 3, 9, 1, 7, 2])
    types = ["a", "a", "b", "a", "c", "b"]
    # a's least certain first, then b's, then c's; within a type the certainty order is kept
    assert balanced(order, types).tolist() == [5, 9, 7, 3, 2, 1]


def _twin_annotate(path):
    """An annotate corpus split by reference, as before issue #15: a stereo twin on each side."""
    w = CorpusWriter(path, "annotate", columns={"score": "float64", "split": "str", "ref": "str"},
                     ragged={"image": ("uint8", 3)}, attrs={"command": "twins", "seed": 0, "params": {}},
                     fingerprint="twins", overwrite=True)
    rng = np.random.default_rng(0)
    for ref, split in (("a", "train"), ("b", "train"), ("scene_left", "train"), ("scene_right", "test"), ("c", "test")):
        for k in range(3):
            w.append([{"score": 1.0 - k / 3, "split": split, "ref": ref,
                       "image": rng.integers(0, 256, (40, 48, 3)).astype(np.uint8)}])
    w.finish({})
    return path


def test_a_stereo_twin_of_a_test_image_is_not_in_the_pool(tmp_path, capsys):
    cfg = A.load_config(None, [*TINY, f"data.labeled={_twin_annotate(tmp_path / 't.h5')}",
                               "active.distortions=[gaussian_blur]"])
    pool = A.iqa_pool(cfg)
    assert pool.names and not [n for n in pool.names if n.startswith("scene_")]
    assert "scene_left" in capsys.readouterr().err


def test_distort_pools_hold_out_whole_scenes(tmp_path):
    import rankgen
    from rankgen.sources import scene_of

    path = tmp_path / "s.h5"
    rankgen.distort(path, dataset="samples", crop=32, levels=2, distortions="gaussian_blur", workers=1, progress=False)
    for seed in range(5):
        cfg = A.load_config(None, [*TINY, f"data.labeled={path}", f"seed={seed}", "active.levels=2"])
        pool = A.iqa_pool(cfg)
        refs = pool.corpus.table("ref_id")[pool.corpus.column("ref")]
        tested = {scene_of(r) for r in refs[pool.test]}
        trained = {scene_of(name.split("/")[0]) for name in pool.names}
        assert tested and trained and not tested & trained, (seed, tested, trained)


def test_two_active_runs_cannot_write_one_folder(tmp_path, corpora):
    from train.loop import lock_run_dir

    (tmp_path / "runs" / "x").mkdir(parents=True)
    held = lock_run_dir(tmp_path / "runs" / "x")
    r = _invoke("--resume", *_sets(tmp_path, corpora))
    held.close()
    assert r.exit_code == 2 and "another process" in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_a_damaged_cycle_checkpoint_is_one_line_on_resume(tmp_path, corpora):
    assert _invoke("--cycles", "1", *_sets(tmp_path, corpora)).exit_code == 0
    (tmp_path / "runs" / "x" / "active" / "cycle_1.pt").write_bytes(b"junk")
    r = _invoke("--cycles", "2", "--resume", *_sets(tmp_path, corpora))
    assert r.exit_code == 2 and r.output.startswith("error: cannot read checkpoint") and "cycle_1.pt" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
