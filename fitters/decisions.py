"""Decisions from a fitted law, each with a 95% interval from its own bootstrap distribution.

A researcher acts on a decision (the best depth and width, N_opt and D_opt at a compute budget), not
on a parameter vector, so the interval is computed on the decision itself: the decision is taken
again under every bootstrap parameter vector and the percentile interval of those decisions is
reported (for a discrete grid the interval holds grid values).

Decisions are only taken inside a trust region around the measured range: by default at most 2x
beyond the largest measured value of each variable (and 2x below the smallest), configurable. When
the best candidate lies on the edge of that region, the law has no interior optimum there: the
decision says so and names the direction of improvement instead of calling the edge an optimum. When
it lies on the edge of a budget, the budget binds (a genuine constrained optimum, reported as such).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fitters.base import FitResult

DEFAULT_TRUST = 2.0
PROVISIONAL_EDGE_SHARE = 0.25  # share of bootstrap decisions on the edge: an optimum is provisional


@dataclass
class Decision:
    """A recommended configuration (or allocation) with its interval and how to read it."""

    kind: str  # "best_config" | "allocation"
    values: dict[str, float]  # the decision under the full-data fit
    ci95: dict[str, tuple[float, float]]  # percentile interval of the bootstrap decisions
    predicted: float  # the law's value there (clipped to the metric's range)
    predicted_ci95: tuple[float, float]
    status: str  # "interior" | "edge" | "budget" | "natural_limit"
    message: str
    edge_share: float = 0.0  # share of bootstrap decisions on the trust-region edge
    directions: dict[str, str] = field(default_factory=dict)  # variable -> "larger" / "smaller"
    region: dict[str, tuple[float, float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    samples: np.ndarray | None = field(default=None, repr=False)  # the bootstrap decisions (rows)

    @property
    def is_optimum(self) -> bool:
        return self.status in ("interior", "budget", "natural_limit")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "values": self.values,
            "ci95": {k: list(v) for k, v in self.ci95.items()},
            "predicted": self.predicted,
            "predicted_ci95": list(self.predicted_ci95),
            "status": self.status,
            "message": self.message,
            "edge_share": self.edge_share,
            "directions": self.directions,
            "region": {k: list(v) for k, v in self.region.items()},
            **self.extra,
        }


def trust_region(
    measured: dict[str, tuple[float, float]],
    trust: float = DEFAULT_TRUST,
    natural: dict[str, tuple[float, float]] | None = None,
) -> dict[str, tuple[float, float]]:
    """[min / trust, max * trust] per variable, cut to the variable's natural limits (e.g. depth >= 1)."""
    if trust < 1:
        raise ValueError(f"the trust factor must be >= 1 (got {trust:g})")
    out = {}
    for v, (lo, hi) in measured.items():
        a, b = lo / trust, hi * trust
        if natural and v in natural:
            a, b = max(a, natural[v][0]), min(b, natural[v][1])
        out[v] = (a, b)
    return out


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    a = (1 - level) / 2
    return float(np.quantile(values, a, method="inverted_cdf")), float(
        np.quantile(values, 1 - a, method="inverted_cdf")
    )


