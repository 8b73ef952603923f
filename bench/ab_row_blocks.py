"""Same-process A/B of the CPU attention in the real training step: row blocks over the causal
triangle (the default on CPU) against the whole (n, n) square, alternating on the same batches.

HSTU: `causal_silu_attention` against `pointwise_silu_attention` with the full bias (swapped in by
replacing the function the HSTU block calls); FuXi-alpha: its channels 32 rows at a time against
one block of all rows (its `ROW_BLOCK`). Setup as bench/bench_train.py (real ML-1M, batch 128,
width 50, 128 negatives, AdamW).

    python bench/ab_row_blocks.py [--families hstu,hstu_large,fuxi_alpha] [--paths plain,bucketed,fast]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import targets_per_s, training_step
from common import machine, ml1m_path, write_record

import scalelab.models.fuxi_alpha as fuxi
import scalelab.models.hstu as hstu
from scalelab.models.blocks import pointwise_silu_attention
from scalelab.models.kernels import causal_silu_attention


def square(q, k, v, bias_rows, divisor, row_block=32):  # the whole square, bias built in one piece
    n = q.shape[-2]
    return pointwise_silu_attention(q, k, v, bias_rows(0, n) if bias_rows is not None else None, divisor)


def ab(name: str, variant: str, steps: int, reps: int) -> dict:
    ts = training_step(name, ml1m_path(), variant, workers=1)
    step, batches = ts.step, ts.batches

    for rows in batches[:2]:  # warm-up
        step(rows)
    rates: dict[str, list[float]] = {"rows": [], "square": []}
    try:
        for r in range(reps):
            chosen = batches[2 + r * steps : 2 + (r + 1) * steps]
            for label, fn, rows_per_block in (("square", square, 10**9), ("rows", causal_silu_attention, 32)):
                hstu.causal_silu_attention, fuxi.ROW_BLOCK = fn, rows_per_block
                rates[label].append(targets_per_s(step, chosen))
    finally:
        hstu.causal_silu_attention, fuxi.ROW_BLOCK = causal_silu_attention, 32
    out = {k: statistics.median(v) for k, v in rates.items()}
    return {"family": name, "path": variant, "rows_targets_per_s": out["rows"],
            "square_targets_per_s": out["square"], "speedup": out["rows"] / out["square"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default="hstu,hstu_large,fuxi_alpha")
    ap.add_argument("--paths", default="plain,bucketed,fast")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--record", default="ab_row_blocks", help="name of the JSON record under results/reference"
    )
    args = ap.parse_args()
    rows = []
    for fam in args.families.split(","):
        for variant in args.paths.split(","):
            r = ab(fam, variant, args.steps, args.reps)
            rows.append(r)
            print(f"{fam:11s} {variant:8s} rows {r['rows_targets_per_s']:8,.0f}  square {r['square_targets_per_s']:8,.0f}"
                  f"  targets/s  ({r['speedup']:.2f}x)", flush=True)  # fmt: skip
    print("written", write_record(args.record, {"machine": machine(), "rows": rows,
                                                     "when": time.strftime("%Y-%m-%d %H:%M")}))  # fmt: skip


if __name__ == "__main__":
    main()
