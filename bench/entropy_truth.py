"""The data-quality term against known truth, on the shared datasets, and its speed.

1. Markov chains of known order and entropy rate (several catalogue sizes and sequence lengths):
   the Chao-Shen conditional entropy, the plug-in and Miller-Madow values on the same templates, and
   the pooled ApEn, each as relative error against the true rate; coverage and whether it is flagged.
2. The shared datasets: every m = 0..2 (last 50 items per user), the chosen m, ApEn beside it.
3. Speed on ML-1M (all users, last 50, m = 2): the new estimate against the pooled ApEn, same run.

    .venv/bin/python bench/entropy_truth.py     # -> results/reference/entropy.json and a table
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from common import machine  # noqa: E402
from test_cond_entropy import markov_users  # noqa: E402

from scalelab.config import DataConfig  # noqa: E402
from scalelab.data.cond_entropy import MIN_COVERAGE, choose_m, conditional_entropy  # noqa: E402
from scalelab.data.entropy import apen_pooled, apen_summary  # noqa: E402
from scalelab.data.loader import load_dataset  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"
DATASETS = {
    "ML-100K": "ml-100k/u.data",
    "ML-1M": "ml-1m/interactions.tsv.gz",
    "Amazon Beauty": "amazon-beauty/interactions.tsv.gz",
    "Amazon Games": "amazon-games/interactions.tsv.gz",
}
# (items, order, Dirichlet alpha, users, mean length)
CASES = [
    (20, 1, 0.5, 300, 10), (20, 1, 0.5, 1500, 20), (100, 1, 0.3, 300, 8), (100, 1, 0.3, 2000, 30),
    (100, 1, 0.3, 20000, 30), (500, 1, 0.02, 4000, 8), (1000, 1, 0.05, 1500, 6), (1000, 1, 0.05, 20000, 6),
    (2000, 1, 0.05, 20000, 6), (10, 2, 0.5, 300, 8), (10, 2, 0.5, 2000, 20), (30, 2, 0.1, 2000, 8),
    (30, 2, 0.1, 20000, 8),
]  # fmt: skip


def truth_table() -> list[dict]:
    rows = []
    for k, order, alpha, users, mean_len in CASES:
        ptr, items, rate = markov_users(k, order, alpha, users, mean_len, seed=k + order + users)
        e = conditional_entropy(ptr, items, m=order)
        ap = apen_pooled(ptr, items, m=order)
        rows.append(
            {
                "items": k, "order": order, "alpha": alpha, "users": users, "mean_len": mean_len,
                "pairs": e.pairs, "truth": rate, "chao_shen": e.value, "plug_in": e.plug_in,
                "miller_madow": e.miller_madow, "apen_pooled": ap, "coverage": e.coverage,
                "flagged": not e.reliable, "rel_err": e.value / rate - 1, "rel_err_plug_in": e.plug_in / rate - 1,
                "rel_err_apen": ap / rate - 1,
            }
        )  # fmt: skip
    return rows


def datasets() -> list[dict]:
    rows = []
    for name, rel in DATASETS.items():
        path = SHARED / rel
        if not path.exists():
            continue
        data = load_dataset(DataConfig(path=str(path)))
        chosen, tried = choose_m(data.ptr, data.items, m_max=2, last=50)
        a = apen_summary(data.ptr, data.items, m=2, last=50)
        rows.append(
            {
                "dataset": name, "users": data.num_users, "items": data.num_items, "chosen_m": chosen.m,
                "value": chosen.value, "apen_m2_pooled": a.pooled, "apen_m2_per_user": a.per_user_mean,
                "by_m": [{"m": e.m, "value": e.value, "plug_in": e.plug_in, "coverage": e.coverage,
                          "singleton_contexts": e.singleton_contexts, "flagged": not e.reliable} for e in tried],
            }
        )  # fmt: skip
    return rows


def speed() -> dict:
    data = load_dataset(DataConfig(path=str(SHARED / DATASETS["ML-1M"])))

    def best_of(fn, n: int = 5) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    t_new = best_of(lambda: conditional_entropy(data.ptr, data.items, m=2, last=50))
    t_apen = best_of(lambda: apen_pooled(data.ptr, data.items, m=2, last=50))
    return {"conditional_entropy_s": t_new, "apen_pooled_s": t_apen, "ratio": t_new / t_apen}


def main() -> None:
    truth = truth_table()
    print(
        f"{'case':34s} {'pairs':>8s} {'truth':>6s} {'CS':>7s} {'plug-in':>8s} {'ApEn':>7s} {'cov':>5s} flag"
    )
    for r in truth:
        case = f"K={r['items']} order {r['order']} {r['users']} users len {r['mean_len']}"
        print(
            f"{case:34s} {r['pairs']:8d} {r['truth']:6.3f} {r['rel_err']:+7.1%} {r['rel_err_plug_in']:+8.1%} "
            f"{r['rel_err_apen']:+7.1%} {r['coverage']:5.2f} {'yes' if r['flagged'] else ''}"
        )
    covered = [r for r in truth if not r["flagged"]]
    print(
        f"unflagged (coverage >= {MIN_COVERAGE}): {len(covered)} of {len(truth)}, max |error| "
        f"{max(abs(r['rel_err']) for r in covered):.1%}"
    )
    ds = datasets()
    for d in ds:
        print(d["dataset"], "chosen m", d["chosen_m"], f"{d['value']:.4f}", "apen", f"{d['apen_m2_pooled']:.4f}",
              [(e["m"], round(e["value"], 4), round(e["coverage"], 2)) for e in d["by_m"]])  # fmt: skip
    sp = speed()
    print(f"ML-1M, m=2, last 50: conditional entropy {sp['conditional_entropy_s']:.3f} s, pooled ApEn "
          f"{sp['apen_pooled_s']:.3f} s (ratio {sp['ratio']:.2f})")  # fmt: skip
    out = ROOT / "results" / "reference" / "entropy.json"
    out.write_text(
        json.dumps({"truth": truth, "datasets": ds, "speed": sp, "machine": machine()}, indent=2) + "\n"
    )
    print(f"-> {out}")


if __name__ == "__main__":
    main()