def best_config(
    result: FitResult,
    candidates: np.ndarray,
    region: dict[str, tuple[float, float]],
    *,
    feasible: np.ndarray | None = None,
    natural: dict[str, tuple[float, float]] | None = None,
    level: float = 0.95,
) -> Decision:
    """The best candidate (rows of law variables) inside `region` and the budget (`feasible`), with the
    bootstrap interval of that choice. Variables absent from `region` are held at the candidates'
    values (e.g. the data term at the dataset's tokens)."""
    law = result.law
    cand = np.asarray(candidates, dtype=float)
    inside = np.ones(len(cand), bool)
    for j, v in enumerate(law.variables):
        if v in region:
            lo, hi = region[v]
            inside &= (cand[:, j] >= lo * (1 - 1e-9)) & (cand[:, j] <= hi * (1 + 1e-9))
    ok = inside & (np.ones(len(cand), bool) if feasible is None else np.asarray(feasible, bool))
    if not ok.any():
        raise ValueError("no candidate configuration lies inside the trust region and the budget")
    cand_in = cand[inside]
    ok_in = ok[inside]
    sign = 1.0 if law.higher_is_better else -1.0

    def choose(theta: np.ndarray) -> int:
        pred = sign * law.predict(cand_in, theta)
        pred = np.where(ok_in & np.isfinite(pred), pred, -np.inf)
        return int(np.argmax(pred))

    best = choose(result.theta)
    x_best = cand_in[best]
    thetas = (
        result.bootstrap_thetas if result.bootstrap_thetas is not None else np.empty((0, len(result.theta)))
    )
    picks = np.array([choose(t) for t in thetas], dtype=int)

    # edges of the trust region (not the natural limits, not the budget) per variable
    at_natural = False
    vmin = {v: cand_in[:, j].min() for j, v in enumerate(law.variables) if v in region}
    vmax = {v: cand_in[:, j].max() for j, v in enumerate(law.variables) if v in region}

    def edges(x: np.ndarray) -> dict[str, str]:
        e = {}
        for j, v in enumerate(law.variables):
            if v not in region or vmin[v] == vmax[v] or v in result.undetermined:
                continue
            nat = (natural or {}).get(v, (-np.inf, np.inf))
            if x[j] >= vmax[v] and vmax[v] < nat[1]:
                e[v] = "larger"
            elif x[j] <= vmin[v] and vmin[v] > nat[0]:
                e[v] = "smaller"
        return e

    edge_vars = edges(x_best)
    for j, v in enumerate(law.variables):
        nat = (natural or {}).get(v)
        if nat and v in region and (x_best[j] <= nat[0] or x_best[j] >= nat[1]):
            at_natural = True
    pick_edges = [edges(cand_in[i]) for i in picks]
    edge_share = float(np.mean([bool(e) for e in pick_edges])) if len(picks) else 0.0

    # does the budget bind? the best within the region alone would be elsewhere
    full_pred = sign * law.predict(cand_in, result.theta)
    unconstrained = int(np.argmax(np.where(np.isfinite(full_pred), full_pred, -np.inf)))
    budget_binds = feasible is not None and unconstrained != best

    ci = {}
    for j, v in enumerate(law.variables):
        if v in region and len(picks):
            ci[v] = _interval(cand_in[picks, j], level)
    pred = float(result.predict(x_best[None, :])[0])
    plo, phi = result.predict_interval(x_best[None, :], level)
    values = {v: float(x_best[j]) for j, v in enumerate(law.variables)}
    shown = ", ".join(f"{v} {values[v]:g}" for v in region if v in values)
    if edge_vars:
        status = "edge"
        dirs = ", ".join(f"{d} {v}" for v, d in edge_vars.items())
        message = (
            f"no interior optimum found: inside the trust region the law keeps improving toward {dirs} "
            f"(best candidate on the region's edge: {shown}); measure models in that direction before "
            "choosing"
        )
    elif budget_binds:
        status = "budget"
        message = f"the budget binds: {shown} is the best configuration within it; a larger budget helps"
    elif at_natural:
        status = "natural_limit"
        message = f"best at the variable's natural limit: {shown}"
    else:
        status = "interior"
        message = f"interior optimum: {shown}"
    if edge_share > 0.05 and status != "edge":
        toward = ""
        if edge_share >= PROVISIONAL_EDGE_SHARE:  # name where the disagreeing fits point
            pointed = Counter(e for pe in pick_edges for e in pe.items())
            (var, way), _ = pointed.most_common(1)[0]
            toward = f", most toward {way} {var}: the optimum may lie beyond the trust region; measure there"
        message += f" ({edge_share:.0%} of the bootstrap fits put the best on the region's edge{toward})"
    few = [v for v in result.undetermined if v in region]
    if few:
        message += (
            f"; {', '.join(few)} had fewer than 3 measured values, so the law cannot interpolate "
            "it: only the measured values are candidates"
        )
    return Decision(
        kind="best_config",
        values=values,
        ci95=ci,
        predicted=pred,
        predicted_ci95=(float(plo[0]), float(phi[0])),
        status=status,
        message=message,
        edge_share=edge_share,
        directions=edge_vars,
        region=dict(region),
        samples=cand_in[picks],
    )


