"""The fitting engine, separate from the laws.

- Objective: the SUM of Huber losses of the residuals (in the law's space), not their mean: with
  the mean, optimiser tolerances stop the search early (the Epoch replication of Chinchilla). The
  Huber delta is scaled to the noise: a least-squares fit first, then delta = 1.345 x the robust
  (MAD) residual scale, the usual 95%-efficiency choice, refitted. A fixed delta far below the noise
  turns the fit into least absolute deviations, far above it into plain least squares.
- Gradient: exact, from the law's Jacobian.
- Search: every start is scored, the best `refine` are refined (scipy's trust-region least squares
  with the Huber loss, tight tolerances, exact Jacobian, bounds); the best optimum wins, and the gap
  to the best *different* optimum is reported, so a result that depends on which start won shows up.
- Identifiability: a parameter that needs a variable with fewer than 3 distinct values is fixed
  (Param.fixed) and reported as not identifiable, never given an interval.
- Uncertainty: bootstrap, percentile intervals, each resample refined from the full-data optimum.
  "residual" (default): the design is kept and leverage-scaled residuals are resampled, the bootstrap
  for designed experiments (a grid of configurations); "case": points (or groups, e.g. seeds of one
  configuration) are resampled. The default was chosen by measured coverage (bench/fit_coverage.py,
  results/reference/fit.md). Points known only with an uncertainty of their own (`y_sd`, e.g. a
  run's final metric predicted from its learning curve) are also redrawn from N(y, y_sd) in every
  resample, so that uncertainty reaches the intervals.
- Guards: parameters at or with intervals reaching a bound, outlier points, intervals far wider than
  the data, a law's own readings (e.g. a Performance-Law term with a minimum).
- Validation: in-sample R^2 and RMSE; out-of-sample by holding out the largest configurations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import norm
from scipy.stats import t as student_t

from fitters.base import FitResult, Law

MIN_DISTINCT = 3  # distinct values a variable needs before its parameters are fitted
OUTLIER_Z = 5.0  # robust residual z-score beyond which a point is listed as an outlier
HUBER_K = 1.345
# Evaluations per bootstrap refit (from the full-data optimum a well-posed resample needs 5-50); refits
# that run out wander along a direction the data do not pin down, and their share is reported.
BOOT_NFEV = 200
SEARCH_NFEV = 300
HEAVY_TAIL = 10.0  # 95%-interval width / (IQR x 2.9) beyond which an interval is called unstable
EXPONENT_SPAN = 10.0  # an exponent's 95% interval whose ends differ by more than this factor is reported
METHODS = ("residual", "case")


# ------------------------------------------------------------------------------- spaces and residuals


def link(law: Law, y: np.ndarray) -> np.ndarray:
    """y in the space where residuals are measured."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if law.space == "log":
            return np.log(y)
        if law.space == "log_gap":
            return np.log(law.gap(y))  # type: ignore[attr-defined]
    return y


def unlink(law: Law, t: np.ndarray) -> np.ndarray:
    if law.space == "log":
        return np.exp(t)
    if law.space == "log_gap":
        return law.ceiling - np.exp(t)  # type: ignore[attr-defined]
    return t


def _huber_sum(r: np.ndarray, delta: float) -> float:
    a = np.abs(r)
    return float(np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta)).sum())


class Problem:
    """A law, its data and which parameters are free: residuals and Jacobian over the free ones."""

    def __init__(self, law: Law, X: np.ndarray, y: np.ndarray, free: np.ndarray, fixed: np.ndarray):
        self.law, self.X, self.free, self.fixed = law, X, free, fixed
        self.target = link(law, y)

    def full(self, theta_free: np.ndarray) -> np.ndarray:
        theta = self.fixed.copy()
        theta[self.free] = theta_free
        return theta

    def res(self, theta_free: np.ndarray) -> np.ndarray:
        pred = self.law.predict(self.X, self.full(theta_free))
        r = link(self.law, pred) - self.target
        return np.where(np.isfinite(r), r, 1e6)

    def jac(self, theta_free: np.ndarray) -> np.ndarray:
        pred, j = self.law.evaluate(self.X, self.full(theta_free))
        if self.law.space == "log":
            j = j / np.where(pred > 0, pred, np.inf)[:, None]
        elif self.law.space == "log_gap":
            gap = self.law.gap(pred)  # type: ignore[attr-defined]
            j = -j / np.where(gap > 0, gap, np.inf)[:, None]
        j = j[:, self.free]
        return np.where(np.isfinite(j), j, 0.0)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        b = [b for b, f in zip(self.law.bounds(), self.free, strict=True) if f]
        lo = np.array([-np.inf if x[0] is None else x[0] for x in b])
        hi = np.array([np.inf if x[1] is None else x[1] for x in b])
        return lo, hi

    def with_target(self, y: np.ndarray) -> Problem:
        return Problem(self.law, self.X, y, self.free, self.fixed)

    def subset(self, idx: np.ndarray, y: np.ndarray) -> Problem:
        return Problem(self.law, self.X[idx], y[idx], self.free, self.fixed)


