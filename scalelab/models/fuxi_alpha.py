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
from scalelab.models.blocks import Dropout, RelativeBias, SwiGLU, merge_heads, rms_norm, split_heads
from scalelab.models.spec import ModelSpec

_ORDER = ("positional", "temporal", "semantic")
ROW_BLOCK = 32  # query rows per block on CPU


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
        self.dropout = Dropout(spec.dropout)

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        n = x.shape[1]
        parts = F.silu(rms_norm(x) @ self.uvqk).split(self.splits, dim=-1)
        u, v = parts[0], split_heads(parts[1], self.spec.heads)  # v: (B, H, n, d)
        q, k = (split_heads(p, self.spec.heads) for p in parts[2:]) if len(parts) > 2 else (None, None)
        # CPU: the causal triangle ROW_BLOCK query rows at a time (see kernels.causal_silu_attention);
        # accelerators: one block of all n rows
        step = ROW_BLOCK if x.device.type == "cpu" else n
        rows = [self._channels(r0, min(n, r0 + step), q, k, v, ctx) for r0 in range(0, n, step)]
        g = u * rms_norm(merge_heads(torch.cat(rows, dim=-2)))  # per head: [channel outputs]
        x1 = self.lin0(self.dropout(g)) + x
        return x1 + self.ffn(self.dropout(rms_norm(x1)))

    def _channels(self, r0: int, r1: int, q, k, v: torch.Tensor, ctx: Context) -> torch.Tensor:
        """Channel outputs of query rows r0:r1 (keys 0:r1), concatenated per head: (B, H, r1 - r0, C*d)."""
        drop = ~torch.ones(r1 - r0, r1, dtype=torch.bool, device=v.device).tril_(r0)  # keys after the query
        outs = []
        for name in self.channels:
            if name == "positional":
                a = self.bias.position_rows(r0, r1).masked_fill(drop, 0.0)[None, None]  # (1, 1, r, r1)
            elif name == "temporal":
                buckets = ctx.time_bucket_rows(r0, r1)
                if buckets is None:
                    raise ValueError("FuXi-alpha's temporal channel needs timestamps")
                a = self.bias.time_bias(buckets).masked_fill(drop, 0.0)[:, None]
            else:
                s = q[..., r0:r1, :] @ k[..., :r1, :].transpose(-1, -2)  # (B, H, r, r1)
                a = F.silu(s).masked_fill(drop, 0.0) / float(self.spec.max_len)
            outs.append(a @ v[..., :r1, :])  # (B, H, r, d)
        return torch.cat(outs, dim=-1)


class FuXiAlpha(BlockStack):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__([FuXiBlock(spec) for _ in range(spec.depth)])


def build(spec: ModelSpec, num_items: int) -> RetrievalModel:
    return RetrievalModel(spec, num_items, FuXiAlpha(spec))
