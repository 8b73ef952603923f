"""Ranking models: score one candidate item for a user history, trained with BCE on click labels.

- `EncoderRanker`: any sequence encoder of the zoo gives the user state at the last history item
  (with the candidate's time as query time), and a scoring network combines it with the candidate's
  embedding: `dot` (u . e), `mlp` (MLP on [u, e]) or `cross` (MLP on [u, e, u * e]).
- `DIN` (Zhou et al., KDD 2018): target attention over the history. Each history item h_j gets a
  weight a_j = MLP([h_j, e, h_j - e, h_j * e]) (no softmax, as in the paper, so the pooled vector
  keeps the intensity of the interest), interest = sum_j a_j h_j over real (non-padding) items, and
  the logit is MLP([interest, e, interest * e]). The candidate never attends to padding.
Inputs follow the retrieval models: items (B, n) right-padded with 0, timestamps (B, n).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from scalelab.models.base import RetrievalModel


def mlp(dims: list[int], out: int = 1, dropout: float = 0.0) -> nn.Sequential:
    """Linear + PReLU (+ dropout) stack ending in a linear layer of `out` units."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(dims):
        layers += [
            nn.Linear(a, b),
            nn.PReLU(),
        ]  # one slope per layer (PReLU(b) would treat dim 1 as channels)
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(dims[-1], out))
    return nn.Sequential(*layers)


class EncoderRanker(nn.Module):
    """A zoo encoder followed by a scoring network."""

    def __init__(
        self, encoder: RetrievalModel, scorer: str = "dot", hidden: tuple[int, ...] = (200, 80)
    ) -> None:
        super().__init__()
        if scorer not in ("dot", "mlp", "cross"):
            raise ValueError(f"unknown scorer {scorer!r} (dot, mlp, cross)")
        self.encoder, self.scorer = encoder, scorer
        d = encoder.spec.width
        self.head = None if scorer == "dot" else mlp([d * (2 if scorer == "mlp" else 3), *hidden])
        self.scale = nn.Parameter(torch.tensor(5.0)) if scorer == "dot" else None  # cosine -> logit

    def forward(
        self, items: torch.Tensor, timestamps: torch.Tensor, candidate: torch.Tensor, query_time: torch.Tensor
    ) -> torch.Tensor:
        """Logit of each (history, candidate) pair, (B,)."""
        u = self.encoder.last_state(items, timestamps, query_time)  # (B, D), L2-normalised
        e = self.encoder.item_embeddings(candidate)  # (B, D), L2-normalised
        if self.scorer == "dot":
            return self.scale * (u * e).sum(-1)
        x = torch.cat([u, e] if self.scorer == "mlp" else [u, e, u * e], dim=-1)
        return self.head(x).squeeze(-1)


class DIN(nn.Module):
    """Deep Interest Network: target attention over the history, then an MLP."""

    def __init__(
        self, num_items: int, width: int, attention_hidden: tuple[int, ...] = (80, 40),
        hidden: tuple[int, ...] = (200, 80), dropout: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.item_emb = nn.Embedding(num_items + 1, width, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.attention = mlp([4 * width, *attention_hidden])
        self.head = mlp([3 * width, *hidden], dropout=dropout)

    def attention_weights(self, items: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        """a_j for every history position, (B, n); exactly 0 at padding."""
        h = self.item_emb(items)  # (B, n, D)
        e = self.item_emb(candidate)[:, None, :].expand_as(h)  # (B, n, D)
        a = self.attention(torch.cat([h, e, h - e, h * e], dim=-1)).squeeze(-1)  # (B, n)
        return a * (items != 0)

    def forward(
        self,
        items: torch.Tensor,
        timestamps: torch.Tensor | None,
        candidate: torch.Tensor,
        query_time: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logit of each (history, candidate) pair, (B,). DIN uses no timestamps."""
        a = self.attention_weights(items, candidate)  # (B, n)
        interest = (a[..., None] * self.item_emb(items)).sum(1)  # (B, D)
        e = self.item_emb(candidate)
        return self.head(torch.cat([interest, e, interest * e], dim=-1)).squeeze(-1)
