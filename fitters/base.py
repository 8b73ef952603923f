"""What a law is: variables, parameters with bounds and starts, predictions with their Jacobian.

A law predicts y from a matrix of variables X (n, k) given parameters theta (p,). It returns the
prediction and its Jacobian d y / d theta (n, p), which the engine uses for exact gradients.
`space` says where residuals are measured: "log" (log y, for positive quantities such as a loss,
as Chinchilla's approach 3) or "linear" (ranking metrics, which the Performance Law models as is).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Param:
    name: str
    lower: float = -np.inf
    upper: float = np.inf
    identifiable: bool = True  # False: reported, but one dataset cannot pin it down


class Law(ABC):
    """A parametric law y = f(X; theta)."""

    name: str = ""
    space: str = "linear"  # "log" or "linear"
    higher_is_better: bool = True  # a metric; False for a loss

    def __init__(self, variables: list[str]) -> None:
        self.variables = list(variables)

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
        """Closed-form optimum of each variable where the law has one ({} otherwise)."""
        return {}

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
    """A fitted law: parameters, their bootstrap intervals, fit quality and warnings."""

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

    @property
    def params(self) -> dict[str, float]:
        return {p.name: float(v) for p, v in zip(self.law.params, self.theta, strict=True)}

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.law.predict(np.asarray(X, dtype=float), self.theta)

    def predict_interval(self, X: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Percentile band of the bootstrap predictions at X."""
        if self.bootstrap_thetas is None or len(self.bootstrap_thetas) == 0:
            p = self.predict(X)
            return p, p
        preds = np.array([self.law.predict(np.asarray(X, dtype=float), t) for t in self.bootstrap_thetas])
        a = (1 - level) / 2
        return np.quantile(preds, a, axis=0), np.quantile(preds, 1 - a, axis=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.law.describe(),
            "params": self.params,
            "ci95": {k: list(v) for k, v in self.ci.items()},
            "identifiable": {p.name: p.identifiable for p in self.law.params},
            "loss": self.loss,
            "converged": self.converged,
            "n_points": self.n_points,
            "r2": self.r2,
            "rmse": self.rmse,
            "optimum": self.law.optimum(self.theta),
            "holdout": self.holdout,
            "warnings": self.warnings,
            "start_spread": self.start_spread,
            "bootstrap_resamples": 0 if self.bootstrap_thetas is None else len(self.bootstrap_thetas),
        }
