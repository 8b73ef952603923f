"""How training cost grows with sequence length (50..1000) and depth, for HSTU and Llama.

Synthetic full-length batches (every position a target; 32 sequences per batch, catalogue 3,416,
width 50, 1 head), the default training step (forward + backward + AdamW, 128 per-position sampled
negatives). Reported: targets/s and the analytic training FLOPs per target, so the growth can be
read against the model's own count (attention grows linearly with length per target, the rest is
flat). Each row is the median of --reps repetitions of --steps steps after one warm-up step; the
reference in the same run is the first row of each family (length 50, depth 2): ratios are to it.

    python bench/bench_cost_growth.py [--steps 3] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_record

from scalelab.config import ModelConfig
from scalelab.models import build_model, resolve
from scalelab.models.accounting import size_report
from scalelab.training.losses import sampled_softmax

ITEMS, BATCH = 3416, 32


def rate(family: str, n: int, depth: int, steps: int, reps: int) -> tuple[float, float]:
    cfg = ModelConfig(family=family, depth=depth, width=50, heads=1, dropout=0.2, max_seq_len=n)
    torch.manual_seed(0)
    model = build_model(cfg, ITEMS)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    items = torch.randint(1, ITEMS + 1, (BATCH, n), generator=gen)
    ts = torch.cumsum(torch.randint(1, 10_000, (BATCH, n), generator=gen), 1)

    def step() -> int:
        h = model(items, ts)
        users, tgt = h[:, :-1].reshape(-1, 50), items[:, 1:].reshape(-1)
        loss = sampled_softmax(users, tgt, model.item_table(), 128, 0.05, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return len(tgt)

    step()
    rates = []
    for _ in range(reps):
        t0, done = time.perf_counter(), 0
        for _ in range(steps):
            done += step()
        rates.append(done / (time.perf_counter() - t0))
    return statistics.median(rates), size_report(resolve(cfg), ITEMS, 128).flops_per_token


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for family in ("hstu", "llama"):
        grid = [(n, 2) for n in (50, 100, 200, 500, 1000)] + [(200, d) for d in (1, 4, 8)]
        base = None
        for n, depth in grid:
            r, flops = rate(family, n, depth, args.steps, args.reps)
            base = base or (r, flops)
            row = {"family": family, "length": n, "depth": depth, "targets_per_s": r, "flops_per_target": flops,
                   "time_ratio": base[0] / r, "flops_ratio": flops / base[1]}  # fmt: skip
            rows.append(row)
            print(f"{family:6s} N={n:5d} depth={depth}: {r:9,.0f} targets/s  cost x{row['time_ratio']:.2f} "
                  f"(analytic FLOPs x{row['flops_ratio']:.2f})", flush=True)  # fmt: skip
    print("written", write_record("bench_cost_growth", {"machine": machine(), "batch": BATCH, "rows": rows}))


if __name__ == "__main__":
    main()
