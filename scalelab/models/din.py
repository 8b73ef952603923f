"""DIN (Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018).

The traditional ranking baseline: target attention over the history, then an MLP.
  a_j      = MLP_att([h_j, e, h_j - e, h_j * e])   per history item j; no softmax (as in the paper,
                                                   so the pooled vector keeps the interest's intensity)
  interest = sum_j a_j h_j                         over real (non-padding) history items only
  logit    = MLP([interest, e, interest * e])
MLP_att has hidden sizes (80, 40), the head (200, 80, 80, ...) with `depth` hidden layers, PReLU
activations. DIN ignores timestamps and has no sequence encoder: its `depth` is that of the head.

The first attention layer is linear in [h, e, h - e, h * e], so it is evaluated as
h (W1 + W3) + e (W2 - W3) + (h * e) W4: the h part once per history row, not once per candidate.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from scalelab.models.ranking import mlp
from scalelab.models.side import SideInputs
from scalelab.models.sizes import DIN_ATTENTION_HIDDEN, din_head
from scalelab.models.spec import ModelSpec


class DIN(nn.Module):
    def __init__(
        self, num_items: int, width: int, attention_hidden: tuple[int, ...] = DIN_ATTENTION_HIDDEN,
        hidden: tuple[int, ...] = (200, 80), dropout: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.num_items, self.width = num_items, width
        self.item_emb = nn.Embedding(num_items + 1, width, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.attention = mlp([4 * width, *attention_hidden])
        self.head = mlp([3 * width, *hidden], dropout=dropout)
        self.side: SideInputs | None = None

    def _items(self, ids: torch.Tensor, behaviours: torch.Tensor | None = None) -> torch.Tensor:
        return self.item_emb(ids) if self.side is None else self.side.embed(self.item_emb, ids, behaviours)

    def _attend(
        self, h: torch.Tensor, e: torch.Tensor, row: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Interest vectors (E, D) from history rows h (B, n, D), candidates e (E, D) of rows `row`,
        and the history mask (E, n)."""
        first = cast(nn.Linear, self.attention[0])
        w1, w2, w3, w4 = first.weight.split(self.width, dim=1)  # each (hidden, D)
        z = (h @ (w1 + w3).T)[row] + (e @ (w2 - w3).T + first.bias)[:, None] + (h[row] * e[:, None]) @ w4.T
        a = self.attention[1:](z).squeeze(-1) * mask  # (E, n), exactly 0 outside the history
        return torch.einsum("en,end->ed", a, h[row])

    def attention_weights(self, items: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        """a_j for every history position, (B, n); exactly 0 at padding."""
        h, e = self._items(items), self._items(candidate)
        z = self.attention(torch.cat([h, e[:, None].expand_as(h), h - e[:, None], h * e[:, None]], dim=-1))
        return z.squeeze(-1) * (items != 0)

    def _logit(self, interest: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([interest, e, interest * e], dim=-1)).squeeze(-1)

    def score_pairs(
        self,
        items: torch.Tensor,
        timestamps: torch.Tensor | None,
        candidate: torch.Tensor,
        query_time: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logit of each (history, candidate) pair, (B,). DIN uses no timestamps."""
        h, e = self._items(items), self._items(candidate)
        rows = torch.arange(len(items), device=items.device)
        return self._logit(self._attend(h, e, rows, (items != 0).float()), e)

    def forward(
        self,
        items: torch.Tensor,
        timestamps: torch.Tensor | None,
        behaviours: torch.Tensor | None,
        query_time: torch.Tensor | None,
        row: torch.Tensor,
        col: torch.Tensor,
        cand: torch.Tensor,
    ) -> torch.Tensor:
        """Logits (E,) of examples whose history is items[row, :col + 1] (see EncoderRanker.forward)."""
        h, e = self._items(items, behaviours), self._items(cand)
        n = items.shape[1]
        mask = (torch.arange(n, device=items.device)[None] <= col[:, None]) & (items[row] != 0)
        return self._logit(self._attend(h, e, row, mask.float()), e)


def build(spec: ModelSpec, num_items: int) -> DIN:
    return DIN(num_items, spec.width, hidden=din_head(spec.depth), dropout=spec.dropout)
