"""Losses of both papers, written on model outputs so that each image is forwarded once.

Sign convention everywhere: a higher score means better quality (or more people). `order[i, j]`
is +1 when item i should score at least as high as item j, -1 for the reverse, 0 when the two are
not comparable (Eq. 14 of the ranking paper, with the row order of `tables/groups`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def order_from_groups(group: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
    """l_ij from per-item (group, rank); rank 0 is the best of its group."""
    same = group[:, None] == group[None, :]
    return torch.where(same, torch.sign(rank[None, :] - rank[:, None]), torch.zeros_like(same, dtype=rank.dtype)).to(torch.int8)


def order_from_scores(score: torch.Tensor) -> torch.Tensor:
    """C_ij of the DCR paper (Eq. 1): +1 where annotated y_i >= y_j, else -1."""
    return torch.where(score[:, None] >= score[None, :], 1, -1).to(torch.int8)


def allpairs_rank_loss(y: torch.Tensor, order: torch.Tensor, margin: float, reduction: str = "mean") -> torch.Tensor:
    """Ranking hinge over every comparable pair of the batch (Eqs. 8-14), O(M^2) on outputs only.

    Each unordered pair is counted once (j > i in Eq. 8). "mean" divides by the number of
    comparable pairs so the step size does not depend on how many groups fill the batch.
    """
    upper = torch.triu(torch.ones_like(order, dtype=torch.bool), diagonal=1)
    l = order.to(y.dtype)
    # max(0, y_worse - y_better + eps) == max(0, eps - l_ij (y_i - y_j))
    hinge = F.relu(margin - l * (y[:, None] - y[None, :]))
    mask = upper & (order != 0)
    total = (hinge * mask).sum()
    if reduction == "sum":
        return total
    return total / mask.sum().clamp(min=1)


def disjoint_rank_loss(y: torch.Tensor, score: torch.Tensor, annotator: torch.Tensor | None, gamma: float) -> torch.Tensor:
    """L_d-rank (Eqs. 2-3); with annotator=None, M_ij = 1 and it is the plain L_rank of Eq. 1.

    The sum runs over ordered pairs i != j and is divided by the batch size N, as written.
    """
    n = y.shape[0]
    c = order_from_scores(score).to(y.dtype)
    hinge = F.relu(gamma - c * (y[:, None] - y[None, :]))
    mask = ~torch.eye(n, dtype=torch.bool, device=y.device)
    if annotator is not None:
        mask = mask & (annotator[:, None] == annotator[None, :])
    return (hinge * mask).sum() / n


def batch_regularizer(y: torch.Tensor) -> torch.Tensor:
    """Eq. 4: pull the batch of predictions towards zero mean and unit second moment."""
    n = y.shape[0]
    return y.mean() ** 2 + ((y**2).sum() / max(n - 1, 1) - 1) ** 2


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    return _GradReverse.apply(x, scale)


class DCRLoss(nn.Module):
    """Eq. 7: L_d-rank + l1 L_reg + l2 L_psi + l3 L_theta, with the annotator classifier h_psi.

    Eqs. 5-6 train h_psi to recognise the annotator from the embedding while the embedding is
    trained to defeat it. One gradient reversal layer gives exactly those two gradients from one
    cross-entropy: psi receives l2 * dCE/dpsi, theta receives -l3 * dCE/dtheta (L_theta = -CE).
    gamma defaults to the recipes' 0.1, not the paper's 0, which collapsed every small-CNN run of
    issue #15 (docs/training.md).
    """

    def __init__(self, embed_dim: int, n_annotators: int, *, lambda1=0.2, lambda2=0.2, lambda3=0.2,
                 gamma=0.1, disjoint=True, grl=True):
        super().__init__()
        self.lambda1, self.lambda2, self.lambda3, self.gamma = lambda1, lambda2, lambda3, gamma
        self.disjoint, self.grl = disjoint, grl
        self.h_psi = nn.Linear(embed_dim, n_annotators) if grl and n_annotators > 1 else None

    def forward(self, y, embedding, score, annotator) -> tuple[torch.Tensor, dict[str, float]]:
        rank = disjoint_rank_loss(y, score, annotator if self.disjoint else None, self.gamma)
        reg = batch_regularizer(y)
        total = rank + self.lambda1 * reg
        parts = {"d_rank" if self.disjoint else "rank": rank.item(), "batch_reg": reg.item()}
        if self.h_psi is not None and (self.lambda2 > 0 or self.lambda3 > 0):
            if self.lambda2 == 0:
                raise ValueError("lambda2=0 with lambda3>0: h_psi never learns (train.config refuses this)")
            logits = self.h_psi(grad_reverse(embedding, self.lambda3 / self.lambda2))
            ce = F.cross_entropy(logits.float(), annotator)
            # The reversed gradient carries l3 L_theta; the detached term makes the value Eq. 7's
            # too (l2 L_psi + l3 L_theta with L_theta = -CE) without touching any gradient.
            total = total + self.lambda2 * ce - self.lambda3 * ce.detach()
            parts.update(l_psi=ce.item(), l_theta=-ce.item())
        return total, parts


def counting_loss(density: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 17: squared error between density maps, summed per image, averaged over the batch."""
    return ((density - target) ** 2).flatten(1).sum(1).mean()
