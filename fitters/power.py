"""One-variable power law.

    falling (a loss):   y = E + A x^(-alpha)      fitted in log space
    rising (a metric):  y = E - A x^(-alpha)      fitted in linear space
Parameters: E, a = ln A, alpha. For a bounded metric (`y_range`, e.g. (0, 1) for NDCG) the asymptote E
is bounded to that range, so a fit cannot promise an NDCG above 1. Starts: for each alpha on a grid,
(E, A) by linear least squares.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fitters.base import Law, Option, Param

ALPHAS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)


class PowerLaw(Law):
    name = "power"
    DEFAULT_VARIABLES: ClassVar[tuple[str, ...]] = ("params",)
    OPTIONS: ClassVar[dict[str, Option]] = {
        "direction": Option("falling", ("falling", "rising"), "falling: a loss (y = E + A x^-alpha); "
                            "rising: a metric (y = E - A x^-alpha)"),
    }  # fmt: skip

    def __init__(self, variables: list[str] | None = None, **options: Any) -> None:
        super().__init__(variables, **options)
        if len(self.variables) != 1:
            raise ValueError("the power law takes exactly one variable")
        self.direction = self.options["direction"]
        self.sign = 1.0 if self.direction == "falling" else -1.0
        self.space = "log" if self.direction == "falling" else "linear"
        self.higher_is_better = self.direction == "rising"

    @property
    def params(self) -> list[Param]:
        lo, hi = (0.0, np.inf) if self.direction == "falling" else (-np.inf, np.inf)
        if self.y_range is not None:
            lo, hi = max(lo, self.y_range[0]), min(hi, self.y_range[1])
        v = (self.variables[0],)
        return [
            Param("E", lo, hi),
            Param("a", -50.0, 50.0, v, -50.0, scale=True),
            Param("alpha", 0.0, 10.0, v, 0.5, exponent=True),
        ]

    def evaluate(self, X: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, a, alpha = theta
        lx = np.log(X[:, 0])
        term = np.exp(a - alpha * lx)  # A x^-alpha
        y = e + self.sign * term
        jac = np.stack([np.ones_like(y), self.sign * term, -self.sign * term * lx], axis=1)
        return y, jac

    def starts(self, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        out = []
        lx = np.log(X[:, 0])
        lo, hi = self.params[0].lower, self.params[0].upper
        for alpha in ALPHAS:
            z = np.exp(-alpha * lx)
            design = np.stack([np.ones_like(z), self.sign * z], axis=1)
            (e, amp), *_ = np.linalg.lstsq(design, y, rcond=None)
            if amp <= 0:
                amp = max(1e-6, float(np.ptp(y)) or 1e-3)
            if self.direction == "falling":
                e = min(max(e, 0.0), 0.99 * float(np.min(y)))
            e = float(np.clip(e, lo, hi))
            out.append(np.array([e, np.log(amp), alpha]))
        return out

    def describe(self) -> dict:
        return {
            **super().describe(),
            "direction": self.direction,
            "formula": "y = E + A x^-alpha" if self.sign > 0 else "y = E - A x^-alpha",
            "note": "a = ln A",
        }
