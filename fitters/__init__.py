"""Scaling laws and the engine that fits them (numpy, scipy and pandas only).

    from fitters import make_law, fit
    law = make_law("performance", ["depth", "width"])
    result = fit(law, X, y, bootstrap=1000, holdout=2)
    result.params, result.ci, result.r2, result.holdout, law.optimum(result.theta)

Adding a law is one file with a `Law` subclass and one line in `LAWS`.
"""

from __future__ import annotations

from typing import Any

from fitters.base import FitResult, Law, Param
from fitters.chinchilla import ChinchillaLaw
from fitters.engine import fit
from fitters.performance import PerformanceLaw
from fitters.power import PowerLaw

LAWS: dict[str, type[Law]] = {
    "power": PowerLaw,
    "chinchilla": ChinchillaLaw,
    "performance": PerformanceLaw,
}


def make_law(name: str, variables: list[str] | None = None, **options: Any) -> Law:
    if name not in LAWS:
        raise ValueError(f"unknown law {name!r}; known: {', '.join(LAWS)}")
    return LAWS[name](variables, **options) if variables is not None else LAWS[name](**options)  # type: ignore[call-arg]


__all__ = [
    "LAWS",
    "ChinchillaLaw",
    "FitResult",
    "Law",
    "Param",
    "PerformanceLaw",
    "PowerLaw",
    "fit",
    "make_law",
]