def _refine(
    prob: Problem, theta0: np.ndarray, delta: float, tol: float = 1e-12, max_nfev: int = 1000
) -> tuple[np.ndarray, float, bool]:
    """Minimise sum_i Huber_delta(r_i) over the free parameters from theta0 (free part): scipy's
    trust-region least squares with the Huber loss (f_scale = delta makes its objective exactly that
    sum; delta = inf is plain least squares) and the law's exact Jacobian."""
    lo, hi = prob.bounds()
    eps = 1e-9 * np.maximum(1.0, np.where(np.isfinite(lo), np.abs(lo), 1.0))
    x0 = np.clip(theta0, np.where(np.isfinite(lo), lo + eps, lo), np.where(np.isfinite(hi), hi - eps, hi))
    opts: dict[str, Any] = {
        "jac": prob.jac,
        "method": "trf",
        "ftol": tol,
        "xtol": tol,
        "gtol": tol,
        "max_nfev": max_nfev,
    }
    if np.isfinite(delta):
        opts.update(loss="huber", f_scale=delta)
    # The unconstrained solve is about twice as fast; the bounded one runs only when it is needed.
    out = least_squares(prob.res, x0, **opts)
    if not (np.all(out.x >= lo) and np.all(out.x <= hi)):
        out = least_squares(prob.res, x0, bounds=(lo, hi), **opts)
    r = prob.res(out.x)
    loss = _huber_sum(r, delta) if np.isfinite(delta) else 0.5 * float(r @ r)
    return out.x, loss, bool(out.status > 0)


def _search(
    prob: Problem, delta: float, refine: int, extra: list[np.ndarray] | None = None
) -> tuple[np.ndarray, float, bool, float]:
    starts = [s[prob.free] for s in prob.law.starts(prob.X, unlink(prob.law, prob.target))]
    starts += list(extra or [])

    def score(t: np.ndarray) -> float:
        r = prob.res(t)
        return _huber_sum(r, delta) if np.isfinite(delta) else 0.5 * float(r @ r)

    scored = sorted(starts, key=score)[:refine]
    # every start gets SEARCH_NFEV evaluations (starts that run to a bound can take thousands), the
    # winner is then polished with the full budget
    results = sorted((_refine(prob, s0, delta, max_nfev=SEARCH_NFEV) for s0 in scored), key=lambda r: r[1])
    best_theta, best_loss, ok = _refine(prob, results[0][0], delta)
    # runner-up: the best optimum whose parameters differ materially from the winner's
    spread = 0.0
    for theta, loss, _ in results[1:]:
        if np.max(np.abs(theta - best_theta) / (np.abs(best_theta) + 1e-3)) > 1e-2:
            spread = loss - best_loss
            break
    return best_theta, best_loss, ok, spread


def robust_scale(r: np.ndarray, n_free: int) -> float:
    """MAD scale of residuals, corrected for the degrees of freedom the fit used."""
    n = len(r)
    mad = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    return mad * np.sqrt(n / max(n - n_free, 1))


def _quality(law: Law, X: np.ndarray, y: np.ndarray, theta: np.ndarray) -> tuple[float, float]:
    pred = law.predict(X, theta)
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return (1 - ss_res / ss_tot) if ss_tot > 0 else float("nan"), float(np.sqrt(ss_res / len(y)))


NEARLY_CONSTANT = 0.01  # a variable whose values span less than 1% of their size varies too little


def levels_of(col: np.ndarray) -> int:
    """Distinct values of a variable, or 1 when they span less than NEARLY_CONSTANT of their
    magnitude (e.g. a data-quality term measured on fractions of one dataset: its parameter would be
    fitted to noise in the third decimal)."""
    u = np.unique(col)
    if len(u) > 1 and (u.max() - u.min()) <= NEARLY_CONSTANT * max(float(np.median(np.abs(col))), 1e-300):
        return 1
    return len(u)


