"""Memory and time of HSTU's pointwise attention, three implementations of (SiLU(q k^T + bias) *
mask / N) v in the same run, at Meta's ML-1M shape (batch 128, N = 200, 1 head of 50) and
HSTU-large's (2 heads of 25):
- `plain`: the formula over the whole (N, N) square, as autograd sees it (the reference);
- `lean`: the autograd function with one saved (B, H, N, N) tensor, the attention recomputed in the
  backward pass (used on accelerators, where memory is the limit);
- `rows`: `causal_silu_attention`, 32 query rows at a time against the keys up to the block's last
  row (the causal triangle; used on CPU, training and evaluation).

Saved bytes: every tensor autograd keeps for the backward pass, counted once per storage through
torch.autograd.graph.saved_tensors_hooks (exact, device independent). Time: forward + backward, and
forward alone under inference_mode, medians of --reps.

    python bench/bench_attention.py [--reps 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_record

from scalelab.models.blocks import RelativeBias, causal_mask
from scalelab.models.kernels import _LeanPointwiseAttention, causal_silu_attention, pair_time_buckets


def lean(q, k, v, rab, buckets, divisor):  # what kernels.silu_attention trains with on accelerators
    w = causal_mask(q.shape[-2], q.device).to(q.dtype) / divisor
    return _LeanPointwiseAttention.apply(q, k, v, rab(q.shape[-2], buckets), w)


def plain(q, k, v, rab, buckets, divisor):  # the formula as autograd sees it, over the whole square
    w = causal_mask(q.shape[-2], q.device).to(q.dtype) / divisor
    return (F.silu(q @ k.transpose(-1, -2) + rab(q.shape[-2], buckets)[:, None]) * w) @ v


def rows(q, k, v, rab, buckets, divisor):  # the CPU path: the causal triangle, 32 query rows at a time
    return causal_silu_attention(q, k, v, lambda r0, r1: rab.rows(r0, r1, buckets[:, r0:r1, :r1]), divisor)


def measure(fn, b: int, h: int, n: int, d: int, reps: int) -> dict:
    torch.manual_seed(0)  # the same inputs for both implementations
    q, k, v = (torch.randn(b, h, n, d, requires_grad=True) for _ in range(3))
    # the relative bias built from its tables as the models do (positions and time buckets of
    # sorted random timestamps), so every implementation also pays for its bias and its gradient
    rab = RelativeBias(n)
    t = torch.cumsum(torch.randint(0, 100_000, (b, n)), 1)
    buckets = pair_time_buckets(torch.cat([t[:, 1:], t[:, -1:]], 1), t)
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(q, k, v, rab, buckets, float(n))
    inputs = {x.untyped_storage().data_ptr() for x in (q, k, v, buckets, *rab.parameters())}
    saved = sum(nb for ptr, nb in seen.items() if ptr not in inputs)
    out.sum().backward()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(q, k, v, rab, buckets, float(n)).sum().backward()
        times.append(time.perf_counter() - t0)
    infer = []
    with torch.inference_mode():
        for _ in range(reps):
            t0 = time.perf_counter()
            fn(q, k, v, rab, buckets, float(n))
            infer.append(time.perf_counter() - t0)
    return {"saved_mb": saved / 2**20, "seconds": statistics.median(times),
            "inference_seconds": statistics.median(infer), "out": out.detach()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=9)
    args = ap.parse_args()
    rows_out = []
    for name, (b, h, n, d) in {
        "hstu (1 x 50)": (128, 1, 200, 50),
        "hstu-large (2 x 25)": (128, 2, 200, 25),
    }.items():
        ref = measure(plain, b, h, n, d, args.reps)
        expect = ref.pop("out")
        row = {"shape": name, "plain": ref}
        for label, fn in (("lean", lean), ("rows", rows)):
            got = measure(fn, b, h, n, d, args.reps)
            row[label] = got
            got["same_output"] = torch.allclose(got.pop("out"), expect, atol=1e-5)
            got["saved_ratio"] = got["saved_mb"] / ref["saved_mb"]
            got["time_ratio"] = got["seconds"] / ref["seconds"]
            got["inference_time_ratio"] = got["inference_seconds"] / ref["inference_seconds"]
            print(f"{name} {label} vs plain: saved {got['saved_mb']:.0f} MB vs {ref['saved_mb']:.0f} MB "
                  f"({got['saved_ratio']:.2f}x), fwd+bwd {got['seconds']:.3f} s vs {ref['seconds']:.3f} s "
                  f"({got['time_ratio']:.2f}x), inference {got['inference_seconds']:.3f} s vs "
                  f"{ref['inference_seconds']:.3f} s ({got['inference_time_ratio']:.2f}x), "
                  f"same output {got['same_output']}")  # fmt: skip
        rows_out.append(row)
    print("written", write_record("bench_attention", {"machine": machine(), "rows": rows_out}))


if __name__ == "__main__":
    main()
