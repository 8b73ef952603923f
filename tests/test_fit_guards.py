"""Guards that refuse or warn, decisions with intervals, and laws as stateless plugins.

Each guard is triggered by a constructed table whose defect is known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fitters import LAWS, fit, make_law
from fitters.base import FitResult
from fitters.decisions import allocation, best_config, trust_region
from fitters.engine import _warnings, identifiable_mask

GRID = np.array([(L, h) for L in (4, 8, 12, 16, 24, 32) for h in (25, 50, 75, 100)], dtype=float)
PERF_TRUE = np.array([0.5, 2.0, -0.3, -0.18, 1.05])  # best depth 10.1, best width 47; NDCG 0.23-0.28
NATURAL = {"depth": (1.0, np.inf), "width": (1.0, np.inf)}
CAND = np.array([(L, h) for L in range(1, 65) for h in range(8, 201, 2)], dtype=float)


def perf_data(theta=PERF_TRUE, X=GRID, sigma=0.002, seed=0):
    law = make_law("performance", y_range=(0, 1))
    return law, X, law.predict(X, theta) + np.random.default_rng(seed).normal(0, sigma, len(X))


def region_of(X, names=("depth", "width"), trust=2.0):
    return trust_region({v: (X[:, j].min(), X[:, j].max()) for j, v in enumerate(names)}, trust, NATURAL)


# ------------------------------------------------------------------------------------ identifiability


def test_a_variable_with_fewer_than_three_values_fixes_its_parameters_without_interval() -> None:
    # Chinchilla where every run saw the same training tokens: b and beta cannot be identified
    N = np.geomspace(1e4, 1e6, 9)
    X = np.stack([N, np.full(9, 5e6)], axis=1)
    law = make_law("chinchilla")
    y = np.exp(0.5) + np.exp(3.0) * N**-0.3
    res = fit(law, X, y, bootstrap=30)
    ident = res.identifiable
    assert not ident["b"] and not ident["beta"] and ident["alpha"]
    assert "b" not in res.ci and "beta" not in res.ci and "alpha" in res.ci
    assert res.theta[3] == law.params[3].fixed and res.theta[4] == law.params[4].fixed  # B ~ 0: no D term
    assert any(
        "b, beta are not identifiable" in w and "train_tokens has 1 distinct" in w for w in res.warnings
    )
    assert res.params["alpha"] == pytest.approx(0.3, rel=1e-3)
    # ... and no compute allocation is offered from such a fit
    with pytest.raises(ValueError, match="not identifiable"):
        allocation(res, 1e12, trust_region({"params": (1e4, 1e6), "train_tokens": (5e6, 5e6)}))


def test_performance_law_with_two_depths_reports_the_depth_term_as_not_identifiable() -> None:
    X = np.array([(L, h) for L in (2, 4) for h in (16, 32, 64, 128)], dtype=float)
    law, _, y = perf_data(X=X, sigma=0.0)
    res = fit(law, X, y, bootstrap=20)
    assert not res.identifiable["w1"] and not res.identifiable["w3"]
    assert set(res.ci) == {"w2", "w4", "c"} and res.undetermined == ["depth"]
    # the shape is fixed, the weight still fitted: the measured gap between the two depths is kept
    assert res.theta[2] == law.params[2].fixed
    gap = lambda yy: yy[X[:, 0] == 4].mean() - yy[X[:, 0] == 2].mean()  # noqa: E731
    assert gap(res.predict(X)) == pytest.approx(gap(y), abs=1e-6)
    assert any("w1 still fitted to the difference between the two measured levels" in w for w in res.warnings)


def test_identifiable_mask_counts_distinct_values() -> None:
    law = make_law("performance", form="tied")
    X = np.array([[L, h, t, 0.5] for L in (1, 2, 4) for h in (8, 16, 32) for t in (1e5, 2e5)], dtype=float)
    fitted, identified, distinct = identifiable_mask(law, X)
    assert distinct == {"depth": 3, "width": 3, "tokens": 2, "entropy": 1}
    names = [p.name for p, f in zip(law.params, identified, strict=True) if not f]
    assert names == ["w5", "kappa", "lambda"]
    assert [p.name for p, f, i in zip(law.params, fitted, identified, strict=True) if f and not i] == [
        "kappa"
    ]


# -------------------------------------------------------------------------------- bounds and ranges


def test_bounded_metric_keeps_the_asymptote_in_range_and_warns_at_the_bound() -> None:
    # NDCG growing like log(size) with no sign of saturation: an unbounded power law puts E far above 1
    x = np.geomspace(1e3, 1e6, 6)
    y = 0.05 + 0.03 * np.log(x)
    free = fit(make_law("power", ["params"], direction="rising"), x[:, None], y, bootstrap=0)
    assert free.params["E"] > 1.0  # the failure the guard exists for
    res = fit(make_law("power", ["params"], direction="rising", y_range=(0, 1)), x[:, None], y, bootstrap=40)
    assert res.params["E"] <= 1.0
    assert any("E sits at its bound 1" in w for w in res.warnings)
    assert res.ci["E"][1] <= 1.0
    far = np.array([[1e12]])
    assert res.predict(far)[0] <= 1.0 and res.predict_interval(far)[1][0] <= 1.0


def test_chinchilla_on_a_metric_models_the_gap_to_the_ceiling() -> None:
    N = np.repeat(np.geomspace(1e4, 1e6, 4), 3)
    D = np.tile(np.geomspace(1e6, 1e8, 3), 4)
    X = np.stack([N, D], axis=1)
    law = make_law("chinchilla", direction="rising", y_range=(0, 1))
    truth = np.array([np.log(0.6), np.log(3.0), 0.3, np.log(4.0), 0.25])
    y = law.predict(X, truth)
    assert np.all((y > 0) & (y < 0.4))
    res = fit(law, X, y, bootstrap=0)
    assert np.allclose(res.theta[[2, 4]], truth[[2, 4]], atol=1e-3)
    assert law.higher_is_better and res.predict(np.array([[1e20, 1e20]]))[0] < 1.0


def test_an_interval_reaching_a_bound_is_flagged() -> None:
    x = np.geomspace(1e3, 1e6, 6)
    y = 0.05 + 0.03 * np.log(x)
    res = fit(make_law("power", ["params"], direction="rising", y_range=(0, 1)), x[:, None], y, bootstrap=40)
    assert any("bound 1" in w for w in res.warnings)


def test_an_exponent_known_only_within_a_wide_factor_is_flagged() -> None:
    """y = 0.35 - 2 x^-0.3: over three decades at noise 0.001 alpha is pinned down (no warning); over
    3x of x at noise 0.003 its interval spans ~100x and the fit says so."""
    law = make_law("power", ["params"], direction="rising", y_range=(0, 1))
    rng = np.random.default_rng(0)
    wide, narrow = np.geomspace(1e3, 1e6, 8), np.geomspace(1e4, 3e4, 6)
    res = fit(law, wide[:, None], 0.35 - 2 * wide**-0.3 + rng.normal(0, 0.001, 8), bootstrap=100)
    lo, hi = res.ci["alpha"]
    assert lo < 0.3 < hi < 1.1 * lo and not any("the exponent" in w for w in res.warnings)
    res = fit(law, narrow[:, None], 0.35 - 2 * narrow**-0.3 + rng.normal(0, 0.003, 6), bootstrap=100)
    lo, hi = res.ci["alpha"]
    assert hi > 10 * lo > 0
    assert any(w.startswith("the exponent alpha") and "known only within a factor" in w for w in res.warnings)


def test_a_prediction_band_far_wider_than_the_data_is_flagged() -> None:
    law, X, y = perf_data()
    res = fit(law, X, y, bootstrap=0)
    spread = np.tile(res.theta, (50, 1))
    spread[:, 0] = np.linspace(-40, 40, 50)  # resamples that disagree wildly on the depth weight
    res.bootstrap_thetas = spread
    ws = _warnings(res, X, y, {"depth": 6, "width": 4}, 5)
    assert any("wider than the spread of the measured values" in w for w in ws)
    res.bootstrap_thetas = np.tile(res.theta, (50, 1))
    assert not any("wider than" in w for w in _warnings(res, X, y, {"depth": 6, "width": 4}, 5))


# ---------------------------------------------------------------------------------- readings of a fit


def test_a_performance_term_with_w_below_zero_is_read_as_a_minimum() -> None:
    theta = np.array([-0.05, 2.0, -0.8, -0.18, 1.05])  # depth term: minimum at 2^(1/0.8) = 2.4
    X = np.array([(L, h) for L in (4, 8, 16, 32) for h in (25, 50, 75, 100)], dtype=float)
    law, _, y = perf_data(theta, X, sigma=0.0005)
    res = fit(law, X, y, bootstrap=0)
    assert res.params["w1"] < 0
    assert "depth" not in law.optimum(res.theta)
    assert any("depth term has a minimum" in w and "more depth helps throughout" in w for w in res.warnings)


def test_a_diverged_cell_is_listed_as_an_outlier() -> None:
    law, X, y = perf_data(sigma=0.001)
    y = y.copy()
    y[7] = 0.002  # a cell that diverged but was marked finished
    res = fit(law, X, y, bootstrap=0)
    assert res.outliers == [7]
    assert any("rows 7" in w for w in res.warnings)
    clean = fit(law, *perf_data(sigma=0.001)[1:], bootstrap=0)
    assert clean.outliers == []


def test_unconverged_cells_are_flagged_before_the_fit() -> None:
    from scalelab.fitting import FitJob, run_fit

    _law, X, y = perf_data()
    t = pd.DataFrame({"name": [f"c{i}" for i in range(len(y))], "depth": X[:, 0], "width": X[:, 1],
                      "final_ndcg@10": y, "status": "finished", "epochs_run": 20,
                      "best_epoch": [20 if i in (3, 5) else 12 for i in range(len(y))]})  # fmt: skip
    res, _rows, _ = run_fit(t, FitJob(law="performance", bootstrap=0, holdout=0))
    flagged = [w for w in res.warnings if "had not converged" in w]
    assert flagged and flagged[0].startswith("2 of 24 cells") and "c3, c5" in flagged[0]


# ------------------------------------------------------------------------------ decisions and trust


def test_best_config_interval_holds_the_truth_and_stays_in_the_trust_region() -> None:
    law, X, y = perf_data(sigma=0.001)
    res = fit(law, X, y, bootstrap=100)
    region = region_of(X)
    dec = best_config(res, CAND, region, natural=NATURAL)
    assert dec.status == "interior", dec.message
    exact = FitResult(res.law, PERF_TRUE, 0.0, True, len(y), 1.0, 0.0)
    truth = best_config(exact, CAND, region, natural=NATURAL).values  # the grid's best under the truth
    assert truth["depth"] == 10 and truth["width"] in (46, 48)
    for v in ("depth", "width"):
        assert dec.ci95[v][0] <= truth[v] <= dec.ci95[v][1]
    assert region["depth"][0] <= dec.values["depth"] <= region["depth"][1]


def test_an_optimum_beyond_the_trust_region_is_no_interior_optimum() -> None:
    theta = np.array([0.5, 2.0, -0.12, -0.18, 1.05])  # best depth 2^(1/0.12) = 322, far beyond 2 x 32
    law, X, y = perf_data(theta, sigma=0.0005)
    res = fit(law, X, y, bootstrap=40)
    dec = best_config(res, CAND, region_of(X), natural=NATURAL)
    assert dec.status == "edge" and not dec.is_optimum
    assert dec.directions == {"depth": "larger"}
    assert "no interior optimum" in dec.message and "larger depth" in dec.message


def test_an_optimum_near_the_edge_that_many_bootstrap_fits_put_on_it_is_provisional() -> None:
    """Widths 8-24 measured, so the trust region ends at 48, just past the true best width 47: the
    fitted best is interior, but a large share of the bootstrap fits put it on the edge, and the
    decision names that direction. On the paper's grid (widths 25-100) the best is well inside."""
    X = np.array([(L, h) for L in (4, 8, 12, 16, 24, 32) for h in (8, 12, 16, 24)], dtype=float)
    law, X, y = perf_data(X=X)
    dec = best_config(fit(law, X, y, bootstrap=200), CAND, region_of(X), natural=NATURAL)
    assert dec.status == "interior" and dec.edge_share >= 0.25, dec.message
    assert "most toward larger width: the optimum may lie beyond the trust region" in dec.message
    law, X, y = perf_data(sigma=0.001)
    dec = best_config(fit(law, X, y, bootstrap=100), CAND, region_of(X), natural=NATURAL)
    assert dec.edge_share < 0.25 and "may lie beyond" not in dec.message


