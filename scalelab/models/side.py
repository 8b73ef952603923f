"""Side inputs of the complex scenarios, added to item and event representations.

- domain: every item belongs to one domain; its domain embedding is added to the item's embedding
  (in the input sequence and as a candidate), so a joint model over several domains knows which
  domain each event and candidate comes from.
- item features: each item has a bag of feature tokens (genres, hashed title words); their mean
  embedding is added to the item's embedding.
- behaviour: each history event has a behaviour type (click, cart, buy, a rating level); its
  embedding is added to that event's input (a candidate's behaviour is what is predicted, so it has
  none).
All tables start like the item table (std 0.02) and use index 0 for "none" (a zero vector).
"""

from __future__ import annotations

import torch
from torch import nn


def _table(n: int, width: int) -> nn.Embedding:
    emb = nn.Embedding(n + 1, width, padding_idx=0)
    nn.init.normal_(emb.weight, std=0.02)
    with torch.no_grad():
        emb.weight[0].zero_()
    return emb


class SideInputs(nn.Module):
    item_domain: torch.Tensor  # buffers, when the inputs are used
    item_tokens: torch.Tensor
    token_weight: torch.Tensor

    def __init__(
        self,
        width: int,
        item_domain: torch.Tensor | None = None,  # (I+1,) int64, 1..num_domains, [0] = 0
        item_tokens: torch.Tensor | None = None,  # (I+1, F) int64 token ids 1..vocab, 0 = none
        vocab: int = 0,
        num_behaviours: int = 0,
    ) -> None:
        super().__init__()
        self.domain_emb = self.feature_emb = self.behaviour_emb = None
        if item_domain is not None:
            self.register_buffer("item_domain", item_domain.long(), persistent=False)
            self.domain_emb = _table(int(item_domain.max()), width)
        if item_tokens is not None:
            self.register_buffer("item_tokens", item_tokens.long(), persistent=False)
            counts = (item_tokens != 0).sum(1, keepdim=True).clamp(min=1).float()
            self.register_buffer("token_weight", 1.0 / counts, persistent=False)  # mean pooling
            self.feature_emb = _table(vocab, width)
        if num_behaviours:
            self.behaviour_emb = _table(num_behaviours, width)

    def item(self, ids: torch.Tensor) -> torch.Tensor | None:
        """(..., D) added to the embeddings of items `ids` (any shape), or None without item inputs."""
        out = None
        if self.domain_emb is not None:
            out = self.domain_emb(self.item_domain[ids])
        if self.feature_emb is not None:
            pooled = self.feature_emb(self.item_tokens[ids]).sum(-2) * self.token_weight[ids]
            out = pooled if out is None else out + pooled
        return out

    def event(self, behaviours: torch.Tensor | None) -> torch.Tensor | None:
        """(..., D) added to history events of these behaviour codes, or None."""
        if self.behaviour_emb is None or behaviours is None:
            return None
        return self.behaviour_emb(behaviours)

    def embed(
        self, table: nn.Embedding, ids: torch.Tensor, behaviours: torch.Tensor | None = None
    ) -> torch.Tensor:
        """table(ids) plus every side input that applies."""
        x = table(ids)
        for extra in (self.item(ids), self.event(behaviours)):
            if extra is not None:
                x = x + extra
        return x
