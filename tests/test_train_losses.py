import itertools

import pytest
import torch
import torch.nn.functional as F

from train.losses import (
    DCRLoss, allpairs_rank_loss, batch_regularizer, disjoint_rank_loss, grad_reverse, order_from_groups,
)
from train.models.small import SmallCNN


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    # three groups of different lengths, interleaved, as a batch sampler may deliver them
    group = torch.tensor([0, 1, 0, 2, 1, 0, 2, 1, 0, 2])
    rank = torch.tensor([0, 0, 1, 0, 1, 2, 1, 2, 3, 2])
    x = torch.randn(len(group), 3, 16, 16, generator=g)
    return x, group, rank


def test_order_from_groups():
    group = torch.tensor([0, 0, 1, 0])
    rank = torch.tensor([1, 0, 0, 2])
    l = order_from_groups(group, rank)
    assert l.tolist() == [[0, -1, 0, 1], [1, 0, 0, 1], [0, 0, 0, 0], [-1, -1, 0, 0]]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_allpairs_gradient_equals_naive_siamese(reduction):
    """One forward per image + Eq. 8-14 gives the same gradient as a two-branch Siamese network."""
    torch.manual_seed(0)
    model = SmallCNN(width=4).double()
    x, group, rank = _batch()
    x = x.double()
    margin = 0.05

    model.zero_grad()
    allpairs_rank_loss(model(x), order_from_groups(group, rank), margin, reduction).backward()
    fast = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    pairs = [(i, j) for i, j in itertools.combinations(range(len(x)), 2) if group[i] == group[j]]
    total = 0
    for i, j in pairs:
        better, worse = (i, j) if rank[i] < rank[j] else (j, i)
        # two branches with shared weights: each image of the pair has its own forward pass
        y_better = model(x[better : better + 1])[0]
        y_worse = model(x[worse : worse + 1])[0]
        total = total + F.relu(y_worse - y_better + margin)
    (total / (len(pairs) if reduction == "mean" else 1)).backward()
    naive = [p.grad for p in model.parameters()]
    for a, b in zip(fast, naive):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert any(a.abs().sum() > 0 for a in fast)


def test_allpairs_ignores_incomparable_and_satisfied_pairs():
    y = torch.tensor([3.0, 2.0, 100.0, -100.0])
    group = torch.tensor([0, 0, 1, 2])
    rank = torch.tensor([0, 1, 0, 0])
    assert allpairs_rank_loss(y, order_from_groups(group, rank), 0.5).item() == 0.0
    y = torch.tensor([2.0, 3.0, 0.0, 0.0])
    assert allpairs_rank_loss(y, order_from_groups(group, rank), 0.5).item() == pytest.approx(1.5)


def test_disjoint_rank_uses_same_annotator_pairs_only():
    y = torch.tensor([0.0, 1.0, 0.0, 1.0])
    score = torch.tensor([1.0, 0.0, 0.0, 1.0])
    ann = torch.tensor([0, 0, 1, 1])
    # annotator 0's pair is contradicted by 1.0 in both ordered terms; annotator 1 agrees;
    # cross-annotator pairs such as (0, 3) are masked out
    assert disjoint_rank_loss(y, score, ann, 0.0).item() == pytest.approx(2.0 / 4)
    naive = sum(max(0.0, 0.0 - (1 if score[i] >= score[j] else -1) * (y[i] - y[j]).item())
                for i in range(4) for j in range(4) if i != j) / 4
    assert disjoint_rank_loss(y, score, None, 0.0).item() == pytest.approx(naive)


def test_batch_regularizer_zero_for_standardised_batch():
    y = torch.tensor([-1.0, 1.0, -1.0, 1.0])
    y = y / torch.sqrt((y**2).sum() / 3)
    assert batch_regularizer(y).item() == pytest.approx(0.0, abs=1e-12)
    assert batch_regularizer(torch.ones(4)).item() == pytest.approx(1 + (4 / 3 - 1) ** 2)


def test_grl_gives_eq5_and_eq6_gradients():
    """psi descends the annotator cross-entropy (Eq. 5), theta ascends it scaled by l3 (Eq. 6)."""
    torch.manual_seed(0)
    z = torch.randn(6, 5, requires_grad=True)
    ann = torch.tensor([0, 1, 2, 0, 1, 2])
    h = torch.nn.Linear(5, 3)
    l2, l3 = 0.2, 0.3
    (l2 * F.cross_entropy(h(grad_reverse(z, l3 / l2)), ann)).backward()
    gz, gw = z.grad.clone(), h.weight.grad.clone()
    z.grad = None
    h.zero_grad()
    F.cross_entropy(h(z), ann).backward()
    torch.testing.assert_close(gw, l2 * h.weight.grad)
    torch.testing.assert_close(gz, -l3 * z.grad)


def test_dcr_switches():
    torch.manual_seed(0)
    y, z = torch.randn(8, requires_grad=True), torch.randn(8, 4, requires_grad=True)
    score, ann = torch.rand(8), torch.tensor([0, 1] * 4)
    full, parts = DCRLoss(4, 2)(y, z, score, ann)
    assert set(parts) == {"d_rank", "batch_reg", "l_psi", "l_theta"}
    minus, parts = DCRLoss(4, 2, grl=False)(y, z, score, ann)
    assert set(parts) == {"d_rank", "batch_reg"}
    plain, parts = DCRLoss(4, 2, grl=False, disjoint=False)(y, z, score, ann)
    assert "rank" in parts
    full.backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_dcr_total_is_eq7_value_with_unchanged_gradients():
    torch.manual_seed(1)
    y, z = torch.randn(8, requires_grad=True), torch.randn(8, 4, requires_grad=True)
    score, ann = torch.rand(8), torch.tensor([0, 1] * 4)
    loss = DCRLoss(4, 2, lambda1=0.2, lambda2=0.3, lambda3=0.5, gamma=0.1)
    total, parts = loss(y, z, score, ann)
    eq7 = parts["d_rank"] + 0.2 * parts["batch_reg"] + 0.3 * parts["l_psi"] + 0.5 * parts["l_theta"]
    assert total.item() == pytest.approx(eq7, rel=1e-6)
    total.backward()
    gz = z.grad.clone()
    z.grad = None
    ce = F.cross_entropy(loss.h_psi(z), ann)
    (disjoint_rank_loss(y, score, ann, 0.1) + 0.2 * batch_regularizer(y) - 0.5 * ce).backward()
    torch.testing.assert_close(gz, z.grad)


def test_dcr_refuses_lambda2_zero_with_adversary():
    from train.config import load_config
    from train.errors import TrainError

    with pytest.raises(TrainError, match=r"loss.lambda2=0 with loss.lambda3=0.2: .*loss.grl=false"):
        load_config("dcr_tid2013_4ann", ["loss.lambda2=0"])
    load_config("dcr_tid2013_4ann", ["loss.lambda2=0", "loss.lambda3=0"])
    assert load_config("dcr_tid2013_4ann")["loss"]["gamma"] > 0


def test_dcr_loss_has_the_trainers_default_margin():
    from train.config import DEFAULTS

    assert DCRLoss(4, 2).gamma == DEFAULTS["loss"]["gamma"] > 0


def test_collapse_is_detected():
    import numpy as np

    from train.metrics import collapsed

    assert collapsed(np.full(20, 0.4) + np.linspace(0, 1e-4, 20))
    assert not collapsed(np.linspace(0, 1, 20)) and not collapsed(np.full(20, np.nan))
