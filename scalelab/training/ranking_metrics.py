"""Metrics of the ranking task (a label per (user, candidate) example): AUC, GAUC, LogLoss.

AUC is the Mann-Whitney statistic from mid-ranks, so a tie between a positive and a negative counts
one half, exactly as the pairwise definition does; O(n log n) instead of O(n_pos * n_neg). GAUC is
the impression-weighted mean of per-user AUCs over users that have both a positive and a negative
(the others carry no ranking information and are left out, as in the DIN paper). LogLoss is the
mean binary cross-entropy of predicted probabilities, clipped to [eps, 1 - eps].
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from scipy.stats import rankdata


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counted one half."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = rankdata(s)  # average ranks for ties
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def gauc(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    """Per-user AUC weighted by the user's number of examples (users with one class skipped)."""
    u = np.asarray(users)
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(u, kind="stable")
    u, y, s = u[order], y[order], s[order]
    bounds = np.flatnonzero(np.r_[True, u[1:] != u[:-1], True])
    total, weight = 0.0, 0
    for a, b in pairwise(bounds):
        pos = int(y[a:b].sum())
        if 0 < pos < b - a:
            total += auc(y[a:b], s[a:b]) * (b - a)
            weight += int(b - a)
    return total / weight if weight else float("nan")


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def ranking_metrics(users: np.ndarray, labels: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """AUC, GAUC and LogLoss of raw logits (probabilities by the sigmoid)."""
    probs = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
    return {
        "auc": auc(labels, logits),
        "gauc": gauc(users, labels, logits),
        "logloss": logloss(labels, probs),
    }
