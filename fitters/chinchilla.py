"""Chinchilla's joint law L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, approach 3).

Fitted in log space with a = ln A, b = ln B, e = ln E:
    ln L = logsumexp(a - alpha ln N, b - beta ln D, e)
For a metric that rises to a ceiling (direction "rising", e.g. NDCG in [0, 1]) the law models the gap
to the ceiling, hi - y = E + A / N^alpha + B / D^beta, fitted as ln(hi - y): the asymptote hi - E stays
below the ceiling by construction.
Starts: the grid of laws.md (alpha, beta in 0..2 step 0.5; e in -1..1 step 0.5; a, b in 0..25
step 5), scored in one vectorised pass; the engine refines the best of them.
Compute-optimal allocation under C = 6 N D:
    N_opt = G (C/6)^(beta/(alpha+beta)),  D_opt = (C/6) / N_opt,  G = (alpha A / (beta B))^(1/(alpha+beta)).
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np

from fitters.base import Law, Option, Param


class ChinchillaLaw(Law):
    name = "chinchilla"
    DECISION = "allocation"
    DEFAULT_VARIABLES: ClassVar[tuple[str, ...]] = (
        "params",
        "train_tokens",
    )
    OPTIONS: ClassVar[dict[str, Option]] = {
        "direction": Option("falling", ("falling", "rising"), "falling: a loss L; rising: a metric whose "
                            "gap to its ceiling (y_range's upper end, default 1) follows the law"),
    }  # fmt: skip

    def __init__(self, variables: list[str] | None = None, **options: Any) -> None:
        super().__init__(variables, **options)
        if len(self.variables) != 2:
            raise ValueError("the Chinchilla law takes two variables (parameters N, data D)")
        self.direction = self.options["direction"]
        self.space = "log" if self.direction == "falling" else "log_gap"
        self.higher_is_better = self.direction == "rising"
        self.ceiling = 1.0 if self.y_range is None else self.y_range[1]

    @property
    def params(self) -> list[Param]:
        n, d = (self.variables[0],), (self.variables[1],)
        return [
            Param("e", -20, 20),
            Param("a", -20, 60, n, -20.0, scale=True),
            Param("alpha", 0.0, 5.0, n, 0.3, exponent=True),
            Param("b", -20, 60, d, -20.0, scale=True),
            Param("beta", 0.0, 5.0, d, 0.3, exponent=True),
        ]

    def gap(self, y: np.ndarray) -> np.ndarray:
        """The quantity the law models: y itself (a loss) or ceiling - y (a metric)."""
        return y if self.direction == "falling" else self.ceiling - y

    def evaluate(self, X: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, a, alpha, b, beta = theta
        ln_n, ln_d = np.log(X[:, 0]), np.log(X[:, 1])
        z = np.stack([a - alpha * ln_n, b - beta * ln_d, np.full_like(ln_n, e)], axis=1)
        m = z.max(axis=1, keepdims=True)
        w = np.exp(z - m)
        total = w.sum(axis=1)
        loss = np.exp(m[:, 0]) * total
        s = w / total[:, None]  # softmax weights = d ln L / d z
        dlog = np.stack([s[:, 2], s[:, 0], -s[:, 0] * ln_n, s[:, 1], -s[:, 1] * ln_d], axis=1)
        if self.direction == "falling":
            return loss, dlog * loss[:, None]
        return self.ceiling - loss, -dlog * loss[:, None]

    def starts(self, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        grid = np.array(
            list(
                itertools.product(
                    np.arange(-1, 1.01, 0.5),
                    np.arange(0, 26, 5),
                    np.arange(0, 2.01, 0.5),
                    np.arange(0, 26, 5),
                    np.arange(0, 2.01, 0.5),
                )
            )
        )
        ln_n, ln_d = np.log(X[:, 0]), np.log(X[:, 1])
        ly = np.log(np.maximum(self.gap(y), 1e-12))
        z = np.stack(
            [
                grid[:, 1:2] - grid[:, 2:3] * ln_n,
                grid[:, 3:4] - grid[:, 4:5] * ln_d,
                np.repeat(grid[:, 0:1], len(y), axis=1),
            ],
            axis=2,
        )
        pred = np.logaddexp.reduce(z, axis=2)
        score = np.abs(pred - ly).sum(axis=1)
        best = np.argsort(score)[:24]
        return [grid[i] for i in best]

    def allocation(self, theta: np.ndarray, compute: float) -> dict[str, float]:
        """Closed-form N_opt, D_opt under C = 6 N D."""
        _e, a, alpha, b, beta = theta
        if alpha <= 0 or beta <= 0:
            return {"N_opt": float("nan"), "D_opt": float("nan")}
        g = (alpha * np.exp(a) / (beta * np.exp(b))) ** (1 / (alpha + beta))
        n_opt = g * (compute / 6) ** (beta / (alpha + beta))
        return {"N_opt": float(n_opt), "D_opt": float(compute / 6 / n_opt)}

    def describe(self) -> dict:
        formula = "L = E + A/N^alpha + B/D^beta"
        if self.direction == "rising":
            formula = f"{self.ceiling:g} - y = E + A/N^alpha + B/D^beta"
        return {**super().describe(), "formula": formula, "note": "a = ln A, b = ln B, e = ln E"}
