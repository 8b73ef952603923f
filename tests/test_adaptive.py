"""Adaptive sweep design and learning-curve prediction (fitters/adaptive.py, fitters/curves.py),
against synthetic truth whose optimum and final values are known."""

from __future__ import annotations

import numpy as np
import pytest

from fitters import make_law
from fitters.adaptive import AdaptiveDesigner, Grid, initial_design
from fitters.curves import FinalPrediction, can_matter, predict_final

TRUE = np.array([0.5, 2.0, -0.3, -0.18, 1.05])  # Performance Law: best depth 10.1, width 47
GRID = Grid({"depth": [1, 2, 3, 4, 6, 8, 12, 16, 24, 32], "width": [16, 24, 32, 48, 64, 96, 128, 192]})
COST = GRID.values[:, 0] * GRID.values[:, 1] ** 2


def law():
    return make_law("performance", ["depth", "width"], y_range=(0, 1))


def test_grid_steps_and_initial_design_determine_the_law_cheaply() -> None:
    assert len(GRID) == 80 and GRID.steps(0, [0, 1, 9, 79]).tolist() == [0, 1, 1, 9]
    cells = initial_design(GRID, 7, COST)
    idx = GRID.index[cells]
    assert len(cells) == 7 and len(set(cells)) == 7
    assert all(len(set(idx[:, j])) == 3 for j in range(2))  # three distinct values of each variable
    costliest = int(np.argmax(COST))
    assert costliest not in cells  # the largest corner waits for a wave that needs it
    assert COST[cells].sum() < 0.05 * COST.sum()
    bigger = initial_design(GRID, 12, COST)
    assert bigger[:7] == cells and len(set(bigger)) == 12  # then maximin fill


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adaptive_design_finds_the_optimum_with_a_fraction_of_the_compute(seed: int) -> None:
    truth = law().predict(GRID.values, TRUE)
    best = int(np.argmax(truth))
    noisy = truth + np.random.default_rng(seed).normal(0, 0.003, len(truth))
    d = AdaptiveDesigner(law(), GRID, COST, seed=seed, bootstrap=100)
    last = d.run(lambda cells: {c: float(noisy[c]) for c in cells})
    assert last.done and last.reason.startswith("settled")
    assert last.settled >= 0.9 and last.mode >= 0
    assert GRID.steps(best, last.decision)[0] <= 1
    assert last.spent < COST.sum() / 3
    for j, a in enumerate(GRID.names):  # the decision's 95% interval holds the mode and the truth
        lo, hi = last.interval[a]
        assert lo <= GRID.values[last.mode, j] <= hi and lo <= GRID.values[best, j] <= hi
    assert last.to_dict(GRID)["decision_ci95"] == {a: list(v) for a, v in last.interval.items()}


def test_waves_ask_for_new_cells_within_the_budget() -> None:
    truth = law().predict(GRID.values, TRUE)
    budget = 0.06 * COST.sum()
    d = AdaptiveDesigner(law(), GRID, COST, seed=0, bootstrap=50, budget=budget, stop=1.01)  # never settles
    measured: dict[int, float] = {}
    cells = d.first_wave()
    assert d.incumbent() is None  # no fit, no decision to beat
    while cells:
        assert not set(cells) & set(measured) and len(set(cells)) == len(cells)
        measured.update({c: float(truth[c]) for c in cells})
        assert COST[list(measured)].sum() <= budget * (1 + 1e-9)
        w = d.update(measured)
        cells = w.next_cells
    assert w.done and w.reason == "budget spent"
    assert w.probabilities.sum() == pytest.approx(1.0)
    # the value a running cell must be able to reach: the law's, at the decision; on noise-free data
    # the truth's there
    assert d.incumbent() == pytest.approx(truth[w.decision], abs=0.005)


def test_too_few_points_widen_the_design_instead_of_failing() -> None:
    d = AdaptiveDesigner(law(), GRID, COST, seed=0, bootstrap=20)
    w = d.update({0: 0.1, 1: 0.12})  # two cells cannot determine five parameters
    assert w.decision == -1 and "no fit yet" in w.reason and w.next_cells
    assert not set(w.next_cells) & {0, 1}


