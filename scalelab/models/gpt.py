"""GPT-style decoder: pre-LN blocks, learned absolute positions, softmax attention, GELU MLP.

  x = x + Attn(LN(x));  x = x + W2 GELU(W1 LN(x)) (hidden 4D);  final LN.
Init as GPT-2: normal(0, 0.02), residual output projections scaled by 1/sqrt(2 L).
"""

from __future__ import annotations

import torch
from torch import nn

from scalelab.models.base import Context, Encoder, RetrievalModel
from scalelab.models.blocks import Dropout, MultiHeadSelfAttention, init_gpt_style
from scalelab.models.spec import ModelSpec


class GPTBlock(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(spec.width)
        self.attn = MultiHeadSelfAttention(spec.width, spec.heads, spec.head_dim, spec.dropout, bias=True)
        self.ln2 = nn.LayerNorm(spec.width)
        self.mlp = nn.Sequential(
            nn.Linear(spec.width, spec.ffn_hidden), nn.GELU(), nn.Linear(spec.ffn_hidden, spec.width)
        )
        self.dropout = Dropout(spec.dropout)

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.ln1(x)))
        return x + self.dropout(self.mlp(self.ln2(x)))


class GPT(Encoder):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(GPTBlock(spec) for _ in range(spec.depth))
        self.ln_f = nn.LayerNorm(spec.width)
        init_gpt_style(self.blocks, spec.depth, ("attn.o.weight", "mlp.2.weight"))

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, ctx)
        return self.ln_f(x)


def build(spec: ModelSpec, num_items: int) -> RetrievalModel:
    return RetrievalModel(spec, num_items, GPT(spec))