def identifiable_mask(law: Law, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """(fitted, identified, distinct values per variable): a parameter is identified when one of the
    variables it needs has at least MIN_DISTINCT values; a scale parameter is still fitted (not
    identified) when it has 2, with the shape parameters of its term fixed."""
    distinct = {v: levels_of(X[:, j]) for j, v in enumerate(law.variables)}

    def levels(p) -> int:
        return max((distinct[v] for v in p.needs), default=MIN_DISTINCT)

    identified = np.array([levels(p) >= MIN_DISTINCT for p in law.params])
    fitted = identified | np.array([p.scale and levels(p) == 2 for p in law.params])
    return fitted, identified, distinct


# ------------------------------------------------------------------------------------------- fit


def fit(
    law: Law,
    X: np.ndarray,
    y: np.ndarray,
    *,
    bootstrap: int = 1000,
    groups: np.ndarray | None = None,
    delta: float | None = None,
    refine: int = 8,
    seed: int = 0,
    holdout: int = 0,
    size: np.ndarray | None = None,
    level: float = 0.95,
    method: str = "residual",
    progress: Callable[[int, int], None] | None = None,
    y_sd: np.ndarray | None = None,
) -> FitResult:
    """Fit `law` to (X, y); see the module docstring. `holdout` = number of largest configs held out
    (by `size`, default the product of the variables) for the out-of-sample check. `delta` = None
    scales the Huber delta to the noise. `progress(done, total)` is called during the bootstrap.
    `y_sd`: a standard deviation per point beyond the noise the fit measures (0 for measured points),
    drawn into every bootstrap resample."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if y_sd is not None:
        y_sd = np.asarray(y_sd, dtype=float)
        if y_sd.shape != y.shape or not np.all(np.isfinite(y_sd) & (y_sd >= 0)):
            raise ValueError("y_sd needs one finite, non-negative standard deviation per point")
        y_sd = y_sd if np.any(y_sd > 0) else None
    if X.ndim == 1:
        X = X[:, None]
    if method not in METHODS:
        raise ValueError(f"unknown interval method {method!r}; known: {', '.join(METHODS)}")
    p = len(law.params)
    if len(y) < p:
        raise ValueError(f"{len(y)} points cannot determine the {p} parameters of the {law.name} law")
    if law.space != "linear" and not np.all(np.isfinite(link(law, y))):
        what = "positive values" if law.space == "log" else f"values below {law.ceiling:g}"  # type: ignore[attr-defined]
        raise ValueError(f"the {law.name} law is fitted in log space and needs {what}")
    law = law.bind(X)
    free, identified, distinct = identifiable_mask(law, X)
    fixed = np.array([prm.fixed for prm in law.params], dtype=float)
    prob = Problem(law, X, y, free, fixed)
    n_free = int(free.sum())

    theta_f, loss, ok, spread = _search(prob, np.inf if delta is None else delta, refine)
    noise = robust_scale(prob.res(theta_f), n_free)
    if delta is None:  # scale the Huber delta to the noise, then refine from the least-squares optimum
        scale = float(np.median(np.abs(prob.target))) or 1.0
        delta = max(HUBER_K * noise, 1e-9 * scale)
        theta_f, loss, ok = _refine(prob, theta_f, delta)
        noise = robust_scale(prob.res(theta_f), n_free)
    theta = prob.full(theta_f)
    r2, rmse = _quality(law, X, y, theta)
    result = FitResult(law, theta, loss, ok, len(y), r2, rmse, start_spread=spread, free=free)
    result.identified = identified
    result.undetermined = [v for v, k in distinct.items() if k < MIN_DISTINCT]
    result.huber_delta, result.noise, result.interval_method = float(delta), float(noise), method

    if bootstrap:
        result.bootstrap_thetas, result.bootstrap_stuck = _bootstrap(
            prob, theta_f, delta, bootstrap, seed, method, groups, progress, level, y_sd
        )
        a = (1 - level) / 2
        lo, hi = np.quantile(result.bootstrap_thetas, [a, 1 - a], axis=0)
        result.ci = {
            prm.name: (float(l_), float(h_))
            for prm, l_, h_, f in zip(law.params, lo, hi, identified, strict=True)
            if f
        }
    result.outliers = _outliers(prob, theta_f, noise)
    result.warnings = _warnings(result, X, y, distinct, n_free)
    if holdout:
        result.holdout = _holdout(law, X, y, holdout, size, delta, refine)
    return result


def residual_inflation(n: int, p: int, level: float = 0.95) -> float:
    """Factor on the centred residuals of the residual bootstrap: sqrt(n / (n - p)) undoes the
    shrinkage of fitted residuals, and t_{n-p} / z the small-sample width of a t interval, so that for
    a linear model the percentile interval has the width of the exact t interval. Without the second
    factor 8-point power laws covered the truth in 80-90% of seeds (results/reference/fit.md)."""
    df = max(n - p, 1)
    q = 1 - (1 - level) / 2
    return float(np.sqrt(n / df) * student_t.ppf(q, df) / norm.ppf(q))


def _bootstrap(
    prob: Problem,
    theta_f: np.ndarray,
    delta: float,
    n: int,
    seed: int,
    method: str,
    groups: np.ndarray | None,
    progress: Callable[[int, int], None] | None,
    level: float = 0.95,
    y_sd: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Bootstrap parameter vectors and the share of refits that stopped at BOOT_NFEV evaluations."""
    rng = np.random.default_rng(seed)
    law = prob.law
    thetas, stuck = [], 0

    def jitter(y: np.ndarray, sd: np.ndarray | None) -> np.ndarray:
        """y redrawn within its own uncertainty (kept where a draw leaves the law's domain)."""
        if sd is None:
            return y
        y2 = y + rng.normal(0.0, 1.0, len(y)) * sd
        with np.errstate(invalid="ignore", divide="ignore"):
            bad = ~np.isfinite(link(law, y2))
        return np.where(bad, y, y2)

    def refit(p: Problem) -> np.ndarray:
        nonlocal stuck
        theta, _, ok = _refine(p, theta_f, delta, tol=1e-9, max_nfev=BOOT_NFEV)
        stuck += not ok
        return prob.full(theta)

    if method == "residual":
        fitted = link(law, law.predict(prob.X, prob.full(theta_f)))
        r = -prob.res(theta_f)  # target - fitted
        r = (r - r.mean()) * residual_inflation(len(r), len(theta_f), level)
        for i in range(n):
            y_star = jitter(unlink(law, fitted + rng.choice(r, size=len(r), replace=True)), y_sd)
            thetas.append(refit(prob.with_target(y_star)))
            if progress:
                progress(i + 1, n)
    else:
        y0 = unlink(law, prob.target)
        ids = np.unique(groups) if groups is not None else np.arange(len(y0))
        for i in range(n):
            pick = rng.choice(ids, size=len(ids), replace=True)
            idx = np.concatenate([np.flatnonzero(groups == g) for g in pick]) if groups is not None else pick
            thetas.append(refit(prob.subset(idx, jitter(y0, y_sd))))
            if progress:
                progress(i + 1, n)
    return np.array(thetas), stuck / max(n, 1)


def _outliers(prob: Problem, theta_f: np.ndarray, noise: float) -> list[int]:
    """Points whose residual is more than OUTLIER_Z robust noise units off the fit."""
    if len(prob.target) < int(prob.free.sum()) + 3 or noise <= 0:
        return []
    r = prob.res(theta_f)
    return [int(i) for i in np.flatnonzero(np.abs(r) > OUTLIER_Z * noise)]


def _at_bound(x: float, bound: float) -> bool:
    """`x` is at `bound`, to the optimiser's tolerance."""
    return abs(x - bound) <= 1e-4 * max(1.0, abs(bound))


def _warnings(
    res: FitResult, X: np.ndarray, y: np.ndarray, distinct: dict[str, int], n_free: int
) -> list[str]:
    law, theta = res.law, res.theta
    free = res.free if res.free is not None else np.ones(len(theta), bool)
    out = []
    if not res.converged:
        out.append("the optimiser did not report convergence")
    if res.n_points < 2 * n_free:
        out.append(f"only {res.n_points} points for {n_free} fitted parameters: intervals will be wide")
    ident = res.identified if res.identified is not None else free
    unpinned = [p.name for p, f in zip(law.params, ident, strict=True) if not f]
    if unpinned:
        few = [v for v, k in distinct.items() if k < MIN_DISTINCT]
        fixed = [f"{p.name} = {p.fixed:g}" for p, f in zip(law.params, free, strict=True) if not f]
        kept = [p.name for p, f, i in zip(law.params, free, ident, strict=True) if f and not i]
        out.append(
            f"parameters {', '.join(unpinned)} are not identifiable: "
            + ", ".join(
                f"{v} has {distinct[v]} distinct value(s)"
                + (
                    " (its values differ by less than 1%)"
                    if distinct[v] == 1 and len(np.unique(X[:, j])) > 1
                    else ""
                )
                for j, v in enumerate(law.variables)
                if v in few
            )
            + f" (at least {MIN_DISTINCT} needed); they get no interval"
            + (f"; fixed: {', '.join(fixed)}" if fixed else "")
            + (
                f"; {', '.join(kept)} still fitted to the difference between the two measured levels"
                if kept
                else ""
            )
        )
    for prm, v, f in zip(law.params, theta, free, strict=True):
        if not f:
            continue
        for bound in (prm.lower, prm.upper):
            if not np.isfinite(bound):
                continue
            if _at_bound(v, bound):
                out.append(f"parameter {prm.name} sits at its bound {bound:g}: the data do not pin it down")
            elif prm.name in res.ci and any(_at_bound(e, bound) for e in res.ci[prm.name]):
                out.append(
                    f"the interval of {prm.name} reaches its bound {bound:g}: the data do not pin it down"
                )
        if not prm.identifiable:
            out.append(f"parameter {prm.name} is not identifiable from these data")
        if prm.exponent and prm.name in res.ci:
            e_lo, e_hi = res.ci[prm.name]
            # (an interval down to the exponent's bound 0 is reported at its bound, above)
            if e_lo > 0 and not _at_bound(e_lo, prm.lower) and e_hi > EXPONENT_SPAN * e_lo:
                out.append(
                    f"the exponent {prm.name} = {v:.3g} is known only within a factor of {e_hi / e_lo:.0f} (95% "
                    f"interval [{e_lo:.3g}, {e_hi:.3g}]): the data do not say how fast the metric scales"
                )
    if res.bootstrap_thetas is not None and len(res.bootstrap_thetas) and np.ptp(y) > 0:
        lo, hi = res.predict_interval(X)
        ratio = float(np.max(hi - lo) / np.ptp(y))
        if ratio > 10:
            out.append(
                f"the 95% prediction band at the measured points is {ratio:.0f}x wider than the spread of "
                "the measured values: the fit is uninformative"
            )
    if res.bootstrap_stuck > 0.05:
        out.append(
            f"{res.bootstrap_stuck:.0%} of the bootstrap refits did not converge: some direction of the "
            "parameters is barely pinned down by the data"
        )
    if res.bootstrap_thetas is not None and len(res.bootstrap_thetas) >= 20:
        q = np.quantile(res.bootstrap_thetas, [0.025, 0.25, 0.75, 0.975], axis=0)
        for j, prm in enumerate(law.params):
            iqr = q[2, j] - q[1, j]
            if prm.name in res.ci and q[3, j] - q[0, j] > HEAVY_TAIL * 2.9 * max(iqr, 1e-300):
                out.append(
                    f"the bootstrap distribution of {prm.name} is heavy-tailed (its 95% interval is over "
                    f"{HEAVY_TAIL:g}x what its interquartile range implies): the data barely pin it down and "
                    "the interval is unstable"
                )
    if res.outliers:
        out.append(
            f"{len(res.outliers)} point(s) lie more than {OUTLIER_Z:g} noise units off the fit (rows "
            f"{', '.join(map(str, res.outliers))}): diverged or mislabelled cells? check them"
        )
    for var, x_opt in law.optimum(theta).items():
        if var in law.variables and var not in res.undetermined:
            col = X[:, law.variables.index(var)]
            if not (col.min() <= x_opt <= col.max()):
                out.append(
                    f"the predicted optimum {var} = {x_opt:.3g} lies outside the measured range "
                    f"[{col.min():g}, {col.max():g}]: an extrapolation"
                )
    out += law.notes(theta, X)
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
    small = law.bind(X[train])
    free, _, _ = identifiable_mask(small, X[train])
    prob = Problem(small, X[train], y[train], free, np.array([p.fixed for p in small.params], dtype=float))
    theta_f, _, ok, _ = _search(prob, delta, refine)
    theta = prob.full(theta_f)
    pred = small.predict(X[test], theta)
    if small.y_range:
        pred = np.clip(pred, *small.y_range)
    rel = np.abs(pred - y[test]) / np.maximum(np.abs(y[test]), 1e-12)
    pred_all = small.predict(X, theta)
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
        "theta": theta.tolist(),
    }
