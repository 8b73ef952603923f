"""FuXi-alpha (Ye et al., arXiv 2502.03036): adaptive multi-channel self-attention + multi-stage FFN.

One block, x (B, n, D):
  h = RMS(x);  u, v, q, k = SiLU(h W)          u: C*H*d_v, v: H*d_v, q, k: H*d_qk; no bias
  channels (all causal, no softmax), each multiplied with v per head:
    semantic   A = SiLU(q k^T) / N
    positional A[i, j] = w_pos[(N-1) + j - i]              shared by heads, used raw
    temporal   A[i, j] = w_time[bucket(t_{i+1} - t_j)]    shared by heads, used raw
  g = u * RMS(concat of the C channel outputs per head)   (C*H*d_v)
  X1 = W0 dropout(g) + b0 + x
  X2 = X1 + W2(SiLU(W1 z) * W3 z),  z = dropout(RMS(X1)),  hidden = ffn_multiplier * D
RMS norms have no affine weights. Channel order in the concatenation: positional, temporal, semantic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scalelab.models.base import BlockStack, Context, RetrievalModel
from scalelab.models.blocks import RelativeBias, SwiGLU, causal_mask, merge_heads, rms_norm, split_heads
from scalelab.models.registry import ModelSpec

_ORDER = ("positional", "temporal", "semantic")


class FuXiBlock(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.channels = [c for c in _ORDER if c in spec.fuxi_channels]
        inner = spec.heads * spec.head_dim
        c = len(self.channels)
        semantic = "semantic" in self.channels
        self.splits = [c * inner, inner] + ([inner, inner] if semantic else [])
        self.uvqk = nn.Parameter(torch.empty(spec.width, sum(self.splits)).normal_(0, 0.02))
        self.bias = RelativeBias(
            spec.max_len, position="positional" in self.channels, time="temporal" in self.channels
        )
        self.lin0 = nn.Linear(c * inner, spec.width)
        self.ffn = SwiGLU(spec.width, spec.ffn_hidden)
        for lin in (self.lin0, self.ffn.w1, self.ffn.w2, self.ffn.w3):
            nn.init.xavier_uniform_(lin.weight)
        self.dropout = nn.Dropout(spec.dropout)

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        n = x.shape[1]
        parts = F.silu(rms_norm(x) @ self.uvqk).split(self.splits, dim=-1)
        u, v = parts[0], split_heads(parts[1], self.spec.heads)  # v: (B, H, n, d)
        causal = causal_mask(n, x.device)
        outs = []
        for name in self.channels:
            if name == "positional":
                a = self.bias.position_bias(n).masked_fill(~causal, 0.0)[None, None]  # (1, 1, n, n)
            elif name == "temporal":
                if ctx.time_buckets is None:
                    raise ValueError("FuXi-alpha's temporal channel needs timestamps")
                a = self.bias.time_bias(ctx.time_buckets).masked_fill(~causal, 0.0)[:, None]
            else:
                q, k = split_heads(parts[2], self.spec.heads), split_heads(parts[3], self.spec.heads)
                a = F.silu(q @ k.transpose(-1, -2)).masked_fill(~causal, 0.0) / float(self.spec.max_len)
            outs.append(a @ v)  # (B, H, n, d)
        g = u * rms_norm(merge_heads(torch.cat(outs, dim=-1)))  # per head: [channel outputs]
        x1 = self.lin0(self.dropout(g)) + x
        return x1 + self.ffn(self.dropout(rms_norm(x1)))


class FuXiAlpha(BlockStack):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__([FuXiBlock(spec) for _ in range(spec.depth)])


def build(spec: ModelSpec, num_items: int) -> RetrievalModel:
    return RetrievalModel(spec, num_items, FuXiAlpha(spec))
