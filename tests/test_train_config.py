import pytest

from train.config import load_config
from train.errors import TrainError


def _recipe(tmp_path, text):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return str(p)


def test_default_recipe_loads_and_names_the_run():
    cfg = load_config(None)
    assert cfg["name"] == "default" and cfg["model"]["arch"] == "small"


def test_set_overrides_dotted_fields_with_yaml_values(tmp_path):
    r = _recipe(tmp_path, "objective: rank\nmodel: {arch: small}\ndata: {ranked: x.h5}\n")
    cfg = load_config(r, ["optim.lr=1e-3", "train.amp=false", "data.scales=[32, 64]"])
    assert cfg["optim"]["lr"] == 1e-3 and cfg["train"]["amp"] is False and cfg["data"]["scales"] == [32, 64]
    assert cfg["name"] == "r"


def test_unknown_override_names_key_and_close_matches(tmp_path):
    with pytest.raises(TrainError, match=r"unknown key 'optim.lrr' in --set\. Did you mean optim\.lr"):
        load_config(None, ["optim.lrr=1"])


def test_unknown_recipe_key(tmp_path):
    r = _recipe(tmp_path, "objective: rank\nmodel: {arch: small, weigths: a.pth}\ndata: {ranked: x.h5}\n")
    with pytest.raises(TrainError, match="model.weigths.*Did you mean model.weights"):
        load_config(r)


def test_missing_required_keys(tmp_path):
    with pytest.raises(TrainError, match="lacks required keys objective, model.arch"):
        load_config(_recipe(tmp_path, "data: {ranked: x.h5}\n"))
    r = _recipe(tmp_path, "objective: multitask\nmodel: {arch: small}\ndata: {ranked: x.h5}\n")
    with pytest.raises(TrainError, match="needs data.labeled"):
        load_config(r)


def test_bad_values(tmp_path):
    with pytest.raises(TrainError, match="objective='ranking': choose one of"):
        load_config(None, ["objective=ranking"])
    with pytest.raises(TrainError, match="expected a number"):
        load_config(None, ["optim.lr=fast"])
    with pytest.raises(TrainError, match="expected key=value"):
        load_config(None, ["optim.lr"])


@pytest.mark.parametrize("name", ["rankiqa_tid2013", "rankiqa_ft_tid2013", "mt_rankiqa_tid2013", "rankiqa_live",
                                  "rankiqa_ft_live", "mt_rankiqa_live", "crowd_multitask_sha_a", "crowd_multitask_sha_b",
                                  "crowd_multitask_ucf", "dcr_tid2013_4ann"])
def test_paper_recipes_load(name):
    cfg = load_config(name)
    assert cfg["name"] == name


def test_optimizer_is_chosen_by_name():
    import torch

    from train.engine import make_optimizer

    params = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(make_optimizer(params, load_config(None)["optim"]), torch.optim.SGD)
    assert isinstance(make_optimizer(params, load_config(None, ["optim.optimizer=adam"])["optim"]), torch.optim.Adam)
    with pytest.raises(TrainError, match="optim.optimizer='adamw': choose one of"):
        load_config(None, ["optim.optimizer=adamw"])


@pytest.mark.parametrize("setting, message", [
    ("data.patch=0", "data.patch=0: expected pixels in [16, 2048]"),
    ("data.patch=100000", "data.patch=100000: expected pixels in [16, 2048]"),
    ("data.workers=-1", "data.workers=-1: expected a whole number in [0, 256]"),
    ("optim.batch_size=0", "optim.batch_size=0: expected a whole number >= 2"),
    ("optim.epochs=-1", "optim.epochs=-1: expected a whole number >= 1"),
    ("optim.epochs=2.5", "optim.epochs=2.5: expected a whole number >= 1"),
    ("data.heldout=1.5", "data.heldout=1.5: expected a fraction in [0, 0.99]"),
    ("data.val=-0.1", "data.val=-0.1: expected a fraction in [0, 0.9]"),
    ("optim.lr=0", "optim.lr=0: expected a number > 0"),
    ("optim.lr=.nan", "optim.lr=nan: expected a number > 0"),
    ("data.scales=[64, 8]", "data.scales=[64, 8]: expected [low, high]"),
])
def test_out_of_range_values_name_the_key_and_the_range(setting, message):
    with pytest.raises(TrainError) as err:
        load_config(None, [setting])
    assert str(err.value).startswith(message)


def test_whole_numbers_written_as_floats_are_whole_numbers():
    cfg = load_config(None, ["optim.epochs=3.0", "optim.iters_per_epoch=null"])
    assert cfg["optim"]["epochs"] == 3 and isinstance(cfg["optim"]["epochs"], int)
    assert cfg["optim"]["iters_per_epoch"] is None
