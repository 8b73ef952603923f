"""Tune callback forwarding trial events to the sweep driver.

Tune pickles its callbacks with the experiment state. This class lives in an importable module (so
it is pickled by reference) and holds only a key into `REGISTRY`, which keeps the driver-side
objects (MLflow clients, live display) out of the pickle.
"""

from __future__ import annotations

from typing import Any

from ray import tune

REGISTRY: dict[int, Any] = {}


class Bridge(tune.Callback):
    key: int = 0

    def _cb(self) -> Any:
        return REGISTRY[self.key]

    def on_trial_start(self, iteration, trials, trial, **info):
        self._cb()[0].on_start(trial.config["cell"])

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._cb()[0].on_result(trial.config["cell"], result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._cb()[0].on_end(trial.config["cell"], error=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._cb()[0].on_end(trial.config["cell"], error=True)

    def on_step_end(self, iteration, trials, **info):
        driver, show = self._cb()
        if show is not None:
            show(driver.counts)
