"""Learning-curve fidelity: a run's final metric predicted from its validation curve so far.

The curve is fitted with the saturating power law in epochs, y(e) = E - A e^-alpha ("pow3" in Domhan
et al., IJCAI 2015, one of the best single parametric families in their comparison of learning-
curve models; it is monotone and bounded, and three parameters are determined by a handful of
evaluations). It is the `power` law of this package with `direction="rising"` on the variable
`epochs`, fitted by the same engine, so the prediction carries the engine's bootstrap interval.
`can_matter` is the early-stopping test an adaptive sweep uses: a run whose predicted final cannot
reach the current decision's value cannot change the decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fitters.engine import fit
from fitters.power import PowerLaw

MIN_POINTS = 4  # evaluations needed before a prediction is attempted


@dataclass
class FinalPrediction:
    value: float  # predicted metric at the final epoch
    ci95: tuple[float, float]
    points: int  # evaluations the prediction used


def predict_final(
    epochs: np.ndarray,
    values: np.ndarray,
    final_epoch: float,
    *,
    higher_is_better: bool = True,
    y_range: tuple[float, float] | None = (0.0, 1.0),
    bootstrap: int = 200,
    seed: int = 0,
    refine: int = 2,
) -> FinalPrediction | None:
    """The metric at `final_epoch` from the (epoch, value) evaluations so far, with a 95% bootstrap
    interval; None with fewer than MIN_POINTS evaluations. A falling metric (a loss) is fitted as
    y = E + A e^-alpha. `refine`: starts refined (three parameters need few; the engine's default is 8)."""
    e = np.asarray(epochs, dtype=float)
    y = np.asarray(values, dtype=float)
    ok = np.isfinite(e) & np.isfinite(y) & (e > 0)
    e, y = e[ok], y[ok]
    if len(e) < MIN_POINTS:
        return None
    if len(e) and e.max() >= final_epoch:  # already there: the measured value
        last = float(y[np.argmax(e)])
        return FinalPrediction(last, (last, last), len(e))
    law = PowerLaw(["epochs"], direction="rising" if higher_is_better else "falling", y_range=y_range)
    res = fit(law, e[:, None], y, bootstrap=bootstrap, seed=seed, refine=refine)
    x = np.array([[float(final_epoch)]])
    lo, hi = res.predict_interval(x)
    return FinalPrediction(float(res.predict(x)[0]), (float(lo[0]), float(hi[0])), len(e))


STOP_BOOTSTRAP = 100  # resamples behind an early-stopping prediction


def stop_candidate(
    epochs: np.ndarray, values: np.ndarray, final_epoch: float, *, higher_is_better: bool = True
) -> FinalPrediction | None:
    """The prediction an early-stopping test judges (seeded by the number of evaluations, so the same
    curve always gives the same one): None while too few evaluations are in, or once the run is at
    `final_epoch` (nothing left to save)."""
    e = np.asarray(epochs, dtype=float)
    if not len(e) or e.max() >= final_epoch:
        return None
    return predict_final(
        e, values, final_epoch, higher_is_better=higher_is_better, bootstrap=STOP_BOOTSTRAP, seed=len(e)
    )


def stop_prediction(
    epochs: np.ndarray,
    values: np.ndarray,
    final_epoch: float,
    incumbent: float,
    *,
    higher_is_better: bool = True,
) -> FinalPrediction | None:
    """The early-stopping test of an adaptive sweep: the run's predicted final (`stop_candidate`) when
    its interval cannot reach `incumbent` (stop it), else None."""
    pred = stop_candidate(epochs, values, final_epoch, higher_is_better=higher_is_better)
    if pred is None or can_matter(pred, incumbent, higher_is_better):
        return None
    return pred


def can_matter(pred: FinalPrediction, incumbent: float, higher_is_better: bool = True) -> bool:
    """Whether a run predicted as `pred` can still beat `incumbent` (the decision's value): its
    interval reaches past it."""
    return pred.ci95[1] > incumbent if higher_is_better else pred.ci95[0] < incumbent
