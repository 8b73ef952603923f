"""What a law is: variables, parameters with bounds and starts, predictions with their Jacobian.

A law predicts y from a matrix of variables X (n, k) given parameters theta (p,). It returns the
prediction and its Jacobian d y / d theta (n, p), which the engine uses for exact gradients.
`space` says where residuals are measured: "log" (log y, for positive quantities such as a loss,
as Chinchilla's approach 3) or "linear" (ranking metrics, which the Performance Law models as is).

Laws are stateless values: every law takes `(variables=None, **options)`, its options are declared in
`OPTIONS` (so a command line or a config can offer them without knowing the law), and a constant
that depends on the data (a centring scale) is fixed by `bind(X)`, which returns a new law.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Param:
    """A parameter with its bounds.

    `needs`: the variables that must vary (at least 3 distinct values of one of them) for the data to
    pin the parameter down; when none does, it is reported as not identifiable and gets no interval.
    A `scale` parameter (the weight of a term) is still fitted from 2 distinct values, with the term's
    shape parameters fixed, so the measured difference between the two levels is kept; otherwise, and
    with a single value, the parameter is fixed at `fixed` (for a scale: the value with no effect).
    An `exponent` is a rate of scaling (> 0): what a researcher reads off the fit, so an interval
    that spans more than a factor EXPONENT_SPAN between its ends is reported."""

    name: str
    lower: float = -np.inf
    upper: float = np.inf
    needs: tuple[str, ...] = ()
    fixed: float = 0.0
    scale: bool = False
    identifiable: bool = True  # False: one dataset can never pin it down (reported as such)
    exponent: bool = False


@dataclass(frozen=True)
class Option:
    """A law option: its default, allowed values (None = any) and what it does."""

    default: Any
    choices: tuple[Any, ...] | None = None
    help: str = ""


# Metrics that live in [0, 1] by construction (a law's asymptote and predictions must stay there).
BOUNDED_METRICS = frozenset({"hr", "ndcg", "recall", "precision", "mrr", "auc", "gauc", "map", "coverage"})


def metric_range(metric: str) -> tuple[float, float] | None:
    """(0, 1) for a ranking metric or AUC, None for a loss or an unknown quantity."""
    name = metric.lower().split("@")[0]
    for prefix in ("final_", "best_", "valid_best_", "test_"):
        name = name.removeprefix(prefix)
    return (0.0, 1.0) if name in BOUNDED_METRICS else None


class Law(ABC):
    """A parametric law y = f(X; theta).

    Subclasses set `name`, `DEFAULT_VARIABLES` and `OPTIONS`, and implement `params`, `evaluate` and
    `starts`. Options arrive as keyword arguments, checked against `OPTIONS`."""

    name: ClassVar[str] = ""
    DEFAULT_VARIABLES: ClassVar[tuple[str, ...]] = ()
    OPTIONS: ClassVar[dict[str, Option]] = {}
    # Options every law accepts: the range of a bounded metric, which constrains the asymptote and
    # clips predictions.
    COMMON_OPTIONS: ClassVar[dict[str, Option]] = {
        "y_range": Option(
            None, None, "(lo, hi) of a bounded metric, e.g. (0, 1) for HR/NDCG; None for a loss"
        ),
    }

    # What a researcher decides with the law (fitters.decisions): "best_config" (a law with an optimum
    # over model shape), "allocation" (N and D at a compute budget) or "predict" (predictions only).
    DECISION: ClassVar[str] = "predict"
    space: str = "linear"  # "log", "linear" or "log_gap" (log of the gap to a metric's ceiling)
    higher_is_better: bool = True  # a metric; False for a loss

    def __init__(self, variables: list[str] | None = None, **options: Any) -> None:
        known = {**self.COMMON_OPTIONS, **self.OPTIONS}
        for k, v in options.items():
            if k not in known:
                raise ValueError(
                    f"the {self.name} law has no option {k!r}"
                    + (f" (has: {', '.join(known)})" if known else "")
                )
            choices = known[k].choices
            if choices is not None and v not in choices:
                raise ValueError(
                    f"{self.name} law: {k} must be one of {', '.join(map(str, choices))}, not {v!r}"
                )
        self.options: dict[str, Any] = {k: o.default for k, o in known.items()} | options
        yr = self.options["y_range"]
        self.y_range: tuple[float, float] | None = None if yr is None else (float(yr[0]), float(yr[1]))
        self.variables = list(variables) if variables is not None else self.default_variables()

    def default_variables(self) -> list[str]:
        return list(self.DEFAULT_VARIABLES)

    def with_options(self, **changes: Any) -> Law:
        """A copy with some options changed (laws are values)."""
        return type(self)(self.variables, **(self.options | changes))

    def bind(self, X: np.ndarray) -> Law:
        """The law with its data-dependent constants fixed from X (default: none)."""
        return self

    @property
    @abstractmethod
    def params(self) -> list[Param]: ...

    @abstractmethod
    def evaluate(self, X: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(prediction (n,), Jacobian (n, p))."""

    @abstractmethod
    def starts(self, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        """Starting points for the multi-start search."""

    def predict(self, X: np.ndarray, theta: np.ndarray) -> np.ndarray:
        return self.evaluate(X, theta)[0]

    def optimum(self, theta: np.ndarray) -> dict[str, float]:
        """Closed-form maximiser of each variable where the law has one ({} otherwise)."""
        return {}

    def notes(self, theta: np.ndarray, X: np.ndarray) -> list[str]:
        """Law-specific readings of a fit a researcher must see (e.g. a term with a minimum)."""
        return []

    def describe(self) -> dict[str, Any]:
        return {
            "law": self.name,
            "variables": self.variables,
            "space": self.space,
            "params": [p.name for p in self.params],
        }

    def bounds(self) -> list[tuple[float | None, float | None]]:
        return [
            (None if np.isinf(p.lower) else p.lower, None if np.isinf(p.upper) else p.upper)
            for p in self.params
        ]


@dataclass
class FitResult:
    """A fitted law: parameters, their bootstrap intervals, fit quality, flags and warnings."""

    law: Law
    theta: np.ndarray
    loss: float
    converged: bool
    n_points: int
    r2: float
    rmse: float
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    bootstrap_thetas: np.ndarray | None = None
    holdout: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    start_spread: float = 0.0  # loss gap between the best and the runner-up distinct optimum
    free: np.ndarray | None = None  # which parameters were fitted (the others fixed)
    identified: np.ndarray | None = None  # which fitted parameters the data pin down (with intervals)
    undetermined: list[str] = field(default_factory=list)  # variables with fewer than 3 distinct values
    interval_method: str = ""
    huber_delta: float = 0.0
    noise: float = 0.0  # robust residual scale in the law's space
    outliers: list[int] = field(default_factory=list)  # row indices whose residual is far off the noise
    bootstrap_stuck: float = 0.0  # share of bootstrap refits that did not converge

    @property
    def params(self) -> dict[str, float]:
        return {p.name: float(v) for p, v in zip(self.law.params, self.theta, strict=True)}

    @property
    def identifiable(self) -> dict[str, bool]:
        ok = np.ones(len(self.theta), bool) if self.identified is None else self.identified
        return {p.name: bool(p.identifiable and f) for p, f in zip(self.law.params, ok, strict=True)}

    def predict(self, X: np.ndarray, clip: bool = True) -> np.ndarray:
        p = self.law.predict(np.asarray(X, dtype=float), self.theta)
        return np.clip(p, *self.law.y_range) if clip and self.law.y_range else p

    def bootstrap_predictions(self, X: np.ndarray) -> np.ndarray:
        """(resamples, n) predictions at X, clipped to the metric's range."""
        X = np.asarray(X, dtype=float)
        if self.bootstrap_thetas is None or len(self.bootstrap_thetas) == 0:
            return self.predict(X)[None, :]
        preds = np.array([self.law.predict(X, t) for t in self.bootstrap_thetas])
        return np.clip(preds, *self.law.y_range) if self.law.y_range else preds

    def predict_interval(self, X: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Percentile band of the bootstrap predictions at X (within the metric's range)."""
        preds = self.bootstrap_predictions(X)
        a = (1 - level) / 2
        return np.quantile(preds, a, axis=0), np.quantile(preds, 1 - a, axis=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.law.describe(),
            "options": {k: v for k, v in self.law.options.items() if v is not None},
            "params": self.params,
            "ci95": {k: list(v) for k, v in self.ci.items()},
            "identifiable": self.identifiable,
            "undetermined": self.undetermined,
            "loss": self.loss,
            "converged": self.converged,
            "n_points": self.n_points,
            "r2": self.r2,
            "rmse": self.rmse,
            "optimum": {k: v for k, v in self.law.optimum(self.theta).items() if k not in self.undetermined},
            "holdout": self.holdout,
            "warnings": self.warnings,
            "start_spread": self.start_spread,
            "interval_method": self.interval_method,
            "huber_delta": self.huber_delta,
            "noise": self.noise,
            "outliers": self.outliers,
            "bootstrap_unconverged": self.bootstrap_stuck,
            "bootstrap_resamples": 0 if self.bootstrap_thetas is None else len(self.bootstrap_thetas),
        }
