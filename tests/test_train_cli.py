"""End to end through the CLI on tiny synthetic corpora, and one clear error per bad input."""

import csv

import numpy as np

import h5py
import pytest
import torch
from click.testing import CliRunner

from train.cli import main
from train.testing import make_annotate, make_crops, make_density, make_distort

TINY = ["data.build=null", "data.patch=32", "data.test_crops=2", "model.width=4", "optim.epochs=2",
        "optim.iters_per_epoch=2", "optim.batch_size=12", "optim.labeled_batch=4", "train.progress=false"]


def _run(tmp_path, *args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def _sets(tmp_path, *extra):
    out = []
    for s in [*TINY, f"out={tmp_path}/runs", *extra]:
        out += ["--set", s]
    return out


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpora")
    return {"distort": make_distort(d / "d.h5", refs=4, levels=4, size=(40, 48)),
            "annotate": make_annotate(d / "a.h5", refs=4, per_ref=5, annotators=2, size=(40, 48)),
            "density": make_density(d / "den.h5", n=5, size=48), "crops": make_crops(d / "c.h5", n_sets=3, k=3)}


def test_rank_run_folder_resume_eval_predict(tmp_path, corpora):
    r = _run(tmp_path, "run", *_sets(tmp_path, f"data.ranked={corpora['distort']}", "data.heldout=0.5", "name=x"))
    assert r.exit_code == 0, r.output
    assert "heldout_pra:" in r.output
    run = tmp_path / "runs" / "x"
    for name in ("config.yaml", "metrics.csv", "last.pt", "best.pt", "curves.png"):
        assert (run / name).exists(), name
    assert len(list(csv.DictReader(open(run / "metrics.csv")))) == 2
    again = _run(tmp_path, "run", *_sets(tmp_path, f"data.ranked={corpora['distort']}", "name=x"))
    assert again.exit_code == 2 and "--resume" in again.output
    more = _run(tmp_path, "run", "--resume", *_sets(tmp_path, f"data.ranked={corpora['distort']}", "data.heldout=0.5",
                                                   "name=x", "optim.epochs=3"))
    assert more.exit_code == 0, more.output
    assert torch.load(run / "last.pt", weights_only=False)["epoch"] == 3
    assert len(list(csv.DictReader(open(run / "metrics.csv")))) == 3
    ev = _run(tmp_path, "eval", "--checkpoint", str(run / "best.pt"), "--data", str(corpora["distort"]))
    assert ev.exit_code == 0 and "pra:" in ev.output
    png = tmp_path / "a.png"
    from PIL import Image
    from rankgen.corpus import Corpus
    Image.fromarray(Corpus(corpora["distort"]).image(0)).save(png)
    pr = _run(tmp_path, "predict", "--checkpoint", str(run / "best.pt"), str(png))
    assert pr.exit_code == 0 and pr.output.splitlines()[0] == "path,score" and str(png) in pr.output


@pytest.mark.parametrize("objective,extra", [
    ("regress", ()), ("multitask", ("data.heldout=0",)), ("dcr", ("data.rotate=45",)), ("dcr", ("loss.grl=false", "loss.disjoint=false"))])
def test_iqa_objectives_run(tmp_path, corpora, objective, extra):
    r = _run(tmp_path, "run", *_sets(tmp_path, f"objective={objective}", f"data.ranked={corpora['distort']}",
                                     f"data.labeled={corpora['annotate']}", "optim.epochs=1", *extra))
    assert r.exit_code == 0, r.output
    for key in ("srocc:", "plcc:", "pra:", "lcc_true:"):
        assert key in r.output


def test_counting_multitask_runs(tmp_path, corpora):
    r = _run(tmp_path, "run", *_sets(tmp_path, "task=counting", "objective=multitask", "model.arch=small_counting",
                                     f"data.ranked={corpora['crops']}", f"data.labeled={corpora['density']}", f"data.test={corpora['density']}",
                                     "data.scales=[16, 48]", "data.heldout=0", "optim.epochs=1", "loss.lambda=100"))
    assert r.exit_code == 0, r.output
    assert "mae:" in r.output and "rmse:" in r.output


def _error(tmp_path, *args):
    r = CliRunner().invoke(main, list(args))
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    line = r.output.strip().splitlines()[-1]
    assert line.startswith("error: ")
    return line


def test_bad_inputs_give_one_clear_error(tmp_path, corpora):
    assert "Did you mean optim.lr" in _error(tmp_path, "run", "--set", "optim.lrr=1")
    assert "is a 'annotate' corpus; this needs 'distort'" in _error(
        tmp_path, "run", *_sets(tmp_path, f"data.ranked={corpora['annotate']}"))
    old = tmp_path / "old.h5"
    make_distort(old, refs=1, levels=2)
    with h5py.File(old, "a") as f:
        f.attrs["schema_version"] = 0
    assert "schema version 0" in _error(tmp_path, "run", *_sets(tmp_path, f"data.ranked={old}"))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: {ranked: x.h5}\n")
    assert "lacks required keys objective, model.arch" in _error(tmp_path, "run", "--recipe", str(recipe))
    assert "does not exist" in _error(tmp_path, "run", *_sets(tmp_path, "data.ranked=nope.h5"))
    torch.save({"model": {"w": torch.zeros(1)}, "arch": "resnet50", "config": {}}, tmp_path / "other.pt")
    assert "checkpoint of model 'resnet50'" in _error(
        tmp_path, "run", *_sets(tmp_path, f"data.ranked={corpora['distort']}", f"model.weights={tmp_path}/other.pt"))
    torch.save({"k": torch.zeros(3)}, tmp_path / "foreign.pth")
    assert "another architecture" in _error(
        tmp_path, "run", *_sets(tmp_path, f"data.ranked={corpora['distort']}", f"model.weights={tmp_path}/foreign.pth"))
    assert "not a train checkpoint" in _error(tmp_path, "eval", "--checkpoint", str(tmp_path / "foreign.pth"),
                                              "--data", str(corpora["distort"]))


BLOCK_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
sys.meta_path.insert(0, NoTorch())
sys.argv = ["train", "run"]
from train.cli import main
main()
"""


def test_missing_torch_is_one_clear_line():
    """rankgen installs without torch; `train` then says how to get it instead of a traceback."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", BLOCK_TORCH], capture_output=True, text=True)
    assert result.returncode == 2 and "rankgen[train]" in result.stderr and "Traceback" not in result.stderr


