"""HSTU (Zhai et al., "Actions Speak Louder than Words", ICML 2024), research-path block.

One block, x (B, n, D):
  h = LN(x)                                   no affine, eps 1e-6
  u, v, q, k = SiLU(h W_uvqk)                 one bias-free projection, split in that order
  A = SiLU(q k^T + rab) / N  (causal)         pointwise, no softmax, N = padded length
  y = x + W_o(dropout(u * LN(A v)))           no FFN
Ablations: rab none/position/position_time; attention softmax (softmax((qk^T + rab) / sqrt(d)));
gate off (y = x + W_o(dropout(LN(A v))), u is not computed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scalelab.models.base import BlockStack, Context, RetrievalModel
from scalelab.models.blocks import (
    Dropout,
    RelativeBias,
    layer_norm,
    merge_heads,
    softmax_attention,
    split_heads,
)
from scalelab.models.kernels import causal_silu_attention, silu_attention
from scalelab.models.spec import ModelSpec


class HSTUBlock(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        inner = spec.heads * spec.head_dim
        self.splits = ([inner] if spec.gate else []) + [inner, inner, inner]  # [u], v, q, k
        self.uvqk = nn.Parameter(torch.empty(spec.width, sum(self.splits)).normal_(0, 0.02))
        self.o = nn.Linear(inner, spec.width)
        nn.init.xavier_uniform_(self.o.weight)
        self.rab = (
            RelativeBias(spec.max_len, position=True, time=spec.rab == "position_time")
            if spec.rab != "none"
            else None
        )
        self.dropout = Dropout(spec.dropout)

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        # the projection is a fresh tensor: SiLU may overwrite it when no gradient is recorded
        parts = F.silu(layer_norm(x) @ self.uvqk, inplace=not torch.is_grad_enabled()).split(
            self.splits, dim=-1
        )
        u = parts[0] if self.spec.gate else None
        v, q, k = (split_heads(p, self.spec.heads) for p in parts[-3:])  # (B, H, n, d)
        divisor = float(self.spec.max_len)
        if self.spec.attention == "silu" and x.device.type == "cpu":
            # CPU: the causal triangle a row block at a time (bench/bench_attention.py); accelerators
            # keep one (n, n) pass (few large kernels, memory-lean backward)
            rab = self.rab
            rows = (
                (lambda r0, r1: rab.rows(r0, r1, ctx.time_bucket_rows(r0, r1))) if rab is not None else None
            )
            o = causal_silu_attention(q, k, v, rows, divisor)
        else:
            bias = self.rab(x.shape[1], ctx.time_buckets) if self.rab is not None else None
            if self.spec.attention == "silu":
                o = silu_attention(q, k, v, bias, divisor)
            else:
                o = softmax_attention(q, k, v, bias)
        o = layer_norm(merge_heads(o))
        return x + self.o(self.dropout(u * o if u is not None else o))

    def forward_last(self, x: torch.Tensor, ctx: Context, last: torch.Tensor) -> torch.Tensor:
        """Output at position last[b] only, (B, D): keys and values for every position, one query
        row per user (same math as `forward`, a fraction of the (n, n) work)."""
        b, n, _ = x.shape
        rows = torch.arange(b, device=x.device)
        h = layer_norm(x)
        # values and keys at every position, the gate and the query only at each user's last row
        inner = self.splits[-1]
        col = dict(zip("uvqk"[-len(self.splits) :], self.uvqk.split(self.splits, dim=-1), strict=True))
        vk = F.silu(h @ torch.cat([col["v"], col["k"]], dim=1), inplace=not torch.is_grad_enabled())
        v, k = vk.split([inner, inner], dim=-1)
        v, k = split_heads(v, self.spec.heads), split_heads(k, self.spec.heads)  # (B, H, n, d)
        hq = h[rows, last][:, None]  # (B, 1, D)
        q = split_heads(F.silu(hq @ col["q"]), self.spec.heads)  # (B, H, 1, d)
        u = F.silu(hq @ col["u"]) if self.spec.gate else None  # (B, 1, H*d)
        bias = self.rab.row_bias(last, n, ctx.last_row_buckets(last)) if self.rab is not None else None
        keep = (torch.arange(n, device=x.device)[None, :] <= last[:, None])[:, None, None, :]  # (B, 1, 1, n)
        o = silu_attention(q, k, v, bias, float(self.spec.max_len), keep)
        o = layer_norm(merge_heads(o))  # (B, 1, H*d)
        y = x[rows, last][:, None] + self.o(self.dropout(u * o if u is not None else o))
        return y[:, 0]


class HSTU(BlockStack):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__([HSTUBlock(spec) for _ in range(spec.depth)])
        self.spec = spec

    def forward_last(self, x: torch.Tensor, ctx: Context, last: torch.Tensor) -> torch.Tensor:
        if self.spec.attention != "silu":
            return super().forward_last(x, ctx, last)
        *first, final = self.blocks
        for block in first:
            x = block(x, ctx)
        assert isinstance(final, HSTUBlock)
        return final.forward_last(x, ctx, last)


def build(spec: ModelSpec, num_items: int) -> RetrievalModel:
    return RetrievalModel(spec, num_items, HSTU(spec))
