"""Building blocks shared by the architectures: the math, written to be read. Faster or leaner
evaluations of the same formulas are in `kernels.py`; per-thread dropout streams in `rng.py`.

Conventions: sequences are right-padded, shape (B, N) with item 0 = padding; `valid` is the
(B, N) bool mask of real items. Attention is causal (query i sees keys j <= i), so with right
padding no real position ever attends to a padded one.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from scalelab.models.rng import drop, thread_generator

TIME_BUCKET_DIVISOR = 0.301


NUM_TIME_BUCKETS = 128  # buckets 0..128 -> 129 weights


# "exact": floor(ln|dt| / 0.301) of the real number (integer edge count); "float32": the same formula
# evaluated in float32 as Meta's research code does (log of the float32 gap, divided in float32,
# truncated), which puts a gap just below an edge one bucket up (10 of 49.9M causal pairs on ML-1M).
TimeBucketing = Literal["exact", "float32"]


def causal_mask(n: int, device: torch.device) -> torch.Tensor:
    """(n, n) bool, True where key j <= query i."""
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def layer_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """LayerNorm without affine parameters (HSTU)."""
    return F.layer_norm(x, (x.shape[-1],), eps=eps)


def rms_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """RMSNorm without affine parameters (FuXi-alpha)."""
    return F.rms_norm(x, (x.shape[-1],), eps=eps)


def _bucket_edges() -> torch.Tensor:
    """edge[k - 1] = smallest integer gap whose bucket is >= k, k = 1..128: ceil(exp(0.301 k))."""
    return torch.tensor(
        [math.ceil(math.exp(TIME_BUCKET_DIVISOR * k)) for k in range(1, NUM_TIME_BUCKETS + 1)]
    )


_EDGES: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
_INT32_MAX = 2**31 - 1


def _edges(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    key = (device, dtype)
    if key not in _EDGES:
        edges = _bucket_edges()
        if dtype == torch.int32:
            edges = edges.clamp(max=_INT32_MAX)  # gaps never reach it on the int32 path
        _EDGES[key] = edges.to(device=device, dtype=dtype)
    return _EDGES[key]


def time_buckets(dt: torch.Tensor) -> torch.Tensor:
    """floor(ln(max(|dt|, 1)) / 0.301), clamped to [0, 128]; dt in seconds (integer).

    Computed exactly on integers by counting the precomputed bucket edges at or below |dt|
    (searchsorted), which is also much cheaper than a float64 log over a (B, n, n) tensor.
    """
    return torch.searchsorted(_edges(dt.device, dt.dtype), dt.abs().contiguous(), right=True)


def next_timestamps(
    timestamps: torch.Tensor, valid: torch.Tensor, query_time: torch.Tensor | None
) -> torch.Tensor:
    """t_{i+1} for each position i: the next item's time; at a user's last item, the query time
    (the time of the event being predicted) if given, else t_i itself."""
    nxt = torch.cat([timestamps[:, 1:], timestamps[:, -1:]], dim=1)
    lengths = valid.sum(1)
    last = (lengths - 1).clamp(min=0)
    rows = torch.arange(timestamps.shape[0], device=timestamps.device)
    fill = timestamps[rows, last] if query_time is None else query_time.to(timestamps.dtype)
    return nxt.index_put((rows, last), fill)


def float32_time_buckets(dt: torch.Tensor) -> torch.Tensor:
    """Meta's bucketing, int32: trunc(float32(ln(float32(max(|dt|, 1)))) / float32(0.301)),
    clamped to [0, 128]. Differs from `time_buckets` only for gaps within float32 rounding of an edge."""
    x = dt.abs().clamp(min=1).to(torch.float32).log_().div_(TIME_BUCKET_DIVISOR)
    return x.to(torch.int32).clamp_(0, NUM_TIME_BUCKETS)


class RelativeBias(nn.Module):
    """HSTU's relative attention bias: rab[i, j] = w_pos[(N-1) + j - i] + w_time[bucket(t_{i+1} - t_j)].

    N is the padded length the model was built for (`max_len`); shorter batches index the same
    table, so the bias of a pair depends only on j - i and the time gap, never on the batch's padding.
    """

    def __init__(self, max_len: int, position: bool = True, time: bool = True) -> None:
        super().__init__()
        self.max_len = max_len
        self.pos_w = nn.Parameter(torch.empty(2 * max_len - 1).normal_(0, 0.02)) if position else None
        self.time_w = nn.Parameter(torch.empty(NUM_TIME_BUCKETS + 1).normal_(0, 0.02)) if time else None

    def position_bias(self, n: int) -> torch.Tensor:
        """(n, n) Toeplitz matrix w_pos[(N-1) + j - i]."""
        return self.position_rows(0, n)

    def time_bias(self, buckets: torch.Tensor) -> torch.Tensor:
        """w_time[buckets], any shape: (B, n, n) from `pair_time_buckets`, or a row block's
        (B, r, keys) from `time_bucket_rows`."""
        assert self.time_w is not None
        # index_select over the flat int32 buckets: the same values and gradient as time_w[buckets],
        # about 5x faster forward and 6x forward + backward on CPU (advanced indexing converts the
        # index to int64 and accumulates its gradient with a sort-based index_put).
        return self.time_w.index_select(0, buckets.reshape(-1)).view(buckets.shape)

    def position_rows(self, r0: int, r1: int) -> torch.Tensor:
        """(r1 - r0, r1) w_pos[(N-1) + j - i] of query rows r0:r1 against keys 0:r1."""
        assert self.pos_w is not None
        i = torch.arange(r0, r1, device=self.pos_w.device)
        j = torch.arange(r1, device=self.pos_w.device)
        return self.pos_w[(self.max_len - 1) + j[None, :] - i[:, None]]

    def rows(self, r0: int, r1: int, buckets: torch.Tensor | None) -> torch.Tensor:
        """(B or 1, r1 - r0, r1) bias of query rows r0:r1 against keys 0:r1 (`causal_silu_attention`);
        `buckets`: (B, r1 - r0, r1) from `time_bucket_rows`."""
        pos = self.position_rows(r0, r1)[None] if self.pos_w is not None else None
        if self.time_w is None:
            assert pos is not None
            return pos
        if buckets is None:
            raise ValueError("the relative time bias needs timestamps")
        bias = self.time_bias(buckets)
        if pos is None:
            return bias
        return bias + pos if torch.is_grad_enabled() else bias.add_(pos)  # a fresh tensor either way

    def row_bias(self, last: torch.Tensor, n: int, buckets: torch.Tensor | None) -> torch.Tensor:
        """(B, 1, n) bias of query row last[b] against every key (the last block's fast path);
        `buckets`: (B, n) bucket(t_{last+1} - t_j)."""
        j = torch.arange(n, device=last.device)
        bias = torch.zeros(len(last), n, device=last.device)
        if self.pos_w is not None:
            bias = bias + self.pos_w[(self.max_len - 1) + j[None, :] - last[:, None]]
        if self.time_w is not None:
            if buckets is None:
                raise ValueError("the relative time bias needs timestamps")
            bias = bias + self.time_w[buckets]
        return bias[:, None, :]

    def forward(self, n: int, buckets: torch.Tensor | None) -> torch.Tensor:
        """(B or 1, n, n) total bias for a batch padded to n; `buckets` from `pair_time_buckets`."""
        if n > self.max_len:
            raise ValueError(f"sequence length {n} exceeds the model's max_seq_len {self.max_len}")
        bias = torch.zeros(1, n, n, device=next(self.parameters()).device)
        if self.pos_w is not None:
            bias = bias + self.position_bias(n)[None]
        if self.time_w is not None:
            if buckets is None:
                raise ValueError("the relative time bias needs timestamps")
            bias = bias + self.time_bias(buckets)
        return bias


def pointwise_silu_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None,
    divisor: float,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """HSTU attention: A = SiLU(q k^T + bias) / divisor, causally masked (diagonal kept); A v.

    q: (B, H, m, d_qk), k: (B, H, n, d_qk), v: (B, H, n, d_v); bias: (B or 1, m, n) shared by
    heads. No softmax and no 1/sqrt(d) scale. `keep` (bool, broadcastable to (B, H, m, n)) replaces
    the causal mask when the m queries are not the n keys (e.g. only each user's last position).
    Returns (B, H, m, d_v). The models call `kernels.silu_attention`, the same values computed in
    place without autograd and with a memory-lean backward on accelerators.
    """
    if keep is None:
        keep = causal_mask(q.shape[-2], q.device)
    s = q @ k.transpose(-1, -2)  # (B, H, m, n)
    return (F.silu(s + bias[:, None] if bias is not None else s) * (keep.to(q.dtype) / divisor)) @ v


def softmax_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None, dropout: float = 0.0
) -> torch.Tensor:
    """Causal softmax(q k^T / sqrt(d) + bias / sqrt(d)) v through scaled_dot_product_attention.

    The bias is added to the logits before the 1/sqrt(d) scale (HSTU's softmax ablation and
    SASRec+), which SDPA's additive mask expresses as bias / sqrt(d). q, k, v: (B, H, n, d).
    With attention dropout in a thread that has its own dropout generator (`dropout_generator`),
    the same math written out, the dropout mask drawn from that generator (SDPA takes none).
    """
    if dropout > 0.0 and thread_generator() is not None:
        n, scale = q.shape[-2], 1.0 / math.sqrt(q.shape[-1])
        s = q @ k.transpose(-1, -2) * scale  # (B, H, n, n)
        if bias is not None:
            s = s + bias[:, None] * scale
        a = torch.softmax(s.masked_fill(~causal_mask(n, q.device), float("-inf")), dim=-1)
        return drop(a, dropout, True) @ v
    if bias is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
    n = q.shape[-2]
    mask = (bias / math.sqrt(q.shape[-1])).masked_fill(~causal_mask(n, q.device), float("-inf"))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None].to(q.dtype), dropout_p=dropout)


class Dropout(nn.Dropout):
    """nn.Dropout that honours a thread's dropout generator (`drop`); same state dict and repr."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop(x, self.p, self.training)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, n, H*d) -> (B, H, n, d)."""
    b, n, _ = x.shape
    return x.view(b, n, heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, n, d) -> (B, n, H*d)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class MultiHeadSelfAttention(nn.Module):
    """Softmax self-attention with separate q/k/v projections D -> H*d and an output projection."""

    def __init__(self, width: int, heads: int, head_dim: int, dropout: float, bias: bool = True) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        inner = heads * head_dim
        self.q = nn.Linear(width, inner, bias=bias)
        self.k = nn.Linear(width, inner, bias=bias)
        self.v = nn.Linear(width, inner, bias=bias)
        self.o = nn.Linear(inner, width, bias=bias)

    def forward(
        self,
        query: torch.Tensor,
        key_value: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        rope: RotaryEmbedding | None = None,
    ) -> torch.Tensor:
        kv = query if key_value is None else key_value
        q, k, v = (split_heads(p(x), self.heads) for p, x in ((self.q, query), (self.k, kv), (self.v, kv)))
        if rope is not None:
            q, k = rope(q), rope(k)
        out = softmax_attention(q, k, v, bias, self.dropout if self.training else 0.0)
        return self.o(merge_heads(out))


class RotaryEmbedding(nn.Module):
    """RoPE on (B, H, n, d) with the half-split (GPT-NeoX / Llama) layout; d must be even."""

    cos: torch.Tensor  # (N, d/2) buffers
    sin: torch.Tensor

    def __init__(self, head_dim: int, max_len: int, base: float = 10_000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
        inv = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        angles = torch.outer(torch.arange(max_len, dtype=torch.float64), inv)  # (N, d/2)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-2]
        cos, sin = self.cos[:n].to(x.dtype), self.sin[:n].to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class SwiGLU(nn.Module):
    """W2( SiLU(W1 z) * W3 z ), no biases."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(width, hidden, bias=False)
        self.w3 = nn.Linear(width, hidden, bias=False)
        self.w2 = nn.Linear(hidden, width, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(z)) * self.w3(z))


def init_gpt_style(blocks: nn.Module, depth: int, residual_outputs: tuple[str, ...]) -> None:
    """GPT-2 initialisation: weights N(0, 0.02), the projections that write into the residual stream
    scaled by 1/sqrt(2 L), linear biases zero."""
    for name, p in blocks.named_parameters():
        if p.dim() > 1:
            std = 0.02 / math.sqrt(2 * depth) if name.endswith(residual_outputs) else 0.02
            nn.init.normal_(p, 0.0, std)
        elif name.endswith("bias") and "ln" not in name and "norm" not in name:
            nn.init.zeros_(p)
