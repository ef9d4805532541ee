"""Small CNNs for CPU runs and tests. No batch norm: a sample's output must not depend on its
batch, which the gradient-equivalence and DDP tests (and all-pairs ranking itself) rely on."""

from __future__ import annotations

import torch
from torch import nn

from .scorer import Scorer


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]


class SmallCNN(Scorer):
    """Four conv blocks, global average and max pooling (distortion statistics), linear head."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(*_block(3, w), *_block(w, w * 2), *_block(w * 2, w * 2), *_block(w * 2, w * 4)[:2])
        self.embed_dim = 2 * w * 4
        self.fc = nn.Linear(self.embed_dim, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(z).squeeze(1)



class SmallCounting(nn.Module):
    """Fully convolutional density regressor at stride 4 for CPU counting runs."""

    stride = 4

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.features = nn.Sequential(*_block(3, w), *_block(w, w * 2), nn.Conv2d(w * 2, w * 2, 3, padding=1), nn.ReLU(True))
        self.density = nn.Conv2d(w * 2, 1, 3, padding=1)

    def density_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.density(self.features(x))

    def forward(self, x: torch.Tensor, maps: bool = False) -> torch.Tensor:
        d = self.density_map(x)
        return d if maps else d.sum(dim=(1, 2, 3))
