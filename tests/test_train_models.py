import pytest
import torch

from train.errors import TrainError
from train.models import MODELS, build_model, load_weights

VGG16_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


def _vgg16_keys():
    keys = [f"features.{i}.{p}" for i in VGG16_CONVS for p in ("weight", "bias")]
    return keys + [f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")]


def _resnet50_keys():
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = ["conv1.weight"] + [f"bn1.{p}" for p in bn]
    for layer, blocks in enumerate((3, 4, 6, 3), start=1):
        for b in range(blocks):
            pre = f"layer{layer}.{b}"
            for c in (1, 2, 3):
                keys += [f"{pre}.conv{c}.weight"] + [f"{pre}.bn{c}.{p}" for p in bn]
            if b == 0:
                keys += [f"{pre}.downsample.0.weight"] + [f"{pre}.downsample.1.{p}" for p in bn]
    return keys + ["fc.weight", "fc.bias"]


def test_vgg16_keys_match_torchvision():
    sd = build_model("vgg16").state_dict()
    assert sorted(sd) == sorted(_vgg16_keys())
    assert sd["classifier.0.weight"].shape == (4096, 25088)
    assert sd["features.28.weight"].shape == (512, 512, 3, 3)


def test_resnet50_keys_match_torchvision():
    sd = build_model("resnet50").state_dict()
    assert len(_resnet50_keys()) == 320
    assert sorted(sd) == sorted(_resnet50_keys())
    assert sd["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)


def test_counting_keys_are_vgg16_features_without_pool5():
    sd = build_model("counting_vgg16").state_dict()
    assert sorted(sd) == sorted([k for k in _vgg16_keys() if k.startswith("features")] + ["density.weight", "density.bias"])
    x = torch.zeros(1, 3, 64, 64)
    assert build_model("counting_vgg16").density_map(x).shape == (1, 1, 4, 4)


@pytest.mark.parametrize("arch", MODELS.names())
def test_every_model_outputs_one_value_per_image(arch):
    model = build_model(arch).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 64, 64)).shape == (2,)


def test_torchvision_style_file_loads_with_head_skipped(tmp_path):
    """A 1000-class ImageNet file: backbone loads, the differing head is skipped with a note."""
    src = build_model("vgg16").state_dict()
    src["classifier.6.weight"] = torch.zeros(1000, 4096)
    src["classifier.6.bias"] = torch.zeros(1000)
    src["features.0.bias"] = torch.full((64,), 7.0)
    torch.save(src, tmp_path / "vgg16-397923af.pth")
    model = build_model("vgg16")
    notes = load_weights(model, "vgg16", tmp_path / "vgg16-397923af.pth")
    assert torch.all(model.features[0].bias == 7.0)
    assert any("classifier.6.weight" in n for n in notes)
    counting = build_model("counting_vgg16")
    notes = load_weights(counting, "counting_vgg16", tmp_path / "vgg16-397923af.pth")
    assert torch.all(counting.features[0].bias == 7.0)
    assert any("ignored 6 tensors" in n for n in notes)


def test_other_architecture_is_one_clear_error(tmp_path):
    torch.save(build_model("small").state_dict(), tmp_path / "small.pth")
    with pytest.raises(TrainError, match="another architecture"):
        load_weights(build_model("vgg16"), "vgg16", tmp_path / "small.pth")
    torch.save({"model": build_model("small").state_dict(), "arch": "small"}, tmp_path / "ck.pt")
    with pytest.raises(TrainError, match="checkpoint of model 'small'"):
        load_weights(build_model("resnet50"), "resnet50", tmp_path / "ck.pt")
