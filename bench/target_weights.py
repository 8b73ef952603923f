"""How much of the gradient each user's targets carry, with shuffled and with length-bucketed batches.

With `train.target_weights: batch` a step's loss is the mean over its batch's targets, so a target
weighs 1 / (targets in its batch). Shuffled batches mix short and long users and every target weighs
about the same; length-bucketed batches (`train.bucket_pool`) put short users together, and their
targets weigh more. This counts it on a real dataset over a few epochs of the trainer's own batch
orders (`_batches`): the share of all target weight that users with at most `--short` training
targets carry, against their share of the targets (what `uniform` weights give them).

    python bench/target_weights.py [--data ../shared/datasets/ml-1m/interactions.tsv.gz] [--max-seq-len 200]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, ml1m_path

from scalelab.config import load_config
from scalelab.data.loader import load_dataset
from scalelab.data.split import make_split
from scalelab.training.batches import train_set
from scalelab.training.trainer import _batches


def shares(lengths: torch.Tensor, batch: int, pool: int | None, short: int, epochs: int) -> dict[str, float]:
    targets = (lengths - 1).numpy().astype(float)
    weight = np.zeros_like(targets)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for rows in _batches(torch.randperm(len(lengths), generator=gen), lengths, batch, pool, gen):
            r = rows.numpy()
            weight[r] += targets[r] / targets[r].sum()
    weight /= weight.sum()
    is_short = targets <= short
    w, t = float(weight[is_short].sum()), float(targets[is_short].sum() / targets.sum())
    return {"short_users": float(is_short.mean()), "target_share": t, "weight_share": w,
            "per_target_ratio": (w / t) / ((1 - w) / (1 - t))}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="interactions file (default: ML-1M in ../shared)")
    ap.add_argument("--max-seq-len", type=int, default=200)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--pool", type=int, default=50)
    ap.add_argument("--short", type=int, default=50, help="users with at most this many training targets")
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    path = args.data or str(ml1m_path())
    cfg = load_config(None, [f"data.path={path}", "data.split=leave_one_out", "data.min_seq_len=2",
                             f"data.max_seq_len={args.max_seq_len}"])  # fmt: skip
    data = load_dataset(cfg.data)
    lengths = train_set(make_split(data, cfg.data.split, cfg.data.max_seq_len)).lengths
    out = {"data": path, "max_seq_len": args.max_seq_len, "batch": args.batch, "short": args.short}
    for name, pool in (("shuffled", None), (f"bucketed (pool {args.pool})", args.pool)):
        s = shares(lengths, args.batch, pool, args.short, args.epochs)
        out[name] = s
        print(f"{name:20s} users with <= {args.short} targets ({s['short_users']:.0%} of users): "
              f"{s['weight_share']:.1%} of the gradient weight, {s['target_share']:.1%} of the targets "
              f"(a target weighs {s['per_target_ratio']:.2f}x a longer user's)")  # fmt: skip
    rec = ROOT / "results" / "reference" / "target_weights.json"
    rec.write_text(json.dumps(out, indent=1))
    print("written", rec)


if __name__ == "__main__":
    main()
