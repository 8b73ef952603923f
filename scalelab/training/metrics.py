"""Ranking metrics from 1-based ranks (rank = inf for a target that cannot be ranked)."""

from __future__ import annotations

import math

import torch


def ranks_from_scores(
    scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None
) -> torch.Tensor:
    """1-based rank of each target among the columns of `scores` (B, M); `targets` are column indices.

    Ties count against the target (rank = 1 + number of other items scoring >= the target), so a
    constant model ranks last, not first. Columns set in `exclude` (B, M bool) are removed from the
    ranking; an excluded target gets rank inf (a miss), as in Meta's history filtering.
    """
    scores = scores.float()
    if exclude is not None:
        scores = scores.masked_fill(exclude, float("-inf"))
    rows = torch.arange(scores.shape[0], device=scores.device)
    target_score = scores[rows, targets]
    ahead = (scores >= target_score[:, None]).sum(1) - 1  # others scoring at least as high
    ranks = (ahead + 1).double()
    if exclude is not None:
        ranks = torch.where(exclude[rows, targets], torch.full_like(ranks, math.inf), ranks)
    return ranks


def distinct_items(items: torch.Tensor) -> torch.Tensor:
    """Each row's distinct item ids (B, T; 0 pads) first, then zeros: the history filter's input,
    built once per evaluation set (a row sort costs more than the ranking it saves)."""
    ids = items.sort(1, descending=True).values
    repeat = torch.zeros_like(ids, dtype=torch.bool)
    repeat[:, 1:] = ids[:, 1:] == ids[:, :-1]
    return ids.masked_fill(repeat, 0).sort(1, descending=True).values


def ranks_without_history(scores: torch.Tensor, targets: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """`ranks_from_scores` with each row's history excluded, without a (B, M) mask. `history` holds
    distinct item ids (B, H; id i is column i - 1; 0 = none), as `distinct_items` gives. A target in
    its history gets rank inf."""
    scores = scores.float()
    rows = torch.arange(scores.shape[0], device=scores.device)
    ranks = at_least_outside_history(scores, scores[rows, targets][:, None], history).double()
    return miss_if_in_history(ranks, history, targets + 1)


def miss_if_in_history(ranks: torch.Tensor, history: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
    """`ranks` with rank inf (a miss) where the target item id is among the row's history ids."""
    in_history = (history == target_ids[:, None]).any(1)
    return torch.where(in_history, torch.full_like(ranks, math.inf), ranks)


def at_least_outside_history(
    scores: torch.Tensor, threshold: torch.Tensor, history: torch.Tensor, offset: int = 0
) -> torch.Tensor:
    """Per row, the columns of `scores` (B, C; column j is item offset + j + 1) scoring at least
    `threshold` (B, 1), less the row's distinct `history` items among them: all items counted, then
    the history's scores gathered from the same matrix and subtracted, so the count equals masking
    the history out first."""
    col = history - 1 - offset
    here = (history > 0) & (col >= 0) & (col < scores.shape[1])
    above = scores.gather(1, col.clamp(0, scores.shape[1] - 1)) >= threshold
    return (scores >= threshold).sum(1) - (above & here).sum(1)


def metrics_from_ranks(ranks: torch.Tensor, ks: list[int]) -> dict[str, float]:
    """Mean HR@K, NDCG@K for every K, and MRR, over users."""
    ranks = ranks.double()
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks <= k
        out[f"hr@{k}"] = float(hit.double().mean())
        out[f"ndcg@{k}"] = float(
            torch.where(hit, 1.0 / torch.log2(ranks + 1), torch.zeros_like(ranks)).mean()
        )
    out["mrr"] = float((1.0 / ranks).mean())  # 1/inf = 0 for misses
    return out
