"""The fitting engine, separate from the laws.

- Objective: the SUM of Huber losses of the residuals (in the law's space), not their mean: with
  the mean, optimiser tolerances stop the search early (the Epoch replication of Chinchilla).
- Gradient: exact, from the law's Jacobian.
- Search: every start is scored, the best `refine` are refined (scipy's trust-region least squares
  with the Huber loss, tight tolerances, exact Jacobian, bounds);
  the best optimum wins, and the gap to the best *different* optimum is reported, so a result that
  depends on which start won by luck shows up.
- Uncertainty: bootstrap over points (or over groups, e.g. configurations with several seeds),
  percentile intervals. Each resample is refined from the full-data optimum.
- Validation: in-sample R^2 and RMSE; out-of-sample by holding out the largest configurations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import least_squares

from fitters.base import FitResult, Law

DEFAULT_DELTA = 1e-3


def _huber_sum(r: np.ndarray, delta: float) -> float:
    a = np.abs(r)
    return float(np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta)).sum())


def _residuals(law: Law, X: np.ndarray, y: np.ndarray):
    """Residual function and its Jacobian in the law's space."""
    target = np.log(y) if law.space == "log" else y

    def res(theta: np.ndarray) -> np.ndarray:
        pred = law.predict(X, theta)
        if law.space == "log":
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.log(pred) - target
        else:
            r = pred - target
        return np.where(np.isfinite(r), r, 1e6)

    def jac(theta: np.ndarray) -> np.ndarray:
        pred, j = law.evaluate(X, theta)
        if law.space == "log":
            j = j / np.where(pred > 0, pred, np.inf)[:, None]
        return np.where(np.isfinite(j), j, 0.0)

    return res, jac


def _refine(
    law: Law, X: np.ndarray, y: np.ndarray, theta0: np.ndarray, delta: float, tol: float = 1e-12
) -> tuple[np.ndarray, float, bool]:
    """Minimise sum_i Huber_delta(r_i) from theta0: scipy's trust-region least squares with the Huber
    loss (f_scale = delta makes its objective exactly that sum) and the law's exact Jacobian."""
    res, jac = _residuals(law, X, y)
    bounds = law.bounds()
    lo = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
    hi = np.array([np.inf if b[1] is None else b[1] for b in bounds])
    eps = 1e-9 * np.maximum(1.0, np.where(np.isfinite(lo), np.abs(lo), 1.0))
    x0 = np.clip(theta0, np.where(np.isfinite(lo), lo + eps, lo), np.where(np.isfinite(hi), hi - eps, hi))
    opts = {
        "jac": jac,
        "loss": "huber",
        "f_scale": delta,
        "method": "trf",
        "ftol": tol,
        "xtol": tol,
        "gtol": tol,
        "max_nfev": 1000,
    }
    # The unconstrained solve is about twice as fast; the bounded one runs only when it is needed.
    out = least_squares(res, x0, **opts)
    if not (np.all(out.x >= lo) and np.all(out.x <= hi)):
        out = least_squares(res, x0, bounds=(lo, hi), **opts)
    return out.x, _huber_sum(res(out.x), delta), bool(out.status > 0)


def _search(
    law: Law,
    X: np.ndarray,
    y: np.ndarray,
    delta: float,
    refine: int,
    extra_starts: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, float, bool, float]:
    res, _ = _residuals(law, X, y)
    starts = list(law.starts(X, y)) + list(extra_starts or [])
    scored = sorted(starts, key=lambda t: _huber_sum(res(t), delta))[:refine]
    results = sorted((_refine(law, X, y, s0, delta) for s0 in scored), key=lambda r: r[1])
    best_theta, best_loss, ok = results[0]
    # runner-up: the best optimum whose parameters differ materially from the winner's
    spread = 0.0
    for theta, loss, _ in results[1:]:
        if np.max(np.abs(theta - best_theta) / (np.abs(best_theta) + 1e-3)) > 1e-2:
            spread = loss - best_loss
            break
    return best_theta, best_loss, ok, spread


def _quality(law: Law, X: np.ndarray, y: np.ndarray, theta: np.ndarray) -> tuple[float, float]:
    pred = law.predict(X, theta)
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return (1 - ss_res / ss_tot) if ss_tot > 0 else float("nan"), float(np.sqrt(ss_res / len(y)))


