"""Speed paths: the formulas of `blocks.py` computed faster or in less memory, with the same values
(each checked against its formula in tests/test_models.py; timings in bench/bench_attention.py).

- time gaps relative to the batch's earliest time in int32, bucketed through a float64 log instead
  of a binary search, a causal row block at a time;
- HSTU's SiLU attention a row block of queries at a time over the causal triangle, with a custom
  backward that accumulates the key/value gradients in place (CPU);
- the same attention with one saved score tensor and the attention recomputed in the backward pass
  (accelerators: memory-lean), and in place when no gradient is recorded.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from scalelab.models.blocks import (
    _INT32_MAX,
    NUM_TIME_BUCKETS,
    TIME_BUCKET_DIVISOR,
    TimeBucketing,
    causal_mask,
    float32_time_buckets,
    pointwise_silu_attention,
    time_buckets,
)


def silu_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None,
    divisor: float,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """`blocks.pointwise_silu_attention`: with autograd, the plain graph on CPU (faster there) and
    the memory-lean backward on accelerators; without it, the (B, H, m, n) scores updated in place."""
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (q, k, v, bias)):
        if q.device.type == "cpu":
            return pointwise_silu_attention(q, k, v, bias, divisor, keep)
        if keep is None:
            keep = causal_mask(q.shape[-2], q.device)
        return _LeanPointwiseAttention.apply(q, k, v, bias, keep.to(q.dtype) / divisor)
    if keep is None:
        keep = causal_mask(q.shape[-2], q.device)
    s = q @ k.transpose(-1, -2)  # (B, H, m, n)
    if bias is not None:
        s += bias[:, None]
    return F.silu(s, inplace=True).mul_(keep.to(q.dtype) / divisor) @ v


def relative_times(next_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(next_t, t) relative to the batch's earliest time, in int32, when the batch's times span less
    than 2^31 s (68 years): half the memory traffic of int64 gaps, and the cheap exact bucketing of
    `_int32_time_buckets`. Otherwise both are returned unchanged."""
    lo = torch.minimum(t.min(), next_t.min())
    if int(torch.maximum(t.max(), next_t.max()) - lo) < _INT32_MAX:
        return (next_t - lo).int(), (t - lo).int()
    return next_t, t


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
