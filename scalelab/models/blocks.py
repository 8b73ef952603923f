"""Building blocks shared by the architectures.

Conventions: sequences are right-padded, shape (B, N) with item 0 = padding; `valid` is the
(B, N) bool mask of real items. Attention is causal (query i sees keys j <= i), so with right
padding no real position ever attends to a padded one.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

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


def relative_times(next_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(next_t, t) relative to the batch's earliest time, in int32, when the batch's times span less
    than 2^31 s (68 years): half the memory traffic of int64 gaps, and the cheap exact bucketing of
    `_int32_time_buckets`. Otherwise both are returned unchanged."""
    lo = torch.minimum(t.min(), next_t.min())
    if int(torch.maximum(t.max(), next_t.max()) - lo) < _INT32_MAX:
        return (next_t - lo).int(), (t - lo).int()
    return next_t, t


def float32_time_buckets(dt: torch.Tensor) -> torch.Tensor:
    """Meta's bucketing, int32: trunc(float32(ln(float32(max(|dt|, 1)))) / float32(0.301)),
    clamped to [0, 128]. Differs from `time_buckets` only for gaps within float32 rounding of an edge."""
    x = dt.abs().clamp(min=1).to(torch.float32).log_().div_(TIME_BUCKET_DIVISOR)
    return x.to(torch.int32).clamp_(0, NUM_TIME_BUCKETS)


def time_bucket_rows(
    next_t: torch.Tensor, t: torch.Tensor, r0: int, r1: int, bucketing: TimeBucketing = "exact"
) -> torch.Tensor:
    """(B, r1 - r0, r1) int32 bucket(t_{i+1} - t_j) for query rows i in r0:r1 and keys j < r1 (all a
    causal block of those rows reads); times as returned by `relative_times`."""
    dt = (next_t[:, r0:r1, None] - t[:, None, :r1]).abs_()
    if bucketing == "float32":
        return float32_time_buckets(dt)
    return _int32_time_buckets(dt) if dt.dtype == torch.int32 else time_buckets(dt).int()


def pair_time_buckets(
    next_t: torch.Tensor, t: torch.Tensor, row_block: int = 16, bucketing: TimeBucketing = "exact"
) -> torch.Tensor:
    """(B, n, n) bucket(t_{i+1} - t_j) for j <= i, for the blocks that add the whole (n, n) bias.

    Every block masks j > i (causal attention), so only the lower triangle is computed, `row_block`
    rows at a time (`time_bucket_rows`). Entries above the diagonal are not meaningful (0, or a
    gap's bucket inside a row block's square).
    """
    next_t, t = relative_times(next_t, t)
    b, n = t.shape
    out = torch.zeros(b, n, n, dtype=torch.int32, device=t.device)
    for r0 in range(0, n, row_block):
        r1 = min(n, r0 + row_block)
        out[:, r0:r1, :r1] = time_bucket_rows(next_t, t, r0, r1, bucketing)
    return out