def fit(
    law: Law,
    X: np.ndarray,
    y: np.ndarray,
    *,
    bootstrap: int = 1000,
    groups: np.ndarray | None = None,
    delta: float = DEFAULT_DELTA,
    refine: int = 8,
    seed: int = 0,
    holdout: int = 0,
    size: np.ndarray | None = None,
    level: float = 0.95,
) -> FitResult:
    """Fit `law` to (X, y); see the module docstring. `holdout` = number of largest configs held out
    (by `size`, default the product of the variables) for the out-of-sample check."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    p = len(law.params)
    if len(y) < p:
        raise ValueError(f"{len(y)} points cannot determine the {p} parameters of the {law.name} law")
    if law.space == "log" and np.any(y <= 0):
        raise ValueError(f"the {law.name} law is fitted in log space and needs positive values")
    if hasattr(law, "prepare"):
        law.prepare(X)
    theta, loss, ok, spread = _search(law, X, y, delta, refine)
    r2, rmse = _quality(law, X, y, theta)
    result = FitResult(law, theta, loss, ok, len(y), r2, rmse, start_spread=spread)

    if bootstrap:
        rng = np.random.default_rng(seed)
        ids = np.unique(groups) if groups is not None else np.arange(len(y))
        thetas = []
        for _ in range(bootstrap):
            pick = rng.choice(ids, size=len(ids), replace=True)
            idx = np.concatenate([np.flatnonzero(groups == g) for g in pick]) if groups is not None else pick
            thetas.append(_refine(law, X[idx], y[idx], theta, delta, tol=1e-9)[0])
        result.bootstrap_thetas = np.array(thetas)
        a = (1 - level) / 2
        lo, hi = np.quantile(result.bootstrap_thetas, [a, 1 - a], axis=0)
        result.ci = {prm.name: (float(l_), float(h_)) for prm, l_, h_ in zip(law.params, lo, hi, strict=True)}

    result.warnings = _warnings(law, X, theta, ok, len(y), p)
    if holdout:
        result.holdout = _holdout(law, X, y, holdout, size, delta, refine)
    return result


def _warnings(law: Law, X: np.ndarray, theta: np.ndarray, ok: bool, n: int, p: int) -> list[str]:
    out = []
    if not ok:
        out.append("the optimiser did not report convergence")
    if n < 2 * p:
        out.append(f"only {n} points for {p} parameters: intervals will be wide")
    for prm, v in zip(law.params, theta, strict=True):
        for bound in (prm.lower, prm.upper):
            if np.isfinite(bound) and abs(v - bound) <= 1e-6 * max(1.0, abs(bound)):
                out.append(f"parameter {prm.name} sits at its bound {bound:g}")
        if not prm.identifiable:
            out.append(f"parameter {prm.name} is not identifiable from these data")
    for var, x_opt in law.optimum(theta).items():
        if var in law.variables:
            col = X[:, law.variables.index(var)]
            if not (col.min() <= x_opt <= col.max()):
                out.append(
                    f"the predicted optimum {var} = {x_opt:.3g} lies outside the measured range "
                    f"[{col.min():g}, {col.max():g}]: an extrapolation"
                )
    return out


def _holdout(
    law: Law, X: np.ndarray, y: np.ndarray, k: int, size: np.ndarray | None, delta: float, refine: int
) -> dict[str, Any]:
    size = np.prod(X, axis=1) if size is None else np.asarray(size, dtype=float)
    order = np.argsort(size, kind="stable")
    distinct = np.unique(size[order])
    if k >= len(distinct):
        return {"error": f"cannot hold out {k} of {len(distinct)} distinct sizes"}
    cut = distinct[-k]
    test = size >= cut
    train = ~test
    if train.sum() < len(law.params):
        return {"error": f"only {int(train.sum())} points left to fit {len(law.params)} parameters"}
    if hasattr(law, "prepare"):
        law.prepare(X[train])
    theta, _, ok, _ = _search(law, X[train], y[train], delta, refine)
    pred = law.predict(X[test], theta)
    rel = np.abs(pred - y[test]) / np.maximum(np.abs(y[test]), 1e-12)
    pred_all = law.predict(X, theta)
    if hasattr(law, "prepare"):
        law.prepare(X)
    pick = np.argmax if law.higher_is_better else np.argmin
    return {
        "held_out": int(test.sum()),
        "fitted_on": int(train.sum()),
        "converged": ok,
        "mean_rel_error": float(rel.mean()),
        "max_rel_error": float(rel.max()),
        "rows": [
            {"x": X[i].tolist(), "measured": float(y[i]), "predicted": float(pred[j])}
            for j, i in enumerate(np.flatnonzero(test))
        ],
        "best_config_predicted": X[int(pick(pred_all))].tolist(),
        "best_config_measured": X[int(pick(y))].tolist(),
        "best_config_match": bool(pick(pred_all) == pick(y)),
    }
