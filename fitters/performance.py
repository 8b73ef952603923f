"""The Performance Law (Shen et al., arXiv 2412.00430) for a ranking metric over depth and width.

    g(x; a) = -1 / (2 x^a) - a ln x          (c = 2 as in the released code)
    y = w1 g(N_L; w3) + w2 g(h; w4) + g(D'; w5) + b

The -a ln x part lets the metric rise, saturate and fall with size. dg/dx = 0 at x* = 2^(-1/a), a
maximum of g for either sign of a, so with w1 > 0 the best depth is 2^(-1/w3) (= 2^(1/|w3|) when
w3 < 0), likewise the best width.

Two forms:
- `per_dataset` (one dataset, one data size): D' is a constant, so g(D'; w5) + b is one number `c`;
  the law is fitted as y = w1 g(N_L; w3) + w2 g(h; w4) + c and D' is reported as not identifiable.
- `tied` (several data fractions or datasets): D' is tied to the data, ln D' = kappa ln(T / T0) -
  lambda (H - H0), with T the training tokens, T0 and H0 the medians of T and H over the fitted points
  (fixed by `bind`: both terms are centred, so the fit is as well conditioned for an entropy of 7
  nats as for an ApEn of 0.2), and kappa, lambda >= 0, following the paper's reading that D' grows with data volume and falls with
  the data's entropy. Variables: depth, width, tokens, entropy. Parameters w1..w5, b, kappa, lambda.
  H defaults to `entropy`: the bias-corrected conditional entropy of the next item given the
  previous k (Chao-Shen, pooled over users; k the largest context length every fitted row's data
  covers), which is a valid, non-negative entropy on any length distribution and does not drift
  with the data fraction the way a plug-in estimate does. The paper's ApEn stays available for
  comparability: `--x depth --x width --x tokens --x apen`.
Starts: for each exponent combination on a small grid the linear weights come from least squares.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np

from fitters.base import Law, Option, Param

# Exponent grid for the starts: for each (w3, w4) the weights are solved exactly by least squares,
# so a fine grid is cheap to score and puts the global basin among the best-scored starts.
EXPONENTS = tuple(np.concatenate([-np.geomspace(0.05, 3.0, 14), np.geomspace(0.05, 3.0, 14)]))


def g(x: np.ndarray, a: float) -> np.ndarray:
    # extreme exponents tried by the optimiser or a bootstrap refit overflow to inf: the engine treats
    # non-finite values as such, so the overflow is expected and not worth a warning
    with np.errstate(over="ignore", invalid="ignore"):
        return -0.5 * np.exp(-a * np.log(x)) - a * np.log(x)


def dg_dx(x: float, a: float) -> float:
    return float(0.5 * a * x ** (-a - 1) - a / x)


def dg_da(x: np.ndarray, a: float) -> np.ndarray:
    lx = np.log(x)
    with np.errstate(over="ignore", invalid="ignore"):
        return 0.5 * np.exp(-a * lx) * lx - lx


class PerformanceLaw(Law):
    name = "performance"
    DECISION = "best_config"
    space = "linear"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "form": Option("per_dataset", ("per_dataset", "tied"), "per_dataset: one dataset and data size "
                       "(variables depth, width); tied: D' from training tokens and the data's entropy across "
                       "data fractions or datasets (variables depth, width, tokens, entropy)"),
        "t0": Option(None, None, "tied form: the token scale T0 (default: the median of the fitted points)"),
        "h0": Option(None, None, "tied form: the data-quality origin H0 (default: the median of the fitted points)"),
    }  # fmt: skip

    def __init__(self, variables: list[str] | None = None, **options: Any) -> None:
        super().__init__(variables, **options)
        self.form = self.options["form"]
        need = len(self.default_variables())
        if len(self.variables) != need:
            raise ValueError(
                f"the {self.form} Performance Law takes {need} variables ({', '.join(self.default_variables())})"
            )
        self.t0 = 1.0 if self.options["t0"] is None else float(self.options["t0"])
        self.h0 = 0.0 if self.options["h0"] is None else float(self.options["h0"])

    def default_variables(self) -> list[str]:
        per = self.options["form"] == "per_dataset"
        return ["depth", "width"] if per else ["depth", "width", "tokens", "entropy"]

    @property
    def params(self) -> list[Param]:
        d, w = (self.variables[0],), (self.variables[1],)
        common = [
            Param("w1", needs=d, scale=True),
            Param("w2", needs=w, scale=True),
            Param("w3", -10, 10, d, -1.0),
            Param("w4", -10, 10, w, -1.0),
        ]
        if self.form == "per_dataset":
            return [*common, Param("c")]
        t, e = (self.variables[2],), (self.variables[3],)
        return [
            *common,
            Param("w5", -10, 10, t + e, -0.5),
            Param("b"),
            Param("kappa", 0.0, 10.0, t, 0.0, scale=True),
            Param("lambda", 0.0, 50.0, e, 0.0, scale=True),
        ]

    def bind(self, X: np.ndarray) -> PerformanceLaw:
        """Fix the token scale T0 from the fitting data (tied form; a no-op once set)."""
        if self.form != "tied":
            return self
        fixed = {k: float(np.median(X[:, i])) for k, i in (("t0", 2), ("h0", 3)) if self.options[k] is None}
        return self.with_options(**fixed) if fixed else self  # type: ignore[return-value]

    def evaluate(self, X: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        depth, width = X[:, 0], X[:, 1]
        w1, w2, w3, w4 = theta[:4]
        gd, gw = g(depth, w3), g(width, w4)
        y = w1 * gd + w2 * gw
        cols = [gd, gw, w1 * dg_da(depth, w3), w2 * dg_da(width, w4)]
        if self.form == "per_dataset":
            y = y + theta[4]
            cols.append(np.ones_like(y))
            return y, np.stack(cols, axis=1)
        w5, b, kappa, lam = theta[4:]
        u = kappa * np.log(X[:, 2] / self.t0) - lam * (X[:, 3] - self.h0)  # ln D'
        gdp = -0.5 * np.exp(-w5 * u) - w5 * u
        dgdu = 0.5 * w5 * np.exp(-w5 * u) - w5
        y = y + gdp + b
        cols += [
            0.5 * np.exp(-w5 * u) * u - u,
            np.ones_like(y),
            dgdu * np.log(X[:, 2] / self.t0),
            -dgdu * (X[:, 3] - self.h0),
        ]
        return y, np.stack(cols, axis=1)

    def starts(self, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        out = []
        # tied form: (w5, kappa, lambda) on a small grid; per-dataset: none (one pass)
        extra: list[tuple[float, ...]] = (
            [(0.0, 0.0, 0.0)]
            if self.form == "per_dataset"
            else list(itertools.product((-0.5, 0.5), (0.5, 1.0), (0.0, 1.0)))
        )
        for w3, w4 in itertools.product(EXPONENTS, EXPONENTS):
            for ex in extra:
                cols = [g(X[:, 0], w3), g(X[:, 1], w4)]
                if self.form == "tied":
                    w5, kappa, lam = ex
                    u = kappa * np.log(X[:, 2] / self.t0) - lam * (X[:, 3] - self.h0)
                    y_adj = y - (-0.5 * np.exp(-w5 * u) - w5 * u)
                else:
                    y_adj = y
                design = np.stack([*cols, np.ones_like(y)], axis=1)
                (w1, w2, c), *_ = np.linalg.lstsq(design, y_adj, rcond=None)
                if self.form == "per_dataset":
                    out.append(np.array([w1, w2, w3, w4, c]))
                else:
                    out.append(np.array([w1, w2, w3, w4, ex[0], c, ex[1], ex[2]]))
        return out

    def optimum(self, theta: np.ndarray) -> dict[str, float]:
        """Best depth and width from the closed form, where that term has its maximum (w > 0)."""
        out: dict[str, float] = {}
        for name, w, a in (("depth", theta[0], theta[2]), ("width", theta[1], theta[3])):
            if w > 0 and a != 0:
                with np.errstate(over="ignore"):
                    out[name] = float(np.power(2.0, -1.0 / a))  # inf for an exponent near 0
        return out

    def notes(self, theta: np.ndarray, X: np.ndarray) -> list[str]:
        """A term with w < 0 has a minimum, not a maximum: say what that means on the measured range."""
        out = []
        for j, (name, w, a) in enumerate((("depth", theta[0], theta[2]), ("width", theta[1], theta[3]))):
            if w >= 0 or a == 0:
                continue
            x = X[:, j]
            if len(np.unique(x)) < 3:  # the term's shape was fixed, not fitted: nothing to read
                continue
            lo, hi = float(x.min()), float(x.max())
            x_star = 2.0 ** (-1.0 / a)
            slope = [w * dg_dx(v, a) for v in (lo, hi)]
            if slope[0] > 0 and slope[1] > 0:
                reading = f"more {name} helps throughout the measured range [{lo:g}, {hi:g}]"
            elif slope[0] < 0 and slope[1] < 0:
                reading = f"less {name} helps throughout the measured range [{lo:g}, {hi:g}]"
            else:
                reading = f"the metric is lowest near {name} {x_star:.3g} inside the measured range"
            out.append(
                f"the {name} term has a minimum, not a maximum (w{j + 1} = {w:.3g} < 0, at {name} = {x_star:.3g}): "
                f"{reading}; the law gives no best {name}"
            )
        return out

    def describe(self) -> dict:
        d = {
            **super().describe(),
            "form": self.form,
            "formula": "y = w1 g(L; w3) + w2 g(h; w4) + g(D'; w5) + b",
        }
        if self.form == "per_dataset":
            d["note"] = "c = b + g(D'; w5): D' is not identifiable from one dataset"
        else:
            d["note"] = "ln D' = kappa ln(T/T0) - lambda (H - H0), H the data's entropy (or ApEn)"
            d["t0"] = self.t0
            d["h0"] = self.h0
        return d
