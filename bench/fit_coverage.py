"""Coverage of the 95% intervals on synthetic truth: parameters and decisions, per law and method.

For each law, noise level and grid (a full grid and a sparse one), `--seeds` noisy tables are drawn
from known parameters; each is fitted with each interval method and we count how often the 95%
interval holds the truth: every fitted parameter, and the decision (the best depth and width of the
Performance Law, N_opt at a compute budget for Chinchilla, the prediction at 2x the largest size for
the power law). Target: 90-97%. A stability check refits one table with 500 and 2000 resamples.

    .venv/bin/python bench/fit_coverage.py                 # 20 seeds, writes results/reference/fit_coverage.json
    .venv/bin/python bench/fit_coverage.py --seeds 5 --boot 100 --laws power   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from fitters import fit, make_law
from fitters.decisions import allocation, best_config, trust_region

ROOT = Path(__file__).resolve().parents[1]

# Performance Law: best depth 2^(1/0.3) = 10.1, best width 2^(1/0.18) = 47; NDCG-like values 0.23-0.28
PERF_TRUE = np.array([0.5, 2.0, -0.3, -0.18, 1.05])
PERF_FULL = np.array([(L, h) for L in (4, 8, 12, 16, 24, 32) for h in (25, 50, 75, 100)], dtype=float)
PERF_SPARSE = np.array([(L, h) for L in (4, 8, 16, 32) for h in (25, 50, 100)], dtype=float)
PERF_CAND = np.array([(L, h) for L in range(1, 65) for h in range(8, 201, 2)], dtype=float)
NATURAL = {"depth": (1.0, np.inf), "width": (1.0, np.inf)}

# power law on a rising metric: y = 0.35 - 2 x^-0.3, x = non-embedding params 1e3..1e6 (NDCG 0.10-0.32)
POWER_TRUE = np.array([0.35, np.log(2.0), 0.3])
POWER_FULL = np.geomspace(1e3, 1e6, 8)[:, None]
POWER_SPARSE = np.geomspace(1e3, 1e6, 5)[:, None]

# Chinchilla on a loss (Hoffmann et al.'s fitted values), N 1e5..1e8 x D 1e6..1e9
CHIN_TRUE = np.array([np.log(1.69), np.log(406.4), 0.34, np.log(410.7), 0.28])
CHIN_FULL = np.stack([np.repeat(np.geomspace(1e5, 1e8, 5), 4), np.tile(np.geomspace(1e6, 1e9, 4), 5)], axis=1)
CHIN_SPARSE = np.stack(
    [np.repeat(np.geomspace(1e5, 1e8, 3), 3), np.tile(np.geomspace(1e6, 1e9, 3), 3)], axis=1
)
CHIN_COMPUTE = 6 * 1e7 * 1e8  # N_opt inside the measured range


def case(law_name: str, grid: str) -> tuple:
    if law_name == "performance":
        return (
            make_law("performance", y_range=(0, 1)),
            PERF_TRUE,
            PERF_FULL if grid == "full" else PERF_SPARSE,
        )
    if law_name == "power":
        law = make_law("power", ["params"], direction="rising", y_range=(0, 1))
        return law, POWER_TRUE, POWER_FULL if grid == "full" else POWER_SPARSE
    return make_law("chinchilla"), CHIN_TRUE, CHIN_FULL if grid == "full" else CHIN_SPARSE


def draw(law, theta, X, sigma, rng) -> np.ndarray:
    y = law.predict(X, theta)
    return (
        y * np.exp(rng.normal(0, sigma, len(y))) if law.space == "log" else y + rng.normal(0, sigma, len(y))
    )


def decision_hit(law_name: str, res, theta_true: np.ndarray, X: np.ndarray) -> bool | None:
    """Whether the decision's 95% interval holds the true decision."""
    law = res.law
    if law_name == "performance":
        measured = {v: (X[:, j].min(), X[:, j].max()) for j, v in enumerate(law.variables)}
        region = trust_region(measured, natural=NATURAL)
        dec = best_config(res, PERF_CAND, region, natural=NATURAL)
        truth = best_config(_exact(res, theta_true), PERF_CAND, region, natural=NATURAL).values
        return all(dec.ci95[v][0] <= truth[v] <= dec.ci95[v][1] for v in ("depth", "width"))
    if law_name == "chinchilla":
        measured = {v: (X[:, j].min(), X[:, j].max()) for j, v in enumerate(law.variables)}
        region = trust_region(measured)
        dec = allocation(res, CHIN_COMPUTE, region)
        truth = allocation(_exact(res, theta_true), CHIN_COMPUTE, region).values
        lo, hi = dec.ci95["params"]
        return bool(lo <= truth["params"] <= hi)
    x_new = np.array([[2 * X[:, 0].max()]])
    lo, hi = res.predict_interval(x_new)
    return bool(lo[0] <= law.predict(x_new, theta_true)[0] <= hi[0])


def _exact(res, theta):
    """A FitResult-like view of the true parameters (no bootstrap)."""
    from fitters.base import FitResult

    return FitResult(res.law, theta, 0.0, True, res.n_points, 1.0, 0.0)


