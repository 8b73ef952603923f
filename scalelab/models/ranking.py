"""Ranking models: score one candidate item for a user history, trained with BCE on click labels.

- `EncoderRanker`: any sequence encoder of the zoo gives the user state at the last history item
  (with the candidate's time as query time), and a scoring network combines it with the candidate's
  embedding: `dot` (u . e), `mlp` (MLP on [u, e]) or `cross` (MLP on [u, e, u * e]).
- `DIN` (scalelab/models/din.py): the traditional baseline, target attention over the history.
Inputs follow the retrieval models: items (B, n) right-padded with 0, timestamps (B, n).

`forward` scores many examples over shared user windows (`score_pairs` one pair per row): example k reads row
row[k] of the window up to column col[k] (its history) and scores candidate cand[k]. A causal
encoder gives every prefix's state in one pass, so a window of n items yields n - 1 positives and
their negatives for the cost of one forward pass.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from scalelab.models.base import RetrievalModel
from scalelab.models.blocks import Dropout
from scalelab.models.sizes import RANKING_HEAD_HIDDEN


def mlp(dims: list[int], out: int = 1, dropout: float = 0.0) -> nn.Sequential:
    """Linear + PReLU (+ dropout) stack ending in a linear layer of `out` units."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(dims):
        layers += [
            nn.Linear(a, b),
            nn.PReLU(),
        ]  # one slope per layer (PReLU(b) would treat dim 1 as channels)
        if dropout:
            layers.append(Dropout(dropout))
    layers.append(nn.Linear(dims[-1], out))
    return nn.Sequential(*layers)


class EncoderRanker(nn.Module):
    """A zoo encoder followed by a scoring network."""

    def __init__(
        self, encoder: RetrievalModel, scorer: str = "dot", hidden: tuple[int, ...] = RANKING_HEAD_HIDDEN
    ) -> None:
        super().__init__()
        if scorer not in ("dot", "mlp", "cross"):
            raise ValueError(f"unknown scorer {scorer!r} (dot, mlp, cross)")
        self.encoder, self.scorer = encoder, scorer
        d = encoder.spec.width
        self.head = None if scorer == "dot" else mlp([d * (2 if scorer == "mlp" else 3), *hidden])
        self.scale = nn.Parameter(torch.tensor(5.0)) if scorer == "dot" else None  # cosine -> logit

    def score_pairs(
        self, items: torch.Tensor, timestamps: torch.Tensor, candidate: torch.Tensor, query_time: torch.Tensor
    ) -> torch.Tensor:
        """Logit of each (history, candidate) pair, (B,)."""
        u = self.encoder.last_state(items, timestamps, query_time)  # (B, D), L2-normalised
        e = self.encoder.item_embeddings(candidate)  # (B, D), L2-normalised
        return self._head(u, e)

    def _head(self, u: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:  # the dot scorer
            return self.scale * (u * e).sum(-1)
        assert self.head is not None
        x = torch.cat([u, e] if self.scorer == "mlp" else [u, e, u * e], dim=-1)
        return self.head(x).squeeze(-1)

    def forward(
        self,
        items: torch.Tensor,  # (B, n) windows
        timestamps: torch.Tensor,  # (B, n)
        behaviours: torch.Tensor | None,  # (B, n) or None
        query_time: torch.Tensor | None,  # (B,) time after each row's last item, or None
        row: torch.Tensor,  # (E,) window of each example
        col: torch.Tensor,  # (E,) last history column of each example
        cand: torch.Tensor,  # (E,) candidate item
    ) -> torch.Tensor:
        """Logits (E,) of many (history prefix, candidate) examples over shared windows."""
        h = self.encoder(items, timestamps, query_time, behaviours=behaviours)  # (B, n, D)
        u = self.encoder.normalize(h[row, col])  # (E, D)
        return self._head(u, self.encoder.item_embeddings(cand))
