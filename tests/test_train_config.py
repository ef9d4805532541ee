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

    from train.loop import make_optimizer

    params = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(make_optimizer(params, load_config(None)["optim"]), torch.optim.SGD)
    assert isinstance(make_optimizer(params, load_config(None, ["optim.optimizer=adam"])["optim"]), torch.optim.Adam)
    with pytest.raises(TrainError, match="optim.optimizer='adamw': choose one of"):
        load_config(None, ["optim.optimizer=adamw"])
