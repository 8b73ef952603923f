"""Memory and time of HSTU's pointwise attention in training: the lean autograd function (one saved
(B, H, N, N) tensor, attention recomputed in the backward pass; used on accelerators, where memory
is the limit; on CPU the plain graph is faster and is used) against the plain autograd formula
(SiLU(q k^T + bias) * mask / N) v in the same run, at Meta's ML-1M shape (batch 128, N = 200,
1 head of 50) and HSTU-large's (2 heads of 25).

Saved bytes: every tensor autograd keeps for the backward pass, counted once per storage through
torch.autograd.graph.saved_tensors_hooks (exact, device independent). Time: forward + backward,
median of --reps.

    python bench/bench_attention.py [--reps 5]
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

from scalelab.models.blocks import _LeanPointwiseAttention, causal_mask


def lean(q, k, v, bias, divisor):  # what pointwise_silu_attention trains with on accelerators
    w = causal_mask(q.shape[-2], q.device).to(q.dtype) / divisor
    return _LeanPointwiseAttention.apply(q, k, v, bias, w)


def plain(q, k, v, bias, divisor):  # the formula as autograd sees it without the custom function
    w = causal_mask(q.shape[-2], q.device).to(q.dtype) / divisor
    return (F.silu(q @ k.transpose(-1, -2) + bias[:, None]) * w) @ v


def measure(fn, b: int, h: int, n: int, d: int, reps: int) -> dict:
    torch.manual_seed(0)  # the same inputs for both implementations
    q, k, v = (torch.randn(b, h, n, d, requires_grad=True) for _ in range(3))
    bias = torch.randn(b, n, n, requires_grad=True)
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(q, k, v, bias, float(n))
    inputs = {x.untyped_storage().data_ptr() for x in (q, k, v, bias)}
    saved = sum(nb for ptr, nb in seen.items() if ptr not in inputs)
    out.sum().backward()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(q, k, v, bias, float(n)).sum().backward()
        times.append(time.perf_counter() - t0)
    return {"saved_mb": saved / 2**20, "seconds": statistics.median(times), "out": out.detach()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    rows = []
    for name, (b, h, n, d) in {
        "hstu (1 x 50)": (128, 1, 200, 50),
        "hstu-large (2 x 25)": (128, 2, 200, 25),
    }.items():
        got = measure(lean, b, h, n, d, args.reps)
        ref = measure(plain, b, h, n, d, args.reps)
        same = torch.allclose(got.pop("out"), ref.pop("out"), atol=1e-5)
        row = {"shape": name, "lean": got, "plain": ref, "same_output": same,
               "saved_ratio": got["saved_mb"] / ref["saved_mb"], "time_ratio": got["seconds"] / ref["seconds"]}  # fmt: skip
        rows.append(row)
        print(f"{name}: saved {got['saved_mb']:.0f} MB vs {ref['saved_mb']:.0f} MB ({row['saved_ratio']:.2f}x), "
              f"fwd+bwd {got['seconds']:.3f} s vs {ref['seconds']:.3f} s ({row['time_ratio']:.2f}x), same output {same}")  # fmt: skip
    print("written", write_record("bench_attention", {"machine": machine(), "rows": rows}))


if __name__ == "__main__":
    main()
