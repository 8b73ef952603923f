"""Scaling laws and the engine that fits them (numpy, scipy and pandas only).

    from fitters import make_law, fit
    law = make_law("performance", ["depth", "width"], y_range=(0, 1))
    result = fit(law, X, y, bootstrap=1000, holdout=2)
    result.params, result.ci, result.r2, result.holdout, result.warnings
    best_config(result, candidates, region)      # the decision, with its bootstrap interval

Adding a law is one file with a `Law` subclass (its options declared in `OPTIONS`) and one line
in `LAWS`; nothing else branches on the law.
"""

from __future__ import annotations

from typing import Any

from fitters.base import FitResult, Law, Option, Param, metric_range
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
    """The law `name` on `variables` (None: the law's defaults) with its declared options."""
    if name not in LAWS:
        raise ValueError(f"unknown law {name!r}; known: {', '.join(LAWS)}")
    return LAWS[name](variables, **options)


__all__ = [
    "LAWS",
    "ChinchillaLaw",
    "FitResult",
    "Law",
    "Option",
    "Param",
    "PerformanceLaw",
    "PowerLaw",
    "fit",
    "make_law",
    "metric_range",
]
