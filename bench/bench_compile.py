"""`train.compile` on CPU: the training step of HSTU d8 w64 (fast path, real ML-1M, as in
bench/bench_train.py) eager against `torch.compile` of the encoder as the trainer applies it, each
in its own process (compilation caches are per process), interleaved --reps times.

    python bench/bench_compile.py [--family hstu_d8_w64] [--path fast] [--reps 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, ml1m_path, write_record


def measure(family: str, path: str, compiled: bool, steps: int) -> dict:
    """In this process: warm-up (compilation included) over 8 steps, then 3 x `steps` timed steps."""
    from bench_train import targets_per_s, training_step

    from scalelab.training.trainer import _compile

    ts = training_step(family, ml1m_path(), path, workers=1)
    step, batches = ts.step, ts.batches
    if compiled:
        _compile(ts.model)
    t0 = time.perf_counter()
    for rows in batches[:8]:
        step(rows)
    warm = time.perf_counter() - t0
    rates = [targets_per_s(step, batches[8 + r * steps : 8 + (r + 1) * steps]) for r in range(3)]
    return {"compiled": compiled, "warm_up_s": warm, "targets_per_s": statistics.median(rates)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="hstu_d8_w64")
    ap.add_argument("--path", default="fast")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--one", choices=["eager", "compiled"], help=argparse.SUPPRESS)  # child process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.family, args.path, args.one == "compiled", args.steps)))
        return
    runs: dict[str, list[dict]] = {"eager": [], "compiled": []}
    for _ in range(args.reps):
        for mode in runs:
            out = subprocess.run(
                [sys.executable, __file__, "--one", mode, "--family", args.family, "--path", args.path,
                 "--steps", str(args.steps)], capture_output=True, text=True, check=True,
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            runs[mode].append(r)
            print(
                f"{mode:8s} {r['targets_per_s']:9,.0f} targets/s  (warm-up {r['warm_up_s']:.0f} s)",
                flush=True,
            )
    eager = statistics.median(r["targets_per_s"] for r in runs["eager"])
    comp = statistics.median(r["targets_per_s"] for r in runs["compiled"])
    print(f"compiled / eager: {comp / eager:.2f}x")
    record = {"machine": machine(), "family": args.family, "path": args.path, "runs": runs,
              "ratio": comp / eager, "when": time.strftime("%Y-%m-%d %H:%M"), "torch": torch.__version__}  # fmt: skip
    print("written", write_record("bench_compile", record))


if __name__ == "__main__":
    main()