def _int32_time_buckets(dt: torch.Tensor) -> torch.Tensor:
    """`time_buckets` of int32 gaps 0 <= dt < 2^31 through a float64 log: the same bucket as the edge
    count for every such gap (checked exhaustively over [0, 2^31); the tests check every edge +-3),
    and 3-7x cheaper than searchsorted, whose binary search branches on every element. (Beyond 2^31
    the float64 log does miss edges: first at about 1.3e14.)"""
    return (
        dt.double()
        .clamp_(min=1)
        .log_()
        .mul_(1 / TIME_BUCKET_DIVISOR)
        .to(torch.int32)
        .clamp_(max=NUM_TIME_BUCKETS)
    )


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
    Without autograd the (B, H, m, n) scores are updated in place. Returns (B, H, m, d_v).
    """
    if keep is None:
        keep = causal_mask(q.shape[-2], q.device)
    weight = keep.to(q.dtype) / divisor
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (q, k, v, bias)):
        if q.device.type != "cpu":  # accelerators: memory is the limit, recomputing is cheap
            return _LeanPointwiseAttention.apply(q, k, v, bias, weight)
        # CPU: plenty of memory, and the plain autograd graph is faster (bench/bench_attention.py)
        s = q @ k.transpose(-1, -2)
        return (F.silu(s + bias[:, None] if bias is not None else s) * weight) @ v
    s = q @ k.transpose(-1, -2)  # (B, H, m, n)
    if bias is not None:
        s += bias[:, None]
    return F.silu(s, inplace=True).mul_(weight) @ v


def causal_silu_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias_rows: Callable[[int, int], torch.Tensor] | None,
    divisor: float,
    row_block: int = 32,
) -> torch.Tensor:
    """`pointwise_silu_attention` with the causal mask, `row_block` query rows at a time.

    Rows r0:r1 score only keys 0:r1 (the causal triangle: about half the (n, n) work of the square,
    and a (B, H, row_block, n) working set that stays in cache), and `bias_rows(r0, r1)` gives the
    bias of those rows, (B or 1, r1 - r0, r1), so the (B, n, n) bias is never materialised. Same
    values as the square computation (entries above the diagonal are zero either way).
    q, k, v: (B, H, n, d); returns (B, H, n, d_v).
    """
    n = q.shape[-2]
    blocks = [(r0, min(n, r0 + row_block)) for r0 in range(0, n, row_block)]
    biases = [bias_rows(r0, r1) for r0, r1 in blocks] if bias_rows is not None else []
    if torch.is_grad_enabled():
        return _RowBlockAttention.apply(q, k, v, divisor, blocks, *biases)
    out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=v.dtype, device=v.device)
    for i, (r0, r1) in enumerate(blocks):  # no autograd: every intermediate may be overwritten
        s = q[..., r0:r1, :] @ k[..., :r1, :].transpose(-1, -2)  # (B, H, r1 - r0, r1)
        if biases:
            s += biases[i][:, None]
        a = F.silu(s, inplace=True).mul_(_causal_weight(r0, r1, divisor, s))
        torch.matmul(a, v[..., :r1, :], out=out[..., r0:r1, :])
    return out


def _causal_weight(r0: int, r1: int, divisor: float, like: torch.Tensor) -> torch.Tensor:
    """(r1 - r0, r1) mask of query rows r0:r1 (keys j <= i), divided by `divisor`."""
    return torch.ones(r1 - r0, r1, dtype=like.dtype, device=like.device).tril_(r0) / divisor


class _RowBlockAttention(torch.autograd.Function):
    """The training side of `causal_silu_attention`: one saved pre-activation score block per row
    block (the attention is recomputed from it in the backward pass), and the gradients of k and v
    accumulated in place over the blocks, where autograd would write a full-size zero-filled gradient
    for every block's key/value slice and then sum them. Checked against the square's autograd
    gradients (float64) in the tests."""

    @staticmethod
    def forward(ctx, q, k, v, divisor, blocks, *biases):  # type: ignore[no-untyped-def]
        out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=v.dtype, device=v.device)
        scores = []
        for i, (r0, r1) in enumerate(blocks):
            s = q[..., r0:r1, :] @ k[..., :r1, :].transpose(-1, -2)  # a fresh tensor, kept
            if biases:
                s += biases[i][:, None]
            scores.append(s)
            a = F.silu(s) * _causal_weight(r0, r1, divisor, s)
            torch.matmul(a, v[..., :r1, :], out=out[..., r0:r1, :])
        ctx.save_for_backward(q, k, v, *scores)
        ctx.divisor, ctx.blocks = divisor, blocks
        ctx.bias_shapes = [b.shape for b in biases]
        return out

    @staticmethod
    def backward(ctx, g):  # type: ignore[no-untyped-def]
        q, k, v, *scores = ctx.saved_tensors
        dq, dk, dv = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
        dbiases = []
        for i, (r0, r1) in enumerate(ctx.blocks):
            s, gb = scores[i], g[..., r0:r1, :]
            w = _causal_weight(r0, r1, ctx.divisor, s)
            a = F.silu(s).mul_(w)  # the attention, recomputed
            dv[..., :r1, :] += a.transpose(-1, -2) @ gb
            ds = torch.ops.aten.silu_backward((gb @ v[..., :r1, :].transpose(-1, -2)).mul_(w), s)
            torch.matmul(ds, k[..., :r1, :], out=dq[..., r0:r1, :])
            dk[..., :r1, :] += ds.transpose(-1, -2) @ q[..., r0:r1, :]
            if ctx.bias_shapes:
                db = ds.sum(1)  # heads share the bias
                dbiases.append(db.sum(0, keepdim=True) if ctx.bias_shapes[i][0] == 1 else db)
        return (dq, dk, dv, None, None, *dbiases)


class _LeanPointwiseAttention(torch.autograd.Function):
    """(SiLU(q k^T + bias) * weight) v with one saved (B, H, m, n) tensor instead of two, and two
    forward temporaries of that size instead of four: the pre-activation scores are built in
    place and kept; the attention matrix is recomputed from them in the backward pass (an
    elementwise pass, cheap next to the matmuls). Checked against autograd with gradcheck."""

    @staticmethod
    def forward(ctx, q, k, v, bias, weight):  # type: ignore[no-untyped-def]
        s = q @ k.transpose(-1, -2)  # (B, H, m, n), a fresh tensor: safe to update in place
        if bias is not None:
            s += bias[:, None]
        out = F.silu(s).mul_(weight) @ v
        ctx.save_for_backward(q, k, v, s, weight)
        ctx.bias_shape = None if bias is None else bias.shape
        ctx.dtypes = (q.dtype, k.dtype, v.dtype, None if bias is None else bias.dtype)
        return out

    @staticmethod
    def backward(ctx, g):  # type: ignore[no-untyped-def]
        q, k, v, s, weight = ctx.saved_tensors
        dt = s.dtype  # under autocast the scores may be lower precision than some inputs or g
        q, k, v, g, weight = (t.to(dt) for t in (q, k, v, g, weight))
        a = F.silu(s).mul_(weight)  # the attention matrix, recomputed
        dv = a.transpose(-1, -2) @ g
        del a
        ds = torch.ops.aten.silu_backward((g @ v.transpose(-1, -2)).mul_(weight), s)  # through SiLU
        dq, dk = ds @ k, ds.transpose(-1, -2) @ q
        dbias = None
        if ctx.bias_shape is not None and ctx.needs_input_grad[3]:
            dbias = ds.sum(1)  # heads share the bias
            if ctx.bias_shape[0] == 1 and dbias.shape[0] != 1:
                dbias = dbias.sum(0, keepdim=True)
            dbias = dbias.to(ctx.dtypes[3])
        return dq.to(ctx.dtypes[0]), dk.to(ctx.dtypes[1]), dv.to(ctx.dtypes[2]), dbias, None


def softmax_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None, dropout: float = 0.0
) -> torch.Tensor:
    """Causal softmax(q k^T / sqrt(d) + bias / sqrt(d)) v through scaled_dot_product_attention.

    The bias is added to the logits before the 1/sqrt(d) scale (HSTU's softmax ablation and
    SASRec+), which SDPA's additive mask expresses as bias / sqrt(d). q, k, v: (B, H, n, d).
    With attention dropout in a thread that has its own dropout generator (`dropout_generator`),
    the same math written out, the dropout mask drawn from that generator (SDPA takes none).
    """
    if dropout > 0.0 and _thread_rng.generator is not None:
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


class _ThreadRng(threading.local):
    generator: torch.Generator | None = None


_thread_rng = _ThreadRng()


@contextmanager
def dropout_generator(gen: torch.Generator) -> Iterator[None]:
    """Dropout masks drawn in this thread come from `gen` until exit. Worker threads of a CPU
    training step use it (training/cpu_workers.py): the process-wide generator would hand them
    masks in whatever order the threads happen to draw, and the run would not be reproducible."""
    before, _thread_rng.generator = _thread_rng.generator, gen
    try:
        yield
    finally:
        _thread_rng.generator = before


def drop(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout: F.dropout, or, in a thread with its own dropout generator, the same keep-mask
    computation (bernoulli(1 - p) / (1 - p)) drawn from that generator."""
    gen = _thread_rng.generator
    if gen is None or not training or p == 0.0:
        return F.dropout(x, p, training)
    return x * torch.empty_like(x).bernoulli_(1.0 - p, generator=gen).div_(1.0 - p)


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
