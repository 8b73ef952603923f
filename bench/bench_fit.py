"""Law fitting speed: a Performance-Law fit with 1000 bootstrap resamples, its decision, a 6-point fit.

Data: the Performance-Law grid (depth {4,8,12,16,24,32} x width {25,50,75,100}), metric generated
from known parameters (best depth 10.1, best width 47, NDCG-like values 0.23-0.28) plus noise 0.002.
Reference in the same run: the released Performance-Law procedure, scipy curve_fit (least squares,
p0 all ones) on the same points, timed once, with its in-sample R^2 and its predicted best
configuration. Interval coverage is measured by bench/fit_coverage.py.

    python bench/bench_fit.py
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import curve_fit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_record

from fitters import fit, make_law
from fitters.decisions import best_config, trust_region

GRID = np.array([(L, h) for L in (4, 8, 12, 16, 24, 32) for h in (25, 50, 75, 100)], dtype=float)
TRUTH = np.array([0.5, 2.0, -0.3, -0.18, 1.05])
SIX = np.array([(L, h) for L in (1, 2, 4) for h in (16, 32)], dtype=float)  # a 6-cell sweep
CAND = np.array([(L, h) for L in range(1, 65) for h in range(8, 201, 2)], dtype=float)
NATURAL = {"depth": (1.0, np.inf), "width": (1.0, np.inf)}


def curve_fit_reference(y: np.ndarray) -> tuple[np.ndarray | None, float]:
    law = make_law("performance", ["depth", "width"])

    def f(X, w1, w2, w3, w4, c):
        return law.predict(X.T, np.array([w1, w2, w3, w4, c]))

    try:
        theta, _ = curve_fit(f, GRID.T, y, p0=np.ones(5), maxfev=20000)
    except RuntimeError:
        return None, float("nan")
    pred = f(GRID.T, *theta)
    return theta, 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)


def timed(fn, reps: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()
    warnings.simplefilter("ignore")
    law = make_law("performance", y_range=(0, 1))
    rng = np.random.default_rng(0)
    y = law.predict(GRID, TRUTH) + rng.normal(0, 0.002, len(GRID))
    t_fit, res = timed(lambda: fit(law, GRID, y, bootstrap=1000, holdout=2))
    region = trust_region({"depth": (4, 32), "width": (25, 100)}, natural=NATURAL)
    t_dec, dec = timed(lambda: best_config(res, CAND, region, natural=NATURAL))
    y6 = law.predict(SIX, TRUTH) + rng.normal(0, 0.002, len(SIX))
    t_six, _ = timed(lambda: fit(law, SIX, y6, bootstrap=1000), reps=1)
    t0 = time.perf_counter()
    ref_theta, ref_r2 = curve_fit_reference(y)
    t_ref = time.perf_counter() - t0
    true_opt = law.optimum(TRUTH)
    ref_opt = law.optimum(ref_theta) if ref_theta is not None else {}
    print(f"fit with 1000 bootstrap resamples + hold-out: {t_fit:.2f} s (median of 3); R^2 {res.r2:.4f}")
    print(
        f"its decision over {len(CAND)} candidates x 1000 bootstrap fits: {t_dec:.2f} s: {dec.values} {dec.ci95}"
    )
    print(f"6-point fit with 1000 resamples: {t_six:.2f} s")
    print(f"reference curve_fit (one fit, p0 = ones, no intervals): {t_ref:.3f} s; R^2 {ref_r2:.4f}")
    print(f"best config: true {true_opt}, scalelab {dec.values}, curve_fit {ref_opt}")
    path = write_record(
        "bench_fit",
        {
            "command": "python bench/bench_fit.py",
            "fit_1000_bootstrap_s": t_fit,
            "decision_s": t_dec,
            "six_point_fit_1000_bootstrap_s": t_six,
            "reference_curve_fit_s": t_ref,
            "r2": res.r2,
            "reference_r2": ref_r2,
            "true_optimum": true_opt,
            "decision": dec.to_dict(),
            "reference_optimum": ref_opt,
            "machine": machine(),
        },
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()
