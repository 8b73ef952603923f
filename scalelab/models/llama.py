"""Llama-style decoder: pre-RMSNorm, RoPE, softmax attention, SwiGLU, no biases, final RMSNorm.

  x = x + Attn(RMS(x)) with RoPE on q and k;  x = x + SwiGLU(RMS(x)) (hidden ~ 8D/3);  RMS(x).
No absolute position table: order comes from RoPE only. Init normal(0, 0.02), residual output
projections scaled by 1/sqrt(2 L).
"""

from __future__ import annotations

import torch
from torch import nn

from scalelab.models.base import Context, Encoder, RetrievalModel
from scalelab.models.blocks import Dropout, MultiHeadSelfAttention, RotaryEmbedding, SwiGLU, init_gpt_style
from scalelab.models.spec import ModelSpec


class LlamaBlock(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.attn_norm = nn.RMSNorm(spec.width, eps=1e-6)
        self.attn = MultiHeadSelfAttention(spec.width, spec.heads, spec.head_dim, spec.dropout, bias=False)
        self.ffn_norm = nn.RMSNorm(spec.width, eps=1e-6)
        self.ffn = SwiGLU(spec.width, spec.ffn_hidden)
        self.dropout = Dropout(spec.dropout)

    def forward(self, x: torch.Tensor, ctx: Context, rope: RotaryEmbedding) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.attn_norm(x), rope=rope))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class Llama(Encoder):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.rope = RotaryEmbedding(spec.head_dim, spec.max_len)
        self.blocks = nn.ModuleList(LlamaBlock(spec) for _ in range(spec.depth))
        self.norm = nn.RMSNorm(spec.width, eps=1e-6)
        init_gpt_style(self.blocks, spec.depth, ("attn.o.weight", "ffn.w2.weight"))

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, ctx, self.rope)
        return self.norm(x)


def build(spec: ModelSpec, num_items: int) -> RetrievalModel:
    return RetrievalModel(spec, num_items, Llama(spec))
