"""Approximate entropy of ML-1M (all 6,040 users, m = 2, r = 0.5, last 50 items per user).

scalelab's k-gram counting (O(n m)) against the definition computed the way the common libraries
do it (all pairs of templates, Chebyshev distance, O(n^2 m)), vectorised with numpy per user, in
the same run. Both must give the same per-user values (to 1e-9). Then the libraries people would
use, antropy and EntropyHub, on the same sequences in .venv-bench (`make bench-env`), stopped at a
deadline; and a 20M-interaction synthetic dataset (scalelab only where the libraries cannot finish).

    python bench/bench_apen.py [--reps 3] [--deadline 300] [--big 20000000]
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


def peers(ptr: np.ndarray, items: np.ndarray, ours: np.ndarray, deadline: float) -> dict:
    """antropy's and EntropyHub's per-user ApEn of the same sequences, with the largest difference
    from scalelab's over the users each finished (EntropyHub: users of more than 10 items)."""
    import json
    import subprocess
    import tempfile

    from common import ROOT

    py = ROOT / ".venv-bench" / "bin" / "python"
    if not py.exists():
        return {"skipped": f"{py} missing: run `make bench-env`"}
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(f"{tmp}/seqs.npz", ptr=ptr, items=items)
        out = subprocess.run(
            [str(py), str(ROOT / "bench" / "apen_peers.py"), f"{tmp}/seqs.npz", f"{tmp}/v", str(M), str(R), str(deadline)],
            capture_output=True, text=True,
        )  # fmt: skip
        if out.returncode != 0:
            return {"failed": out.stderr.strip().splitlines()[-1]}
        report = json.loads(out.stdout.strip().splitlines()[-1])
        for name in ("antropy", "entropyhub"):
            vals = np.load(f"{tmp}/v_{name}.npy")
            both = ~np.isnan(vals) & ~np.isnan(ours)
            report[name]["users_compared"] = int(both.sum())
            report[name]["max_abs_diff_vs_scalelab"] = (
                float(np.abs(vals[both] - ours[both]).max()) if both.any() else None
            )
            r = report[name]
            print(f"per-user ApEn, {name:10s}      : {r['seconds']:.1f} s for {r['users_done']:,}/{r['users']:,} users, "
                  f"max |diff| vs scalelab {r['max_abs_diff_vs_scalelab']} over {r['users_compared']:,}")  # fmt: skip
    return report


def synthetic_big(n: int, reps: int, deadline: float) -> dict:
    """scalelab's per-user and pooled ApEn of an n-interaction synthetic dataset; the libraries on it
    until the deadline (they are per-series loops, so the share they finish extrapolates their time)."""
    from scalelab.config import SyntheticConfig
    from scalelab.data.synthetic import generate_interactions

    users = n // 50
    df = generate_interactions(SyntheticConfig(num_users=users, num_items=100_000, mean_seq_len=50, seed=0))
    items = df["item"].to_numpy()
    ptr = np.r_[0, np.cumsum(np.bincount(df["user"].to_numpy() - 1, minlength=users))]
    t_user = median_time(lambda: apen_per_user(ptr, items, M, None), reps)
    t_pool = median_time(lambda: apen_pooled(ptr, items, M, None), reps)
    print(f"{len(items):,} synthetic interactions: scalelab per-user {t_user:.1f} s, pooled {t_pool:.1f} s")
    vals = apen_per_user(ptr, items, M, None)
    lib = peers(ptr, items, vals, deadline)
    for name in ("antropy", "entropyhub"):
        if name in lib and lib[name]["users_done"]:
            r = lib[name]
            r["extrapolated_full_s"] = r["seconds"] * r["users"] / r["users_done"]
    return {
        "interactions": len(items),
        "users": users,
        "scalelab_per_user_s": t_user,
        "scalelab_pooled_s": t_pool,
        "libraries": lib,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--deadline", type=float, default=300.0, help="seconds per library and dataset")
    ap.add_argument("--big", type=int, default=20_000_000, help="interactions of the synthetic dataset")
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
    cut = [s for s in seqs]
    lib_ml1m = peers(
        np.r_[0, np.cumsum([len(s) for s in cut])], np.concatenate(cut), ours["v"], args.deadline
    )
    big = synthetic_big(args.big, args.reps, args.deadline)
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
            "libraries_ml1m": lib_ml1m,
            "synthetic_big": big,
            "machine": machine(),
        },
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()
