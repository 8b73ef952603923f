from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from scalelab.training.losses import bce_one_negative, full_softmax, sampled_softmax
from scalelab.training.metrics import (
    distinct_items,
    metrics_from_ranks,
    ranks_from_scores,
    ranks_without_history,
)


def test_ranks_hand_computed_with_ties_and_exclusions() -> None:
    scores = torch.tensor(
        [
            [0.9, 0.5, 0.7, 0.1],  # target col 2: one item above -> rank 2
            [0.3, 0.3, 0.3, 0.3],  # all tied: ties count against the target -> rank 4
            [0.2, 0.8, 0.6, 0.9],  # target col 2, cols 1 and 3 excluded -> rank 1
            [0.2, 0.8, 0.6, 0.9],  # target col 1 is in the history -> miss
        ]
    )
    targets = torch.tensor([2, 0, 2, 1])
    exclude = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 1], [0, 1, 0, 0]], dtype=torch.bool)
    ranks = ranks_from_scores(scores, targets, exclude)
    assert ranks.tolist() == [2, 4, 1, math.inf]


def test_ranks_without_history_equal_the_masked_ranks() -> None:
    """Excluding the history by counting (no mask) gives the masked ranks exactly: repeated history
    items, padding, targets inside the history and heavy ties (scores on a coarse grid)."""
    g = torch.Generator().manual_seed(0)
    b, m, t = 200, 30, 12
    scores = torch.randint(0, 5, (b, m), generator=g).float()  # many ties
    items = torch.randint(0, m + 1, (b, t), generator=g)  # 0 pads; repeats are common
    items[:, :3] = 0
    targets = torch.randint(0, m, (b,), generator=g)
    seen = torch.zeros(b, m + 1, dtype=torch.bool)
    seen.scatter_(1, items, True)
    expect = ranks_from_scores(scores, targets, seen[:, 1:])
    history = distinct_items(items)
    for row, hist in zip(items.tolist(), history.tolist(), strict=True):  # distinct ids first, then 0
        n = len(set(row) - {0})
        assert set(hist[:n]) == set(row) - {0} and not any(hist[n:])
    got = ranks_without_history(scores, targets, history)
    assert torch.isinf(expect).any() and (~torch.isinf(expect)).any()
    assert torch.equal(got, expect)


def test_metrics_hand_computed_including_k_beyond_catalogue() -> None:
    ranks = torch.tensor([1.0, 3.0, 11.0, math.inf])
    m = metrics_from_ranks(ranks, [1, 10, 1000])
    assert m["hr@1"] == pytest.approx(0.25)
    assert m["hr@10"] == pytest.approx(0.5)
    assert m["ndcg@10"] == pytest.approx((1 / math.log2(2) + 1 / math.log2(4)) / 4)
    # K larger than the catalogue: every rankable target is a hit, the excluded one still a miss
    assert m["hr@1000"] == pytest.approx(0.75)
    assert m["ndcg@1000"] == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(12)) / 4)
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 11 + 0) / 4)


def brute_sampled_softmax(users, targets, table, neg, temperature):
    """Loop over positions: -log softmax of the target among itself and its non-colliding negatives."""
    total = 0.0
    for p in range(len(targets)):
        u = users[p] / users[p].norm()
        logits = [float(u @ (table[targets[p]] / table[targets[p]].norm())) / temperature]
        for j in neg[p].tolist():
            if j != int(targets[p]):
                logits.append(float(u @ (table[j] / table[j].norm())) / temperature)
        m = max(logits)
        total += -(logits[0] - m - math.log(sum(math.exp(v - m) for v in logits)))
    return total / len(targets)


@pytest.mark.parametrize("rows", [21, 300])  # 21 <= 30 x 8: scores from one matmul; 300: gathered
def test_sampled_softmax_against_brute_force(rows: int) -> None:
    torch.manual_seed(0)
    users, table = torch.randn(40, 8), torch.randn(rows, 8)
    targets = torch.randint(1, rows, (40,))
    gen = torch.Generator().manual_seed(5)
    got = sampled_softmax(users, targets, table, num_negatives=30, temperature=0.1, generator=gen)
    neg = torch.randint(1, rows, (40, 30), generator=torch.Generator().manual_seed(5))  # same draws
    assert (neg == targets[:, None]).any()  # the test exercises accidental hits
    assert float(got) == pytest.approx(brute_sampled_softmax(users, targets, table, neg, 0.1), rel=1e-5)


def test_sequence_negatives_against_brute_force() -> None:
    """Negatives drawn once per group: each position is scored against its group's draw."""
    torch.manual_seed(0)
    users, table = torch.randn(40, 8), torch.randn(21, 8)
    targets = torch.randint(1, 21, (40,))
    groups = torch.randint(0, 6, (40,))
    groups[0] = 5  # group ids need not be sorted; every id 0..5 is used
    got = sampled_softmax(users, targets, table, 30, 0.1, torch.Generator().manual_seed(5), groups=groups)
    draw = torch.randint(1, 21, (int(groups.max()) + 1, 30), generator=torch.Generator().manual_seed(5))
    neg = draw[groups]
    assert (neg == targets[:, None]).any()
    assert float(got) == pytest.approx(brute_sampled_softmax(users, targets, table, neg, 0.1), rel=1e-5)


def test_sequence_negatives_have_the_expected_loss_of_per_position_negatives() -> None:
    """Sharing a draw within a sequence changes the correlation between positions, not what each
    position sees: averaged over many draws both estimators give the same loss."""
    torch.manual_seed(1)
    users, table = torch.randn(60, 8), torch.randn(31, 8)
    targets = torch.randint(1, 31, (60,))
    groups = torch.arange(60) // 10
    gen = torch.Generator().manual_seed(0)
    per_pos = torch.stack([sampled_softmax(users, targets, table, 8, 0.5, gen) for _ in range(1500)])
    per_seq = torch.stack(
        [sampled_softmax(users, targets, table, 8, 0.5, gen, groups=groups) for _ in range(1500)]
    )
    err = 4 * (per_pos.std() ** 2 / 1500 + per_seq.std() ** 2 / 1500) ** 0.5
    assert abs(float(per_pos.mean() - per_seq.mean())) < float(err)
    assert per_seq.std() > per_pos.std()  # shared draws: a noisier estimate per step


def test_full_softmax_and_bce() -> None:
    torch.manual_seed(0)
    users, table = torch.randn(10, 4), torch.randn(7, 4)
    targets = torch.randint(1, 7, (10,))
    logits = F.normalize(users, dim=-1) @ F.normalize(table[1:], dim=-1).T / 0.5
    assert float(full_softmax(users, targets, table, 0.5)) == pytest.approx(
        float(F.cross_entropy(logits, targets - 1))
    )
    gen = torch.Generator().manual_seed(1)
    loss = bce_one_negative(users, targets, table, gen)
    neg = torch.randint(1, 6, (10,), generator=torch.Generator().manual_seed(1))
    neg = neg + (neg >= targets).long()
    assert (neg != targets).all()
    pos_l = -F.logsigmoid((users * table[targets]).sum(-1)).mean()
    neg_l = -F.logsigmoid(-(users * table[neg]).sum(-1)).mean()
    assert float(loss) == pytest.approx(float(pos_l + neg_l), rel=1e-6)
