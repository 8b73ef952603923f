"""Same-process A/B of length groups (`train.length_groups`) on the default training path.

The trainer's step (bench_train.training_step: real ML-1M, shuffled batches of 128 users each
trimmed to its longest row, 128 negatives drawn per position, width 50, AdamW) with the whole batch
as one padded tensor (the reference) against the same batches computed as G groups of similar
length, each padded to its own longest row, alone and with `train.cpu_workers` = torch's thread
count. The arms alternate every --steps steps on the same batches; medians of --reps rounds after one
warm-up round. `padding` is the share of the computed positions that are padding.

    python bench/bench_length_groups.py [--families hstu,hstu_large,fuxi_alpha] [--groups 4,8]
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

from scalelab.training.trainer import _shard_rows


def padding(ts, batches: list[torch.Tensor], workers: int, groups: int) -> float:
    """Share of the positions computed over `batches` that are padding, with these shards."""
    slots = real = 0
    for rows in batches:
        for r in _shard_rows(rows, ts.task.lengths, workers, groups):
            n = ts.task.lengths[r]
            slots += int(n.max()) * len(r)
            real += int(n.sum())
    return 1.0 - real / slots


def ab(name: str, group_counts: list[int], threads: int, steps: int, reps: int) -> list[dict]:
    arms = {(1, 1): training_step(name, ml1m_path(), "plain", workers=1, groups=1)}
    for g in group_counts:
        arms[(1, g)] = training_step(name, ml1m_path(), "plain", workers=1, groups=g)
        if threads > 1:
            arms[(threads, g)] = training_step(name, ml1m_path(), "plain", workers=threads, groups=g)
    batches = arms[(1, 1)].batches
    rates = alternating_rates(arms, batches, steps, reps)
    ref = rates[(1, 1)]
    used = batches[steps : (reps + 1) * steps]
    epoch_targets = arms[(1, 1)].task.num_targets
    out = []
    for (w, g), ts in arms.items():
        rate = rates[(w, g)]
        out.append({"family": name, "workers": w, "length_groups": g, "targets_per_s": rate,
                    "speedup": rate / ref, "padding": padding(ts, used, w, g),
                    "epoch_s": epoch_targets / rate})  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default="hstu,hstu_large,fuxi_alpha")
    ap.add_argument("--groups", default="4,8")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    threads = torch.get_num_threads()
    rows = []
    for fam in args.families.split(","):
        for r in ab(fam, [int(g) for g in args.groups.split(",")], threads, args.steps, args.reps):
            rows.append(r)
            print(f"{fam:11s} workers {r['workers']} groups {r['length_groups']}: {r['targets_per_s']:7,.0f} "
                  f"targets/s ({r['speedup']:.2f}x), padding {100 * r['padding']:4.1f}%, "
                  f"epoch {r['epoch_s']:5.1f} s", flush=True)  # fmt: skip
    record = {"machine": machine(), "threads": threads, "steps": args.steps, "reps": args.reps,
              "rows": rows, "when": time.strftime("%Y-%m-%d %H:%M")}  # fmt: skip
    print("written", write_record("bench_length_groups", record))


if __name__ == "__main__":
    main()