def run_case(law_name, grid, sigma, method, seeds, boot) -> dict:
    law, theta, X = case(law_name, grid)
    # independent draws for every law, grid and noise level (the same draws scaled by sigma would
    # make the noise levels of a nearly linear law repeat one another)
    rng = np.random.default_rng(
        [
            12345,
            ("power", "chinchilla", "performance").index(law_name),
            int(grid == "sparse"),
            int(sigma * 1e6),
        ]
    )
    hits = np.zeros(len(theta))
    dec_hits, n_ci, t0 = 0, np.zeros(len(theta)), time.perf_counter()
    widths = []
    for s in range(seeds):
        y = draw(law, theta, X, sigma, rng)
        res = fit(law, X, y, bootstrap=boot, seed=s, method=method)
        for j, p in enumerate(law.params):
            if p.name in res.ci:
                lo, hi = res.ci[p.name]
                hits[j] += lo <= theta[j] <= hi
                n_ci[j] += 1
        dec_hits += bool(decision_hit(law_name, res, theta, X))
        widths.append(
            [res.ci[p.name][1] - res.ci[p.name][0] if p.name in res.ci else np.nan for p in law.params]
        )
    cov = {p.name: (hits[j] / n_ci[j] if n_ci[j] else None) for j, p in enumerate(law.params)}
    return {
        "law": law_name,
        "grid": grid,
        "points": len(X),
        "noise": sigma,
        "method": method,
        "seeds": seeds,
        "resamples": boot,
        "coverage": cov,
        "decision_coverage": dec_hits / seeds,
        "median_width": {
            p.name: float(np.nanmedian(np.array(widths)[:, j])) for j, p in enumerate(law.params)
        },
        "seconds": time.perf_counter() - t0,
    }


def stability(law_name: str, sigma: float, method: str) -> dict:
    law, theta, X = case(law_name, "full")
    y = draw(law, theta, X, sigma, np.random.default_rng(7))
    a = fit(law, X, y, bootstrap=500, seed=1, method=method)
    b = fit(law, X, y, bootstrap=2000, seed=2, method=method)
    rel = {}
    for k in a.ci:
        w = max(b.ci[k][1] - b.ci[k][0], 1e-12)
        rel[k] = max(abs(a.ci[k][0] - b.ci[k][0]), abs(a.ci[k][1] - b.ci[k][1])) / w
    return {"law": law_name, "noise": sigma, "method": method, "max_endpoint_shift_rel_width": rel}


def to_markdown(data: dict) -> str:
    """The coverage table and the stability check as Markdown (for results/reference/fit.md)."""
    md = [
        "| law | method | grid (points) | noise | parameters: coverage of the 95% interval | decision |",
        "|---|---|---|---|---|---|",
    ]
    for r in data["cases"]:
        cov = ", ".join(f"{k} {v:.0%}" for k, v in r["coverage"].items() if v is not None)
        md.append(
            f"| {r['law']} | {r['method']} | {r['grid']} ({r['points']}) | {r['noise']:g} | {cov} | "
            f"{r['decision_coverage']:.0%} |"
        )
    md += ["", "| law | method | largest endpoint shift, 500 vs 2000 resamples (share of the interval width) |",
           "|---|---|---|"]  # fmt: skip
    for r in data["stability"]:
        shifts = ", ".join(f"{k} {v:.1%}" for k, v in r["max_endpoint_shift_rel_width"].items())
        md.append(f"| {r['law']} | {r['method']} | {shifts} |")
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--laws", nargs="+", default=["power", "chinchilla", "performance"])
    ap.add_argument("--methods", nargs="+", default=["residual", "case"])
    ap.add_argument("--noise", nargs="+", type=float, default=[0.001, 0.003, 0.01])
    ap.add_argument("--out", default=str(ROOT / "results" / "reference" / "fit_coverage.json"))
    ap.add_argument("--render", metavar="JSON", help="print the Markdown tables of a finished run and stop")
    args = ap.parse_args()
    if args.render:
        print(to_markdown(json.loads(Path(args.render).read_text())))
        return
    rows, stab = [], []
    for law_name in args.laws:
        for method in args.methods:
            settings = [("full", s) for s in args.noise] + [("sparse", 0.003)]
            for grid, sigma in settings:
                r = run_case(law_name, grid, sigma, method, args.seeds, args.boot)
                rows.append(r)
                cov = ", ".join(f"{k} {v:.0%}" for k, v in r["coverage"].items() if v is not None)
                print(f"{law_name:11s} {method:8s} {grid:6s} noise {sigma:<6g} {cov}; decision "
                      f"{r['decision_coverage']:.0%} ({r['seconds']:.0f} s)", flush=True)  # fmt: skip
            stab.append(stability(law_name, 0.003, method))
            print("  stability 500 vs 2000 resamples:", stab[-1]["max_endpoint_shift_rel_width"], flush=True)
    data = {"cases": rows, "stability": stab, "machine_load_1_5_15": list(os.getloadavg())}
    Path(args.out).write_text(json.dumps(data, indent=2))
    print(to_markdown(data))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