def allocation(
    result: FitResult,
    compute: float,
    region: dict[str, tuple[float, float]],
    *,
    flops_per_token: Callable[[np.ndarray], np.ndarray] | None = None,
    points: int = 400,
    level: float = 0.95,
) -> Decision:
    """Compute-optimal (N, D) at training compute C for a two-variable law (N, D): the best N on a
    log grid with D = C / flops_per_token(N) (default 6 N, Chinchilla's accounting; pass the measured
    per-token cost to count the item-scoring layer), inside the trust region of both variables."""
    law = result.law
    n_var, d_var = law.variables[:2]
    if result.identified is not None and not result.identified.all():
        fixed = [p.name for p, f in zip(law.params, result.identified, strict=True) if not f]
        raise ValueError(
            f"no compute allocation: parameters {', '.join(fixed)} are not identifiable (a variable did "
            "not vary enough), so the trade-off between N and D is unknown"
        )
    fpt = flops_per_token or (lambda n: 6.0 * n)
    lo_n, hi_n = region[n_var]
    N = np.geomspace(lo_n, hi_n, points)
    D = compute / fpt(N)
    lo_d, hi_d = region[d_var]
    ok = (lo_d <= D) & (hi_d >= D)
    if not ok.any():
        raise ValueError(
            f"at C = {compute:.3g} FLOPs no model inside the trust region ({n_var} {lo_n:.3g}-{hi_n:.3g}) "
            f"trains on data inside it ({d_var} {lo_d:.3g}-{hi_d:.3g}): the budget is outside the measured regime"
        )
    cand = np.stack([N, D], axis=1)
    dec = best_config(result, cand, {n_var: (lo_n, hi_n)}, feasible=ok)
    # at a fixed compute the budget always binds; an edge here means the edge of the usable N range
    first, last = np.flatnonzero(ok)[[0, -1]]
    i = int(np.argmin(np.abs(N - dec.values[n_var])))
    picked = dec.samples if dec.samples is not None else np.empty((0, 2))  # the bootstrap choices
    at_edge = np.isin(picked[:, 0], N[[first, last]])
    edge_share = float(np.mean(at_edge)) if len(picked) else 0.0
    ci = {}
    if len(picked):
        ci = {n_var: _interval(picked[:, 0], level), d_var: _interval(picked[:, 1], level)}
    values = {n_var: float(N[i]), d_var: float(D[i])}
    if i in (first, last):
        side = "smaller" if i == first else "larger"
        status = "edge"
        message = (
            f"no interior optimum at C = {compute:.3g}: the best {n_var} sits at the edge of the usable range "
            f"({values[n_var]:.3g}); the law prefers {side} models than the trust region allows"
        )
        dirs = {n_var: side}
    else:
        status, dirs = "interior", {}
        message = (
            f"compute-optimal at C = {compute:.3g}: {n_var} {values[n_var]:.3g}, {d_var} {values[d_var]:.3g}"
        )
    if edge_share > 0.05 and status != "edge":
        message += f" ({edge_share:.0%} of the bootstrap fits put it on the edge)"
    extra: dict[str, Any] = {"compute": compute}
    if flops_per_token is None and hasattr(law, "allocation"):
        extra["closed_form"] = law.allocation(result.theta, compute)
    return Decision(
        kind="allocation",
        values=values,
        ci95=ci,
        predicted=dec.predicted,
        predicted_ci95=dec.predicted_ci95,
        status=status,
        message=message,
        edge_share=edge_share,
        directions=dirs,
        region={n_var: (lo_n, hi_n), d_var: (lo_d, hi_d)},
        extra=extra,
    )
