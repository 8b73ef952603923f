"""SASRec (Kang & McAuley 2018), as in Meta's research code.

One block, x (B, n, D):
  q = LN(x); a = MHA_softmax(query=q, key=x, value=x, causal)
  h = LN(q + a)                               the residual is around LN(x), not around x
  y = h + dropout(W2 relu(dropout(W1 h)))     point-wise FFN, hidden = D
  y = y * valid
No final LayerNorm (outputs are L2-normalised by the scorer).

`SASRecBlock` also carries the two SASRec+ switches (relative bias, pre-norm residual), so that
`sasrec_plus` differs from SASRec in exactly those two places.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scalelab.models.base import BlockStack, Context, RetrievalModel
from scalelab.models.blocks import Dropout, MultiHeadSelfAttention, RelativeBias
from scalelab.models.spec import ModelSpec


class PointWiseFFN(nn.Module):
    """W2 relu(dropout(W1 h)), then dropout (the residual is added by the block)."""

    def __init__(self, width: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.w1 = nn.Linear(width, hidden)
        self.w2 = nn.Linear(hidden, width)
        self.dropout = Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.w2(F.relu(self.dropout(self.w1(h)))))


class SASRecBlock(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.pre_norm = spec.residual == "pre"
        self.attn_norm = nn.LayerNorm(spec.width, eps=1e-8)
        self.attn = MultiHeadSelfAttention(spec.width, spec.heads, spec.head_dim, spec.dropout, bias=True)
        self.ffn_norm = nn.LayerNorm(spec.width, eps=1e-8)
        self.ffn = PointWiseFFN(spec.width, spec.ffn_hidden, spec.dropout)
        self.rab = (
            RelativeBias(spec.max_len, position=True, time=spec.rab == "position_time")
            if spec.rab != "none"
            else None
        )

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        bias = self.rab(x.shape[1], ctx.time_buckets) if self.rab is not None else None
        if self.pre_norm:  # x + f(LN(x)), as HSTU and Llama
            x = x + self.attn(self.attn_norm(x), bias=bias)
            x = x + self.ffn(self.ffn_norm(x))
        else:  # SASRec: residual around LN(x), key/value from the un-normalised x
            q = self.attn_norm(x)
            h = self.ffn_norm(q + self.attn(q, key_value=x, bias=bias))
            x = h + self.ffn(h)
        return x * ctx.valid[..., None]


class SASRecEncoder(BlockStack):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__([SASRecBlock(spec) for _ in range(spec.depth)])
        for name, p in self.blocks.named_parameters():  # Meta's SASRec: xavier-normal weights
            if p.dim() > 1 and "rab" not in name:
                nn.init.xavier_normal_(p)


def build(spec: ModelSpec, num_items: int) -> RetrievalModel:
    return RetrievalModel(spec, num_items, SASRecEncoder(spec))
