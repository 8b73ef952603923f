"""Approximate entropy of ML-1M (all 6,040 users, m = 2, r = 0.5, last 50 items per user).

scalelab's k-gram counting (O(n m)) against the definition computed the way the common libraries
do it (all pairs of templates, Chebyshev distance, O(n^2 m)), vectorised with numpy per user, in
the same run. Both must give the same per-user values (to 1e-9).

    python bench/bench_apen.py [--reps 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_time, ml1m_path, write_record

from scalelab.config import DataConfig
from scalelab.data.entropy import apen_per_user, apen_pooled
from scalelab.data.loader import load_dataset

M, R, LAST = 2, 0.5, 50


def pairwise_apen(u: np.ndarray, m: int, r: float) -> float:
    """Pincus ApEn from the all-pairs template distance matrix (the libraries' algorithm)."""

    def phi(k: int) -> float:
        t = np.lib.stride_tricks.sliding_window_view(u, k).astype(float)  # (n-k+1, k)
        d = np.abs(t[:, None, :] - t[None, :, :]).max(-1)  # Chebyshev
        c = (d <= r).mean(1)
        return float(np.log(c).mean())

    return phi(m) - phi(m + 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    data = load_dataset(DataConfig(path=str(ml1m_path())))
    ptr, items = data.ptr, data.items
    seqs = [items[ptr[u] : ptr[u + 1]][-LAST:] for u in range(data.num_users)]

    ours: dict[str, np.ndarray] = {}
    t_ours = median_time(lambda: ours.__setitem__("v", apen_per_user(ptr, items, M, LAST)), args.reps)
    t_pooled = median_time(lambda: apen_pooled(ptr, items, M, LAST), args.reps)
    ref: dict[str, np.ndarray] = {}
    t_ref = median_time(
        lambda: ref.__setitem__("v", np.array([pairwise_apen(s, M, R) for s in seqs])), args.reps
    )
    diff = float(np.nanmax(np.abs(ours["v"] - ref["v"])))
    print(f"per-user ApEn, scalelab k-grams : {t_ours:.3f} s  (mean {np.nanmean(ours['v']):.4f})")
    print(
        f"per-user ApEn, all-pairs numpy  : {t_ref:.3f} s  (speed-up {t_ref / t_ours:.1f}x, max |diff| {diff:.1e})"
    )
    print(f"pooled ApEn, scalelab           : {t_pooled:.3f} s  ({apen_pooled(ptr, items, M, LAST):.4f})")
    if diff > 1e-9:
        raise SystemExit("values disagree")
    path = write_record(
        "bench_apen",
        {
            "command": "python bench/bench_apen.py",
            "dataset": "ml-1m (6,040 users)",
            "m": M,
            "r": R,
            "last": LAST,
            "scalelab_per_user_s": t_ours,
            "scalelab_pooled_s": t_pooled,
            "reference_all_pairs_s": t_ref,
            "speedup": t_ref / t_ours,
            "max_abs_diff": diff,
            "per_user_mean": float(np.nanmean(ours["v"])),
            "pooled": float(apen_pooled(ptr, items, M, LAST)),
            "machine": machine(),
        },
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()