def test_diverging_run_stops_with_one_line_and_writes_no_checkpoint(tmp_path, corpora):
    r = CliRunner().invoke(main, ["run", *_sets(tmp_path, f"data.ranked={corpora['distort']}", "name=nan",
                                                "optim.lr=1e30", "optim.epochs=3", "optim.iters_per_epoch=4")])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    line = r.output.strip().splitlines()[-1]
    assert line.startswith("error: loss became") and "at step" in line and "rank=" in line and "optim.lr" in line
    assert not (tmp_path / "runs" / "nan" / "best.pt").exists() and not (tmp_path / "runs" / "nan" / "last.pt").exists()


def test_divergence_after_a_checkpoint_gives_advice_that_works(tmp_path, corpora, monkeypatch):
    """last.pt of the finite epoch 1 stays; the hint must not claim otherwise, nor send the user to
    a plain re-run (refused: the folder holds a run) or --resume (refused: optim.lr changed)."""
    from train import loop

    loss = loop.Trainer.loss

    def nan_from_epoch_2(self, batch):
        value, parts = loss(self, batch)
        return (value * float("nan") if self.epoch else value), parts

    monkeypatch.setattr(loop.Trainer, "loss", nan_from_epoch_2)
    base = _sets(tmp_path, f"data.ranked={corpora['distort']}", "name=late", "optim.epochs=3")
    r = CliRunner().invoke(main, ["run", *base])
    assert r.exit_code == 2, r.output
    line = r.output.strip().splitlines()[-1]
    assert line.startswith("error: loss became nan") and "epoch 2" in line and "no checkpoint" not in line, line
    assert torch.load(tmp_path / "runs" / "late" / "last.pt", weights_only=False)["epoch"] == 1
    assert "--set name=" in line
    monkeypatch.setattr(loop.Trainer, "loss", loss)
    assert _run(tmp_path, "run", *base, "--set", "optim.lr=1e-5", "--set", "name=late2").exit_code == 0


