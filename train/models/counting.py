"""Counting network of the ranking paper (Sec. 5.3, Fig. 4): VGG-16 up to conv5_3, no pool5."""

from __future__ import annotations

import torch
from torch import nn

from .vgg import VGG16_CFG, vgg16_features


class CountingVGG16(nn.Module):
    """Outputs a density map (stride 16); its sum is the count and the score used for ranking."""

    stride = 16

    def __init__(self):
        super().__init__()
        # Dropping the final "M" keeps torchvision's indices features.0 ... features.28.
        self.features = vgg16_features(VGG16_CFG[:-1])
        self.density = nn.Conv2d(512, 1, 3, padding=1)
        nn.init.normal_(self.density.weight, 0, 0.01)
        nn.init.zeros_(self.density.bias)

    def density_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.density(self.features(x))

    def forward(self, x: torch.Tensor, maps: bool = False) -> torch.Tensor:
        d = self.density_map(x)
        return d if maps else d.sum(dim=(1, 2, 3))
