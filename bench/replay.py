"""Ray Tune's ASHA scheduler replayed on learning curves (simulated, or recorded by a finished sweep).

`ray.tune.schedulers.ASHAScheduler` is driven exactly as Tune drives it (on_trial_add, one
on_trial_result per evaluation, on_trial_complete), without starting Ray: trials are run by
`workers` slots in round robin, one epoch per step, a new cell starting in a slot as soon as one
ends, so results reach the scheduler in the order an asynchronous run on that many workers would
deliver them. What is compared is the scheduler's logic (which cells it stops, when), on the same
curves the other strategies see.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np


def ray_asha(
    cells: list[int],
    curve: Callable[[int, int], float | None],
    last_epoch: Callable[[int], int],
    cost_per_epoch: Callable[[int], float],
    *,
    higher_is_better: bool,
    max_t: int,
    grace: int = 1,
    reduction_factor: float = 3,
    workers: int = 8,
) -> tuple[dict[int, float], dict[int, int], float]:
    """Run ASHA over `cells`: `curve(c, e)` is cell c's metric after epoch e (None: not evaluated that
    epoch), `last_epoch(c)` where its training ends on its own. Returns each cell's last reported
    metric, the epochs each trained, and the compute spent."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    asha = ASHAScheduler(
        metric="m", mode="max" if higher_is_better else "min", max_t=max_t, grace_period=grace,
        reduction_factor=reduction_factor,
    )  # fmt: skip
    queue = list(cells)
    running: dict[int, SimpleNamespace] = {}
    last: dict[int, float] = {}
    trained: dict[int, int] = {}
    spent = 0.0
    while queue or running:
        while queue and len(running) < workers:
            c = queue.pop(0)
            running[c] = SimpleNamespace(trial_id=f"t{c}", epoch=0)
            asha.on_trial_add(None, running[c])
        for c in list(running):
            t = running[c]
            t.epoch += 1
            spent += cost_per_epoch(c)
            trained[c] = t.epoch
            value = curve(c, t.epoch)
            ended = t.epoch >= min(last_epoch(c), max_t)
            if value is not None:
                last[c] = value
                result = {"training_iteration": t.epoch, "m": value}
                if ended:
                    asha.on_trial_complete(None, t, result)
                elif asha.on_trial_result(None, t, result) == TrialScheduler.STOP:
                    ended = True
            if ended:
                del running[c]
    return last, trained, spent


def best_of(values: dict[int, float], higher_is_better: bool, allowed: np.ndarray | None = None) -> int:
    """The cell with the best value (among `allowed`, when given and not empty)."""
    keys = [c for c in values if allowed is None or allowed[c]] or list(values)
    sign = 1.0 if higher_is_better else -1.0
    return max(keys, key=lambda c: sign * values[c])