def test_law_variables_must_be_the_grid_axes() -> None:
    with pytest.raises(ValueError, match="not the grid's axes"):
        AdaptiveDesigner(law(), Grid({"width": [16, 32, 64], "depth": [1, 2, 4]}), np.ones(9))


def test_final_metric_is_predicted_from_the_curve_with_an_interval_that_holds_the_truth() -> None:
    """pow3 curves y = 0.3 - 0.25 e^-0.7 with evaluation noise: the prediction at epoch 40 from the
    first 12 epochs holds the truth in its 95% interval in most seeds and is close."""
    e = np.arange(1, 13)
    final = 0.3 - 0.25 * 40**-0.7
    covered, errors = 0, []
    for seed in range(10):
        y = 0.3 - 0.25 * e**-0.7 + np.random.default_rng(seed).normal(0, 0.002, len(e))
        pred = predict_final(e, y, 40, bootstrap=200, seed=seed)
        assert pred is not None and pred.points == 12
        covered += pred.ci95[0] <= final <= pred.ci95[1]
        errors.append(abs(pred.value - final))
    assert covered >= 8
    assert np.median(errors) < 0.005
    assert predict_final(e[:3], y[:3], 40) is None  # too few evaluations
    done = predict_final(np.arange(1, 6), np.linspace(0.1, 0.2, 5), 5)
    assert done is not None and done.value == pytest.approx(0.2) and done.ci95 == (0.2, 0.2)


def test_a_run_matters_while_its_interval_reaches_the_incumbent() -> None:
    pred = FinalPrediction(0.25, (0.24, 0.27), 6)
    assert can_matter(pred, 0.26) and not can_matter(pred, 0.28)
    loss = FinalPrediction(2.0, (1.9, 2.1), 6)
    assert can_matter(loss, 1.95, higher_is_better=False) and not can_matter(
        loss, 1.85, higher_is_better=False
    )


def test_an_optimum_beyond_the_grid_is_reported_as_no_interior_optimum() -> None:
    small = Grid(
        {"depth": [1, 2, 3, 4, 6], "width": [16, 24, 32, 48, 64, 96, 128, 192]}
    )  # true best depth 10.1
    cost = small.values[:, 0] * small.values[:, 1] ** 2
    truth = law().predict(small.values, TRUE)
    d = AdaptiveDesigner(law(), small, cost, seed=0, bootstrap=100)
    last = d.run(lambda cells: {c: float(truth[c]) for c in cells})
    assert small.values[last.mode, 0] == 6  # the grid's largest depth
    assert last.edge == {"depth": "larger"}
    assert "no interior optimum" in last.reason and "larger depth" in last.reason
    assert last.to_dict(small)["no_interior_optimum"] == {"depth": "larger"}
    # on the full grid the optimum is interior: nothing is flagged
    full = AdaptiveDesigner(law(), GRID, COST, seed=0, bootstrap=100)
    truth = law().predict(GRID.values, TRUE)
    assert full.run(lambda cells: {c: float(truth[c]) for c in cells}).edge == {}


def test_predicted_values_carry_their_uncertainty_into_the_law_fit() -> None:
    from fitters import fit

    rng = np.random.default_rng(0)
    cells = initial_design(GRID, 12, COST)
    X = GRID.values[cells]
    y = law().predict(X, TRUE) + rng.normal(0, 0.002, len(cells))
    plain = fit(law(), X, y, bootstrap=100, seed=1)
    zero = fit(law(), X, y, bootstrap=100, seed=1, y_sd=np.zeros(len(y)))
    assert np.array_equal(plain.bootstrap_thetas, zero.bootstrap_thetas)  # no extra uncertainty: same fit
    sd = np.zeros(len(y))
    sd[:4] = 0.02  # four values predicted from learning curves, 10x the noise
    wide = fit(law(), X, y, bootstrap=100, seed=1, y_sd=sd)
    assert np.allclose(wide.theta, plain.theta)  # the point estimate does not change
    lo0, hi0 = plain.predict_interval(X[:4])
    lo1, hi1 = wide.predict_interval(X[:4])
    assert np.all(hi1 - lo1 > 1.5 * (hi0 - lo0))
    with pytest.raises(ValueError, match="y_sd"):
        fit(law(), X, y, bootstrap=10, y_sd=-sd)
