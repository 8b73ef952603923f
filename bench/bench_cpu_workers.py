"""Same-process A/B of CPU worker threads (scalelab/training/cpu_workers.py) against PyTorch's
intra-op threads over the whole batch, on the real training step.

The trainer's step (bench_train.training_step: real ML-1M, batch 128, width 50, 128 sampled
negatives, AdamW) with `train.cpu_workers` = 1 (every operator split across torch's threads) and =
torch's thread count (each thread a share of the batch, operators on one core), alternating every
--steps steps on the same batches; medians of --reps rounds after one warm-up round.

    python bench/bench_cpu_workers.py [--families hstu,hstu_large,sasrec,hstu_d8_w64] [--paths plain,fast]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import alternating_rates, training_step
from common import machine, ml1m_path, write_record


def ab_train(name: str, variant: str, threads: int, steps: int, reps: int) -> dict:
    arms = {w: training_step(name, ml1m_path(), variant, workers=w) for w in (1, threads)}
    rates = alternating_rates(arms, arms[1].batches, steps, reps)
    one, many = rates[1], rates[threads]
    return {"family": name, "path": variant, "workers": threads, "one_pool_targets_per_s": one,
            "workers_targets_per_s": many, "speedup": many / one}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default="hstu,hstu_large,sasrec,hstu_d8_w64")
    ap.add_argument("--paths", default="plain,fast")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    threads = torch.get_num_threads()
    if threads < 2:
        print("skipped: one intra-op thread, nothing to compare (run with 2 or more)")
        return
    rows = []
    for fam in args.families.split(","):
        for variant in args.paths.split(","):
            r = ab_train(fam, variant, threads, args.steps, args.reps)
            rows.append(r)
            print(f"{fam:12s} {variant:8s} one pool {r['one_pool_targets_per_s']:8,.0f}  {threads} workers "
                  f"{r['workers_targets_per_s']:8,.0f} targets/s ({r['speedup']:.2f}x)", flush=True)  # fmt: skip
    record = {"machine": machine(), "threads": threads, "training": rows,
              "when": time.strftime("%Y-%m-%d %H:%M")}  # fmt: skip
    print("written", write_record("bench_cpu_workers", record))


if __name__ == "__main__":
    main()
