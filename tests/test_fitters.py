"""Law recovery, interval coverage, start independence and bad input for the fitting engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fitters import fit, make_law
from fitters.table import select

GRID = np.array([(L, h) for L in (4, 8, 12, 16, 24, 32) for h in (25, 50, 75, 100)], dtype=float)
# an identifiable truth: the best depth (2^(1/0.3) = 10.1) and width (2^(1/0.18) = 47) lie inside the
# grid and the surface spans 0.05 of the metric (noise 0.002 in the tests)
PERF_TRUE = np.array([0.5, 2.0, -0.3, -0.18, 0.3])


def noisy(law, X, theta, sigma, rng, log=False):
    y = law.predict(X, theta)
    return y * np.exp(rng.normal(0, sigma, len(y))) if log else y + rng.normal(0, sigma, len(y))


def coverage(
    law_factory, X, theta, sigma, reps, boots, log=False, method="residual"
) -> tuple[float, list[dict]]:
    rng = np.random.default_rng(0)
    inside, results = 0, []
    for r in range(reps):
        law = law_factory()
        y = noisy(law, X, theta, sigma, rng, log)
        res = fit(law, X, y, bootstrap=boots, seed=r, method=method)
        lo = np.array([res.ci[p.name][0] for p in law.params])
        hi = np.array([res.ci[p.name][1] for p in law.params])
        inside += int(np.all((theta >= lo) & (theta <= hi)))
        results.append({"theta": res.theta, "optimum": law.optimum(res.theta)})
    return inside / reps, results


def test_power_law_recovery_and_coverage() -> None:
    x = np.geomspace(1e3, 1e6, 10)[:, None]
    truth = np.array([1.5, np.log(30.0), 0.3])
    cov, results = coverage(
        lambda: make_law("power", ["N"], direction="falling"), x, truth, 0.01, 12, 100, log=True
    )
    assert cov >= 0.7, cov  # every parameter inside its 95% interval jointly, in most repetitions
    est = np.median([r["theta"] for r in results], axis=0)
    assert np.allclose(est, truth, rtol=0.1)


def test_performance_law_recovery_coverage_and_optimum() -> None:
    law = make_law("performance", ["depth", "width"])
    cov, results = coverage(
        lambda: make_law("performance", ["depth", "width"]), GRID, PERF_TRUE, 0.002, 8, 60, method="case"
    )
    assert cov >= 0.6, cov
    true_opt = law.optimum(PERF_TRUE)
    assert true_opt == pytest.approx({"depth": 2 ** (1 / 0.3), "width": 2 ** (1 / 0.18)})
    depth_opt = np.median([r["optimum"]["depth"] for r in results])
    width_opt = np.median([r["optimum"]["width"] for r in results])
    assert depth_opt == pytest.approx(true_opt["depth"], rel=0.1)
    assert width_opt == pytest.approx(true_opt["width"], rel=0.1)


def test_chinchilla_recovery_and_allocation() -> None:
    rng = np.random.default_rng(3)
    N = np.repeat(np.geomspace(1e5, 1e8, 5), 4)
    D = np.tile(np.geomspace(1e6, 1e9, 4), 5)
    X = np.stack([N, D], axis=1)
    law = make_law("chinchilla")
    truth = np.array([np.log(1.7), np.log(406.4), 0.34, np.log(410.7), 0.28])
    y = noisy(law, X, truth, 0.003, rng, log=True)
    res = fit(law, X, y, bootstrap=100)
    assert np.allclose(res.theta[[2, 4]], truth[[2, 4]], atol=0.03)
    want = law.allocation(truth, 1e21)
    got = law.allocation(res.theta, 1e21)
    assert got["N_opt"] == pytest.approx(want["N_opt"], rel=0.5)
    assert got["N_opt"] * got["D_opt"] == pytest.approx(1e21 / 6)


def test_result_does_not_depend_on_which_start_wins() -> None:
    rng = np.random.default_rng(1)
    law = make_law("performance", ["depth", "width"])
    y = noisy(law, GRID, PERF_TRUE, 0.002, rng)
    full = fit(law, GRID, y, bootstrap=0, refine=16)
    few = fit(make_law("performance", ["depth", "width"]), GRID, y, bootstrap=0, refine=2)
    shuffled_law = make_law("performance", ["depth", "width"])
    base_starts = shuffled_law.starts
    shuffled_law.starts = lambda X, yy: list(reversed(base_starts(X, yy)))  # type: ignore[method-assign]
    rev = fit(shuffled_law, GRID, y, bootstrap=0, refine=8)
    for other in (few, rev):
        assert other.loss == pytest.approx(full.loss, rel=1e-6, abs=1e-12)
        assert np.allclose(
            other.law.predict(GRID, other.theta), full.law.predict(GRID, full.theta), atol=1e-6
        )


def test_holdout_reports_extrapolation_error_and_best_config() -> None:
    rng = np.random.default_rng(2)
    law = make_law("performance", ["depth", "width"])
    y = noisy(law, GRID, PERF_TRUE, 0.001, rng)
    res = fit(law, GRID, y, bootstrap=0, holdout=1, size=GRID[:, 0] * GRID[:, 1] ** 2)
    h = res.holdout
    assert h["held_out"] == 1 and h["fitted_on"] == 23
    assert h["mean_rel_error"] < 0.05
    assert h["best_config_measured"] == list(GRID[np.argmax(y)])


def test_warnings_and_bad_input() -> None:
    law = make_law("performance", ["depth", "width"])
    with pytest.raises(ValueError, match="cannot determine the 5 parameters"):
        fit(law, GRID[:4], np.ones(4), bootstrap=0)
    with pytest.raises(ValueError, match="unknown law"):
        make_law("nope", ["x"])
    with pytest.raises(ValueError, match="positive values"):
        fit(make_law("power", ["N"], direction="falling"), np.array([[1.0], [2.0], [3.0], [4.0]]),
            np.array([1.0, -1.0, 0.5, 0.2]), bootstrap=0)  # fmt: skip
    # an optimum outside the measured range is flagged
    y = law.predict(GRID, np.array([0.5, 2.0, -0.8, -0.18, 0.3]))  # best depth 2^(1/0.8) ~ 2.4 < 4
    res = fit(law, GRID, y, bootstrap=0)
    assert any("outside the measured range" in w and "depth" in w for w in res.warnings)


def test_table_selection_drops_non_finite_rows_with_a_count() -> None:
    t = pd.DataFrame({"depth": [1, 2, 4, 8], "width": [8, 8, 8, np.nan], "final_ndcg@10": [0.1, np.inf, 0.3, 0.2],
                      "status": ["finished"] * 4})  # fmt: skip
    with pytest.warns(UserWarning, match="dropped 2 row"):
        _X, y, _ = select(t, ["depth", "width"], "ndcg@10")
    assert len(y) == 2
    with pytest.raises(ValueError, match="no metric 'hr@10'"):
        select(t, ["depth", "width"], "hr@10")
