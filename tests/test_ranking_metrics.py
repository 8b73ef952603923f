"""Ranking metrics against brute-force pairwise definitions and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalelab.training.ranking_metrics import auc, gauc, logloss, ranking_metrics


def pairwise_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_hand_computed() -> None:
    # positives 0.9, 0.4; negatives 0.4, 0.1: pairs (0.9>0.4) (0.9>0.1) (0.4=0.4 -> 1/2) (0.4>0.1)
    assert auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.4, 0.1])) == pytest.approx(3.5 / 4)
    assert math.isnan(auc(np.array([1, 1]), np.array([0.2, 0.3])))
    assert logloss(np.array([1, 0]), np.array([0.8, 0.25])) == pytest.approx(
        -(math.log(0.8) + math.log(0.75)) / 2
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1), st.integers(-3, 3)), min_size=2, max_size=60))
def test_auc_and_gauc_equal_brute_force(rows: list[tuple[int, int, int]]) -> None:
    u, y, s = (np.array(c) for c in zip(*rows, strict=True))
    s = s / 2.0  # small integer grid: many ties
    if 0 < y.sum() < len(y):
        assert auc(y, s) == pytest.approx(pairwise_auc(y, s))
    total = weight = 0.0
    for user in np.unique(u):
        m = u == user
        if 0 < y[m].sum() < m.sum():
            total += pairwise_auc(y[m], s[m]) * m.sum()
            weight += m.sum()
    expected = total / weight if weight else float("nan")
    got = gauc(u, y, s)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_metrics_of_logits() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    logits = rng.normal(size=500) + 1.5 * y  # informative scores
    m = ranking_metrics(rng.integers(0, 20, 500), y, logits)
    assert 0.8 < m["auc"] < 0.9 and 0.7 < m["gauc"] < 0.95 and 0 < m["logloss"] < math.log(2) + 0.2