def test_a_budget_that_binds_is_reported_as_such() -> None:
    law, X, y = perf_data(sigma=0.001)
    res = fit(law, X, y, bootstrap=20)
    feasible = CAND[:, 0] * CAND[:, 1] ** 2 <= 4 * 25**2  # only tiny models
    dec = best_config(res, CAND, region_of(X), feasible=feasible, natural=NATURAL)
    assert dec.status == "budget"
    assert dec.values["depth"] * dec.values["width"] ** 2 <= 4 * 25**2


def test_compute_optimal_allocation_with_interval_matches_the_closed_form() -> None:
    rng = np.random.default_rng(3)
    N = np.repeat(np.geomspace(1e5, 1e8, 5), 4)
    D = np.tile(np.geomspace(1e6, 1e9, 4), 5)
    X = np.stack([N, D], axis=1)
    law = make_law("chinchilla")
    truth = np.array([np.log(1.69), np.log(406.4), 0.34, np.log(410.7), 0.28])
    y = law.predict(X, truth) * np.exp(rng.normal(0, 0.002, len(N)))
    res = fit(law, X, y, bootstrap=60)
    C = 6 * 1e7 * 1e8
    dec = allocation(res, C, trust_region({"params": (1e5, 1e8), "train_tokens": (1e6, 1e9)}), points=800)
    closed = law.allocation(res.theta, C)
    assert dec.status == "interior"
    assert dec.values["params"] == pytest.approx(closed["N_opt"], rel=0.02)
    lo, hi = dec.ci95["params"]
    assert lo <= law.allocation(truth, C)["N_opt"] <= hi