def test_nonfinite_weights_are_never_saved(tmp_path):
    from train.errors import TrainError
    from train.engine import atomic_save

    with pytest.raises(TrainError, match="non-finite"):
        atomic_save({"model": {"w": torch.tensor([1.0, float("nan")])}}, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_a_nan_score_never_becomes_best(tmp_path, corpora, monkeypatch):
    from train import loop

    scores = iter([0.2, float("nan"), 0.1])
    monkeypatch.setattr(loop.Trainer, "evaluate", lambda self: {"heldout_pra": next(scores)})
    r = _run(tmp_path, "run", *_sets(tmp_path, f"data.ranked={corpora['distort']}", "name=b", "optim.epochs=3"))
    assert r.exit_code == 0, r.output
    assert torch.load(tmp_path / "runs" / "b" / "best.pt", weights_only=False)["epoch"] == 1


@pytest.mark.parametrize("setting", ["data.patch=0", "data.patch=100000", "data.workers=-1", "optim.batch_size=0",
                                     "optim.epochs=-1", "data.heldout=1.5"])
def test_bad_values_are_one_line_naming_key_and_range(tmp_path, corpora, setting):
    line = _error(tmp_path, "run", *_sets(tmp_path, f"data.ranked={corpora['distort']}"), "--set", setting)
    key = setting.split("=")[0]
    assert line.startswith(f"error: {key}=") and "expected" in line


def test_the_same_resume_command_works_before_and_after_the_first_checkpoint(tmp_path, corpora):
    args = ["run", "--resume", *_sets(tmp_path, f"data.ranked={corpora['distort']}", "name=r", "optim.epochs=1")]
    first = _run(tmp_path, *args)
    assert first.exit_code == 0 and "no checkpoint yet" in first.output, first.output
    second = _run(tmp_path, *args[:-2], "--set", "optim.epochs=2")
    assert second.exit_code == 0 and "resumed" in second.output, second.output


def test_resume_with_another_model_is_one_line(tmp_path, corpora):
    base = _sets(tmp_path, f"data.ranked={corpora['distort']}", "name=m", "optim.epochs=1")
    assert _run(tmp_path, "run", *base).exit_code == 0
    for change in ("model.arch=resnet50", "model.width=8"):
        line = _error(tmp_path, "run", "--resume", *base, "--set", change)
        assert "--resume:" in line and change.split("=")[0] in line


def test_two_runs_cannot_write_one_folder(tmp_path):
    from train.errors import TrainError
    from train.loop import lock_run_dir

    held = lock_run_dir(tmp_path)
    with pytest.raises(TrainError, match=r"another process \(pid \d+\) is training in"):
        lock_run_dir(tmp_path)
    held.close()
    lock_run_dir(tmp_path).close()


def test_the_test_split_never_chooses_best_pt(tmp_path, corpora):
    """Two runs that differ only in the test corpus's labels (one the negation of the other) must
    keep the same best.pt: the choice is made on validation data carved from training."""
    import shutil

    flipped = tmp_path / "flipped.h5"
    shutil.copy(corpora["annotate"], flipped)
    with h5py.File(flipped, "a") as f:
        f["items/score"][...] = -f["items/score"][...]
    best = []
    for name, test in (("t1", corpora["annotate"]), ("t2", flipped)):
        r = _run(tmp_path, "run", *_sets(tmp_path, "objective=regress", f"data.labeled={corpora['annotate']}",
                                         f"data.test={test}", "optim.epochs=4", "data.val=0.34", f"name={name}",
                                         "optim.lr=0.05"))
        assert r.exit_code == 0 and "val_srocc:" in r.output, r.output
        best.append(torch.load(tmp_path / "runs" / name / "best.pt", weights_only=False))
    assert best[0]["epoch"] == best[1]["epoch"]
    for k, v in best[0]["model"].items():
        assert torch.equal(v, best[1]["model"][k]), k
    assert [row["srocc"] for row in best[0]["history"]] == [-row["srocc"] for row in best[1]["history"]]


@pytest.mark.parametrize("refs, twins_together", [(["motorcycle_left", "motorcycle_right", "a", "b", "c"], True)])
def test_stereo_twins_are_one_scene(refs, twins_together):
    import numpy as np

    from rankgen.sources import scene_of
    from train.data import hold_out_scenes

    assert scene_of("motorcycle_left") == scene_of("motorcycle_right") == "motorcycle"
    assert scene_of("left") == "left" and scene_of("a_leftover") == "a_leftover"
    for seed in range(20):
        held = hold_out_scenes(np.array(refs), 0.4, np.random.default_rng(seed))
        assert held[0] == held[1]
        assert 0 < held.sum() < len(refs)


def test_patience_stops_early_on_validation(tmp_path, corpora, monkeypatch):
    from train import loop

    scores = iter([0.5, 0.4, 0.3, 0.9])
    monkeypatch.setattr(loop.Trainer, "evaluate", lambda self: {"heldout_pra": next(scores)})
    r = _run(tmp_path, "run", *_sets(tmp_path, f"data.ranked={corpora['distort']}", "name=p", "optim.epochs=4",
                                     "optim.patience=2"))
    assert r.exit_code == 0 and "early stop" in r.output, r.output
    assert torch.load(tmp_path / "runs" / "p" / "last.pt", weights_only=False)["epoch"] == 3


def test_collapsed_predictions_warn(tmp_path, corpora, monkeypatch):
    from train import loop

    monkeypatch.setattr(loop.Trainer, "predict_items", lambda self, ds, items, n, seeds=None: np.full(len(items), 0.5))
    r = _run(tmp_path, "run", *_sets(tmp_path, "objective=dcr", f"data.labeled={corpora['annotate']}", "optim.epochs=1"))
    assert r.exit_code == 0 and "have collapsed" in r.output and "loss.gamma" in r.output, r.output
    # Validation and test may be of one corpus and one size: the warning says which split it is.
    assert "validation predictions" in r.output and "test predictions" in r.output, r.output


class _DropoutCNN(torch.nn.Module):
    """The small CNN with dropout before its head, as VGG-16 has: resume must replay its masks."""

    def __new__(cls, width=4):
        from train.models.small import SmallCNN

        model = SmallCNN(width)
        head = model.head
        drop = torch.nn.Dropout(0.5)
        model.add_module("drop", drop)
        model.head = lambda z: head(drop(z))
        return model


def _dropout_model():
    from train.models import MODELS

    if "small_dropout_test" not in MODELS.names():
        MODELS.register("small_dropout_test", output="score", family="small")(_DropoutCNN)


def test_resume_with_dropout_is_bit_identical(tmp_path, corpora):
    _dropout_model()
    base = [f"data.ranked={corpora['distort']}", "model.arch=small_dropout_test", "model.width=null"]
    whole = _run(tmp_path, "run", *_sets(tmp_path, *base, "name=whole", "optim.epochs=3"))
    assert whole.exit_code == 0, whole.output
    first = _run(tmp_path, "run", *_sets(tmp_path, *base, "name=cut", "optim.epochs=1"))
    rest = _run(tmp_path, "run", "--resume", *_sets(tmp_path, *base, "name=cut", "optim.epochs=3"))
    assert first.exit_code == 0 and rest.exit_code == 0, rest.output
    a = torch.load(tmp_path / "runs" / "whole" / "last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "runs" / "cut" / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_of_a_cuda_run_scores_on_this_machine_and_predict_fails_before_output(tmp_path, corpora):
    r = _run(tmp_path, "run", *_sets(tmp_path, f"data.ranked={corpora['distort']}", "name=g", "optim.epochs=1"))
    assert r.exit_code == 0, r.output
    ck = torch.load(tmp_path / "runs" / "g" / "last.pt", weights_only=False)
    ck["config"]["train"]["device"] = "cuda"
    torch.save(ck, tmp_path / "cuda.pt")
    ev = _run(tmp_path, "eval", "--checkpoint", str(tmp_path / "cuda.pt"), "--data", str(corpora["distort"]))
    assert ev.exit_code == 0 and "pra:" in ev.output, ev.output
    png = tmp_path / "a.png"
    png.write_bytes(b"x")
    bad = CliRunner().invoke(main, ["predict", "--checkpoint", str(tmp_path / "nope.pt"), str(png)])
    assert bad.exit_code == 2 and "path,score" not in bad.output and bad.output.startswith("error:")


def test_evaluation_is_float32_outside_autocast():
    from train.engine import predict

    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append((x.dtype, torch.is_autocast_enabled(), self.training))
            return x.mean(dim=(1, 2, 3))

    m = Probe().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = predict(m, [torch.rand(2, 3, 8, 8, dtype=torch.float64)], torch.device("cpu"))
    assert seen == [(torch.float32, False, False)]
    assert out.dtype == np.float64


def test_best_pt_is_a_weights_file_for_fine_tuning(tmp_path, corpora):
    """rankiqa_ft_* start from a rank run's best.pt, read with weights_only=True."""
    r = _run(tmp_path, "run", *_sets(tmp_path, f"data.ranked={corpora['distort']}", "name=w", "optim.epochs=1"))
    assert r.exit_code == 0, r.output
    torch.load(tmp_path / "runs" / "w" / "best.pt", weights_only=True)
    ft = _run(tmp_path, "run", *_sets(tmp_path, "objective=regress", f"data.labeled={corpora['annotate']}", "name=ft",
                                      "optim.epochs=1", f"model.weights={tmp_path}/runs/w/best.pt"))
    assert ft.exit_code == 0, ft.output


def test_fine_tuning_starts_from_the_ranked_network(tmp_path, corpora):
    """RankIQA+FT: every tensor of the rank run's best.pt, the score head included, is the
    fine-tuning run's starting point (no head re-initialised, no sign or key lost on the way)."""
    from train.config import load_config
    from train.distributed import Dist
    from train.loop import Trainer

    r = _run(tmp_path, "run", *_sets(tmp_path, f"data.ranked={corpora['distort']}", "name=w", "optim.epochs=1"))
    assert r.exit_code == 0, r.output
    saved = torch.load(tmp_path / "runs" / "w" / "best.pt", weights_only=True)["model"]
    cfg = load_config(None, [*TINY, "train.device=cpu", "objective=regress", f"data.labeled={corpora['annotate']}",
                             f"out={tmp_path}/runs", "name=ft", f"model.weights={tmp_path}/runs/w/best.pt"])
    start = Trainer(cfg, Dist(device=torch.device("cpu"))).model.state_dict()
    assert start.keys() == saved.keys()
    for key in saved:
        torch.testing.assert_close(start[key], saved[key], rtol=0, atol=0, msg=key)


def test_only_the_corpora_the_run_reads_are_built(tmp_path, monkeypatch):
    import subprocess as sp

    from train.distributed import Dist
    from train.build import build_corpora

    built = []

    def fake_run(cmd, **kw):
        out = cmd[cmd.index("-o") + 1]
        built.append(out)
        open(out, "w").close()
        return sp.CompletedProcess(cmd, 0, "")

    monkeypatch.setattr(sp, "run", fake_run)
    used, replaced = tmp_path / "used.h5", tmp_path / "replaced.h5"
    cfg = {"data": {"ranked": str(tmp_path / "mine.h5"), "labeled": str(used),
                    "build": {str(replaced): ["distort"], str(used): ["distort"]}}}
    build_corpora(cfg, Dist())
    assert built == [str(used)]


def test_damage_met_inside_a_dataloader_worker_is_one_line(tmp_path):
    import shutil
    import subprocess
    import sys

    damaged = tmp_path / "d.h5"
    shutil.copy(make_distort(tmp_path / "sound.h5", refs=4, levels=4, size=(40, 48)), damaged)
    with h5py.File(damaged, "a") as f:
        f["ragged/image/crc32"][:] ^= 1  # every item, so the first batch meets one
    args = [sys.executable, "-m", "train", "run", *_sets(tmp_path, f"data.ranked={damaged}", "data.heldout=0.5",
                                                         "data.workers=2", "name=w")]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {damaged} is damaged: item ")
