"""What every single-score model shares: a forward that can return the embedding with the score
(DCR's annotator classifier reads the embedding). Subclasses define `embed(x) -> z` and
`head(z) -> score`."""

from __future__ import annotations

import torch
from torch import nn


class Scorer(nn.Module):
    def forward(self, x: torch.Tensor, with_embedding: bool = False):
        z = self.embed(x)
        y = self.head(z)
        return (y, z) if with_embedding else y