def test_trust_region_refuses_a_factor_below_one() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        trust_region({"depth": (1, 4)}, 0.5)


# --------------------------------------------------------------------------- laws as stateless plugins


def test_laws_share_one_constructor_and_declare_their_options() -> None:
    for name, cls in LAWS.items():
        law = make_law(name)  # defaults
        assert law.variables == list(law.default_variables())
        with pytest.raises(ValueError, match="has no option"):
            cls(None, nonsense=1)
    with pytest.raises(ValueError, match="form must be one of"):
        make_law("performance", form="weekly")


def test_fitting_does_not_mutate_the_law() -> None:
    law = make_law("performance", form="tied")
    X = np.array([[L, h, t, a] for L in (1, 2, 4) for h in (8, 16, 32) for t, a in ((1e5, 0.3), (4e5, 0.2), (9e5, 0.1))], dtype=float)  # fmt: skip
    y = 0.2 + 0.01 * np.log(X[:, 0]) + 0.02 * np.log(X[:, 1]) + 0.01 * np.log(X[:, 2])
    res = fit(law, X, y, bootstrap=0, holdout=1)
    assert law.options["t0"] is None and law.t0 == 1.0  # the caller's law is untouched
    assert res.law.t0 == pytest.approx(4e5)  # the fitted law carries its scale


