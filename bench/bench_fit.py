"""Law fitting: speed of a Performance-Law fit with 1000 bootstrap resamples, and the coverage of
its 95% intervals.

Data: the Performance-Law grid (depth {4,8,12,16,24,32} x width {25,50,75,100}), metric generated
from known parameters (best depth 10.1, best width 47, surface range 0.05) plus noise 0.002.
Reference in the same run: the released Performance-Law procedure, scipy curve_fit (least squares,
p0 all ones) on the same points, timed once, with its in-sample R^2 and its error in the predicted
best configuration.

    python bench/bench_fit.py [--reps 40]
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

GRID = np.array([(L, h) for L in (4, 8, 12, 16, 24, 32) for h in (25, 50, 75, 100)], dtype=float)
TRUTH = np.array([0.5, 2.0, -0.3, -0.18, 0.3])


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=40)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    law = make_law("performance", ["depth", "width"])
    rng = np.random.default_rng(0)
    y = law.predict(GRID, TRUTH) + rng.normal(0, 0.002, len(GRID))
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        res = fit(make_law("performance", ["depth", "width"]), GRID, y, bootstrap=1000, holdout=2)
        times.append(time.perf_counter() - t0)
    t_fit = float(np.median(times))
    t0 = time.perf_counter()
    ref_theta, ref_r2 = curve_fit_reference(y)
    t_ref = time.perf_counter() - t0
    true_opt = law.optimum(TRUTH)
    ours_opt = res.law.optimum(res.theta)
    ref_opt = law.optimum(ref_theta) if ref_theta is not None else {}
    print(f"fit with 1000 bootstrap resamples + hold-out: {t_fit:.2f} s (median of 3); R^2 {res.r2:.4f}")
    print(f"reference curve_fit (one fit, p0 = ones, no intervals): {t_ref:.3f} s; R^2 {ref_r2:.4f}")
    print(f"best config: true {true_opt}, scalelab {ours_opt}, curve_fit {ref_opt}")

    inside = np.zeros(len(TRUTH))
    joint = 0
    t0 = time.perf_counter()
    for r in range(args.reps):
        rr = np.random.default_rng(100 + r)
        yr = law.predict(GRID, TRUTH) + rr.normal(0, 0.002, len(GRID))
        fr = fit(make_law("performance", ["depth", "width"]), GRID, yr, bootstrap=200, seed=r)
        lo = np.array([fr.ci[p.name][0] for p in law.params])
        hi = np.array([fr.ci[p.name][1] for p in law.params])
        ok = (lo <= TRUTH) & (hi >= TRUTH)
        inside += ok
        joint += int(ok.all())
    cov = inside / args.reps
    print(
        f"coverage of the 95% intervals over {args.reps} noisy repetitions (200 resamples each): "
        + ", ".join(f"{p.name} {c:.0%}" for p, c in zip(law.params, cov, strict=True))
        + f"; all five at once {joint / args.reps:.0%} ({time.perf_counter() - t0:.0f} s)"
    )
    path = write_record(
        "bench_fit",
        {
            "command": "python bench/bench_fit.py",
            "fit_1000_bootstrap_s": t_fit,
            "reference_curve_fit_s": t_ref,
            "r2": res.r2,
            "reference_r2": ref_r2,
            "true_optimum": true_opt,
            "fitted_optimum": ours_opt,
            "reference_optimum": ref_opt,
            "coverage": {p.name: float(c) for p, c in zip(law.params, cov, strict=True)},
            "joint_coverage": joint / args.reps,
            "reps": args.reps,
            "machine": machine(),
        },
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()
