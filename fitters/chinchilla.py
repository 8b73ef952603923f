"""Chinchilla's joint law L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, approach 3).

Fitted in log space with a = ln A, b = ln B, e = ln E:
    ln L = logsumexp(a - alpha ln N, b - beta ln D, e)
Starts: the grid of laws.md (alpha, beta in 0..2 step 0.5; e in -1..1 step 0.5; a, b in 0..25
step 5), scored in one vectorised pass; the engine refines the best of them.
Compute-optimal allocation under C = 6 N D:
    N_opt = G (C/6)^(beta/(alpha+beta)),  D_opt = (C/6) / N_opt,  G = (alpha A / (beta B))^(1/(alpha+beta)).
"""

from __future__ import annotations

import itertools

import numpy as np

from fitters.base import Law, Param


class ChinchillaLaw(Law):
    name = "chinchilla"
    space = "log"
    higher_is_better = False

    def __init__(self, variables: list[str] | None = None) -> None:
        super().__init__(variables or ["N", "D"])
        if len(self.variables) != 2:
            raise ValueError("the Chinchilla law takes two variables (parameters N, data D)")

    @property
    def params(self) -> list[Param]:
        return [
            Param("e", -20, 20),
            Param("a", -20, 60),
            Param("alpha", 0.0, 5.0),
            Param("b", -20, 60),
            Param("beta", 0.0, 5.0),
        ]

    def _parts(self, X: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, a, alpha, b, beta = theta
        ln_n, ln_d = np.log(X[:, 0]), np.log(X[:, 1])
        z = np.stack([a - alpha * ln_n, b - beta * ln_d, np.full_like(ln_n, e)], axis=1)
        return z, np.stack([ln_n, ln_d], axis=1)

    def evaluate(self, X: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z, logs = self._parts(X, theta)
        m = z.max(axis=1, keepdims=True)
        w = np.exp(z - m)
        total = w.sum(axis=1)
        y = np.exp(m[:, 0]) * total
        s = w / total[:, None]  # softmax weights = d ln y / d z
        ln_n, ln_d = logs[:, 0], logs[:, 1]
        dlog = np.stack([s[:, 2], s[:, 0], -s[:, 0] * ln_n, s[:, 1], -s[:, 1] * ln_d], axis=1)
        return y, dlog * y[:, None]

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
        ln_n, ln_d, ly = np.log(X[:, 0]), np.log(X[:, 1]), np.log(y)
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
        _e, a, alpha, b, beta = theta
        g = (alpha * np.exp(a) / (beta * np.exp(b))) ** (1 / (alpha + beta))
        n_opt = g * (compute / 6) ** (beta / (alpha + beta))
        return {"N_opt": float(n_opt), "D_opt": float(compute / 6 / n_opt)}

    def describe(self) -> dict:
        return {**super().describe(), "formula": "L = E + A/N^alpha + B/D^beta"}