def test_a_new_law_is_one_class_and_one_registry_line(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from fitters.base import Law, Param
    from scalelab.fitting import FitJob, fit_payload, run_fit

    class Linear(Law):  # y = c0 + c1 ln x
        name = "loglinear"
        DEFAULT_VARIABLES = ("params",)

        @property
        def params(self):
            return [Param("c0"), Param("c1", needs=(self.variables[0],))]

        def evaluate(self, X, theta):
            lx = np.log(X[:, 0])
            return theta[0] + theta[1] * lx, np.stack([np.ones_like(lx), lx], axis=1)

        def starts(self, X, y):
            return [np.array([float(np.mean(y)), 0.0])]

    monkeypatch.setitem(LAWS, "loglinear", Linear)
    t = pd.DataFrame({"non_embedding_params": [1e3, 1e4, 1e5, 1e6], "final_ndcg@10": [0.1, 0.15, 0.2, 0.25]})
    res, rows, _ = run_fit(t, FitJob(law="loglinear", bootstrap=10, holdout=1))
    assert res.params["c1"] == pytest.approx(0.05 / np.log(10))
    payload = fit_payload(res, FitJob(law="loglinear"), "table", rows)
    assert "decision" not in payload and payload["law"] == "loglinear"


def test_an_exact_fit_with_zero_noise_still_gives_finite_intervals() -> None:
    law, X, y = perf_data(sigma=0.0)
    res = fit(law, X, y, bootstrap=20)
    assert np.allclose(res.theta, PERF_TRUE, atol=1e-6)
    assert all(np.isfinite(v).all() for v in res.ci.values())


def test_isoflop_profiles_recover_the_compute_optimal_exponent() -> None:
    from fitters.isoflop import isoflop

    law = make_law("chinchilla")
    truth = np.array([np.log(1.69), np.log(406.4), 0.34, np.log(410.7), 0.28])
    rows = []
    for C in (1e18, 1e19, 1e20, 1e21):
        n_opt = law.allocation(truth, C)["N_opt"]
        for f in np.geomspace(1 / 8, 8, 7):  # sizes around the optimum at equal compute
            N = n_opt * f
            rows.append((N, C, C / (6 * N)))
    N, C, D = np.array(rows).T
    y = law.predict(np.stack([N, D], axis=1), truth)
    iso = isoflop(N, C, y, higher_is_better=False)
    assert len(iso["levels"]) == 4 and all(r["N_opt"] for r in iso["levels"])
    assert iso["exponent"] == pytest.approx(0.28 / (0.34 + 0.28), abs=0.02)
    # one size per level: nothing to profile, said so
    assert "note" in isoflop(N[::7], C[::7], y[::7], higher_is_better=False)


def test_a_nearly_constant_variable_is_treated_as_constant() -> None:
    """A data-quality term measured on fractions of one dataset varies in the third decimal: its
    parameter would be fitted to noise, so it is fixed and the warning says why."""
    law = make_law("performance", form="tied")
    rows = [
        (L, h, t, 6.72 + 0.01 * i)
        for L in (1, 2, 4)
        for h in (8, 16, 32)
        for i, t in enumerate((1e4, 2e4, 4e4))
    ]
    X = np.array(rows, dtype=float)
    _, identified, distinct = identifiable_mask(law, X)
    assert distinct["entropy"] == 1 and distinct["tokens"] == 3
    assert [p.name for p, f in zip(law.params, identified, strict=True) if not f] == ["lambda"]
    y = 0.05 + 0.01 * np.log(X[:, 0]) + 0.01 * np.log(X[:, 1]) + 0.005 * np.log(X[:, 2])
    res = fit(law, X, y, bootstrap=20)
    assert res.params["lambda"] == 0.0
    assert any(
        "entropy has 1 distinct value(s) (its values differ by less than 1%)" in w for w in res.warnings
    )
