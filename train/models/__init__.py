"""Model registry and weight loading (torchvision files or our own checkpoints)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from rankgen.registry import Registry

from ..errors import TrainError
from .counting import CountingVGG16
from .resnet import ResNet50
from .small import SmallCNN, SmallCounting
from .vgg import VGG16IQA

MODELS = Registry("model")
# output: "score" models return one value per image; "density" models return a per-image count
# from forward() and a map from density_map().
MODELS.register("vgg16", output="score", family="vgg16")(VGG16IQA)
MODELS.register("resnet50", output="score", family="resnet50")(ResNet50)
MODELS.register("counting_vgg16", output="density", family="vgg16")(CountingVGG16)
MODELS.register("small", output="score", family="small")(SmallCNN)
MODELS.register("small_counting", output="density", family="small_counting")(SmallCounting)


def build_model(arch: str, **kwargs) -> nn.Module:
    return MODELS.get(arch)(**kwargs)


def read_torch_file(path: str | Path, what: str, weights_only: bool):
    """torch.load onto the CPU, with a missing or unreadable file as one TrainError naming it."""
    path = Path(path)
    if not path.exists():
        raise TrainError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # torch raises many types for a foreign or damaged file
        raise TrainError(f"cannot read {what} {path}: {exc}") from None


def _read_state(path: str | Path) -> tuple[dict[str, torch.Tensor], str | None]:
    obj = read_torch_file(path, "weights file", weights_only=True)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        return obj["model"], obj.get("arch")
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, None
    raise TrainError(f"{path} holds neither a state dict nor a train checkpoint")


def load_weights(model: nn.Module, arch: str, path: str | Path) -> list[str]:
    """Copy every tensor whose key and shape match; return notes on what was skipped.

    Differing heads (a 1000-class classifier against our one-output head) are skipped with a
    note. When nothing of the backbone matches, the file is for another architecture: one error.
    """
    state, saved_arch = _read_state(path)
    family = MODELS.entry(arch).info["family"]
    if saved_arch is not None and MODELS.entry(saved_arch).info["family"] != family:
        raise TrainError(f"{path} is a checkpoint of model {saved_arch!r}; this recipe builds {arch!r}. "
                         f"Set model.arch={saved_arch} or choose weights for {arch}.")
    own = model.state_dict()
    state = {k.removeprefix("module."): v for k, v in state.items()}
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(matched) < len(own) // 2:
        raise TrainError(f"{path} does not fit model {arch!r}: only {len(matched)} of its {len(own)} tensors match by "
                         "name and shape, so it was saved from another architecture.")
    own.update(matched)
    model.load_state_dict(own)
    notes = []
    reshaped = sorted(k for k in state if k in own and k not in matched)
    unused = sorted(k for k in state if k not in own)
    missing = sorted(k for k in own if k not in state)
    if reshaped:
        notes.append(f"kept the new initialisation of {', '.join(reshaped)} (shape differs from {Path(path).name})")
    if unused:
        notes.append(f"ignored {len(unused)} tensors not in {arch}: {', '.join(unused[:6])}{' ...' if len(unused) > 6 else ''}")
    if missing:
        notes.append(f"{', '.join(missing)} not in {Path(path).name}: kept their initialisation")
    return notes
