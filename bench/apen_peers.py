"""Per-user ApEn(m, r) with antropy and EntropyHub (run by bench_apen.py in .venv-bench).

Reads an .npz with `ptr` and `items` (one user's sequence = items[ptr[u]:ptr[u+1]], already cut to
the last items), computes every user's ApEn with both libraries on the same sequences (EntropyHub
refuses series of 10 or fewer points: NaN there) and prints one JSON line with timings and values
(written to OUT.npy). Stops a library at the deadline and reports how many users it finished.

    .venv-bench/bin/python bench/apen_peers.py SEQS.npz OUT_PREFIX M R DEADLINE_S
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np


def main() -> None:
    path, out, m, r, deadline = (
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        float(sys.argv[4]),
        float(sys.argv[5]),
    )
    z = np.load(path)
    ptr, items = z["ptr"], z["items"].astype(float)
    import antropy
    import EntropyHub

    def ant(s: np.ndarray) -> float:
        return float(antropy.app_entropy(s, order=m, tolerance=r)) if len(s) > m else np.nan

    def eh(s: np.ndarray) -> float:
        return float(EntropyHub.ApEn(s, m=m, r=r)[0][m]) if len(s) > 10 else np.nan

    report = {}
    warnings.simplefilter("ignore")
    for name, fn in (("antropy", ant), ("entropyhub", eh)):
        vals = np.full(len(ptr) - 1, np.nan)
        t0, done = time.perf_counter(), 0
        for u in range(len(ptr) - 1):
            vals[u] = fn(items[ptr[u] : ptr[u + 1]])
            done += 1
            if time.perf_counter() - t0 > deadline:
                break
        report[name] = {"seconds": time.perf_counter() - t0, "users_done": done, "users": len(ptr) - 1}
        np.save(f"{out}_{name}.npy", vals)
    report["versions"] = {
        "antropy": antropy.__version__,
        "entropyhub": getattr(EntropyHub, "__version__", "?"),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
