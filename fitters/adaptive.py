"""Adaptive design of a scaling sweep: which cells of a grid to run next so that the decision (the
best cell, or the best cell under a compute budget) is settled with the least compute.

Wave by wave:
1. An initial wave that determines the law at little cost: the cheapest cells of the lattice of each
   axis's smallest, middle and largest value, as many as keep three distinct values per variable
   (identifiability) and at least `initial` (default 7 of the 9 of a two-axis grid: the two
   costliest lattice cells are measured later only if the decision may lie near them).
2. After each wave the law is fitted with the bootstrap (`engine.fit`), and the decision is taken
   again under every bootstrap parameter vector: p(c) is the share of those decisions that pick
   candidate c, the bootstrap distribution of the decision that `decisions.best_config` reports the
   interval of. The next wave measures the unmeasured candidates a Thompson draw from p picks (one
   bootstrap replicate per slot, its decision taken; repeats skipped), i.e. the cells most likely to
   be the answer; when p sits on measured cells only, the cells with the widest bootstrap prediction
   band among the plausible ones (p > 0 or within one grid step of the mode).
3. It stops when P(the decision is within one grid step of the modal decision) >= `stop` (0.9) and
   the mode has been measured, or when the next wave would exceed the compute budget.

Thompson sampling on a bootstrap distribution (a bootstrap "posterior") is the simplest acquisition
that targets the decision rather than the law's parameters; it needs no tuning constant. The stop
rule reads the same distribution, so its reliability is that of the decision intervals, whose
coverage is measured in results/reference/fit.md (90-97%).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fitters.base import FitResult, Law
from fitters.engine import fit


@dataclass
class Grid:
    """A product grid of axis values; cells are indexed in row-major order."""

    axes: dict[str, list[float]]

    def __post_init__(self) -> None:
        self.names = list(self.axes)
        self.shape = tuple(len(v) for v in self.axes.values())
        self.index = np.array(list(itertools.product(*(range(n) for n in self.shape))), dtype=int)
        self.values = np.array(
            [[self.axes[a][i] for a, i in zip(self.names, row, strict=True)] for row in self.index],
            dtype=float,
        )

    def __len__(self) -> int:
        return len(self.values)

    def steps(self, a: int, b: np.ndarray | int) -> np.ndarray:
        """Grid steps (Chebyshev distance of the axis indices) between cell a and cells b."""
        return np.abs(self.index[np.atleast_1d(b)] - self.index[a]).max(axis=1)

    def log_coords(self) -> np.ndarray:
        """Cells in log coordinates scaled to [0, 1] per axis (for distances)."""
        x = np.log(self.values)
        span = x.max(0) - x.min(0)
        return (x - x.min(0)) / np.where(span > 0, span, 1.0)


def initial_design(grid: Grid, n: int, cost: np.ndarray | None = None) -> list[int]:
    """`n` cells that determine a law: the lattice of each axis's smallest, middle and largest value
    (so every variable has three distinct values), cheapest first when `cost` is given (the costliest
    lattice cells are left to later waves, which go there only if the decision may lie there); more
    than the lattice holds: greedy maximin in log coordinates."""
    levels = [sorted({0, s // 2, s - 1}) for s in grid.shape]
    lattice = [int(np.flatnonzero((grid.index == np.array(c)).all(1))[0]) for c in itertools.product(*levels)]
    if cost is not None:
        lattice.sort(key=lambda c: cost[c])
    chosen = lattice[: max(n, _lattice_minimum(grid, lattice, n))]
    x = grid.log_coords()
    while len(chosen) < min(n, len(grid)):
        d = np.min(np.linalg.norm(x[:, None, :] - x[None, chosen, :], axis=2), axis=1)
        d[chosen] = -1.0
        chosen.append(int(np.argmax(d)))
    return chosen


def _lattice_minimum(grid: Grid, lattice: list[int], n: int) -> int:
    """The fewest leading lattice cells (in the given order) that hold three distinct values of
    every axis (or all its values, for an axis with fewer), at least `n`."""
    for k in range(max(1, n), len(lattice) + 1):
        idx = grid.index[lattice[:k]]
        if all(len(set(idx[:, j])) >= min(3, s) for j, s in enumerate(grid.shape)):
            return k
    return len(lattice)


@dataclass
class Wave:
    """What the designer concluded after a wave, and what it asks for next."""

    number: int
    measured: int  # cells measured so far
    spent: float  # their compute
    decision: int  # the full-data fit's best cell (-1 before any fit)
    mode: int  # the most frequent bootstrap decision
    settled: float  # P(decision within one grid step of the mode)
    probabilities: np.ndarray = field(repr=False)  # p(best) per cell
    next_cells: list[int] = field(default_factory=list)
    edge: dict[str, str] = field(default_factory=dict)  # axis -> "larger"/"smaller": no interior optimum
    interval: dict[str, tuple[float, float]] = field(default_factory=dict)  # 95% of the bootstrap decisions
    done: bool = False
    reason: str = ""
    result: FitResult | None = field(default=None, repr=False)

    def to_dict(self, grid: Grid) -> dict[str, Any]:
        def cell(i: int) -> dict[str, float] | None:
            return dict(zip(grid.names, grid.values[i].tolist(), strict=True)) if i >= 0 else None

        return {
            "wave": self.number,
            "measured": self.measured,
            "spent": self.spent,
            "decision": cell(self.decision),
            "mode": cell(self.mode),
            "settled": self.settled,
            "no_interior_optimum": self.edge,
            "decision_ci95": {a: list(v) for a, v in self.interval.items()},
            "next": [cell(i) for i in self.next_cells],
            "done": self.done,
            "reason": self.reason,
        }


class AdaptiveDesigner:
    """Chooses the cells of a scaling sweep wave by wave (see the module docstring).

    law: an unfitted law over the grid's axes (in their order). cost: compute of each cell (same
    order as the grid). budget: total compute allowed (None: the full grid's). feasible: cells the
    decision may pick (e.g. within a compute budget); all by default."""

    def __init__(
        self,
        law: Law,
        grid: Grid,
        cost: np.ndarray,
        *,
        budget: float | None = None,
        initial: int = 7,
        wave: int = 3,
        stop: float = 0.9,
        bootstrap: int = 200,
        seed: int = 0,
        feasible: np.ndarray | None = None,
        fit_options: dict[str, Any] | None = None,
    ) -> None:
        if list(law.variables) != grid.names:
            raise ValueError(f"the law's variables {law.variables} are not the grid's axes {grid.names}")
        self.law, self.grid = law, grid
        self.cost = np.asarray(cost, dtype=float)
        self.budget = float(self.cost.sum() if budget is None else budget)
        self.initial, self.wave, self.stop = initial, wave, stop
        self.bootstrap, self.seed = bootstrap, seed
        self.feasible = np.ones(len(grid), bool) if feasible is None else np.asarray(feasible, bool)
        self.fit_options = fit_options or {}
        self.rng = np.random.default_rng(seed)
        self.waves: list[Wave] = []

    def incumbent(self) -> float | None:
        """The law's value at the last wave's decision (what a learning curve must be able to reach to
        matter); None before the first fit."""
        w = self.waves[-1] if self.waves else None
        if w is None or w.result is None or w.decision < 0:
            return None
        return float(w.result.predict(self.grid.values[[w.decision]])[0])

    def first_wave(self) -> list[int]:
        cells = initial_design(self.grid, self.initial, self.cost)
        return self._affordable(cells, spent=0.0)

    def _affordable(self, cells: list[int], spent: float) -> list[int]:
        out = []
        for c in cells:
            if spent + self.cost[c] <= self.budget * (1 + 1e-9):
                out.append(c)
                spent += self.cost[c]
        return out

    def _choose(self, theta: np.ndarray) -> int:
        pred = self.law.predict(self.grid.values, theta)
        pred = pred if self.law.higher_is_better else -pred
        pred = np.where(self.feasible & np.isfinite(pred), pred, -np.inf)
        return int(np.argmax(pred))

    def update(
        self,
        measured: dict[int, float],
        progress: Callable[[int, int], None] | None = None,
        sd: dict[int, float] | None = None,
        spent: float | None = None,
    ) -> Wave:
        """Fit the law to the measured cells (cell -> metric) and decide the next wave. `sd`: cells
        whose value is a prediction (a run stopped early on its learning curve) with its standard
        deviation, drawn into the bootstrap. `spent`: compute spent so far (default: the measured
        cells' full cost; less when runs were stopped early)."""
        cells = sorted(measured)
        spent = float(self.cost[cells].sum()) if spent is None else float(spent)
        X, y = self.grid.values[cells], np.array([measured[c] for c in cells], dtype=float)
        y_sd = np.array([(sd or {}).get(c, 0.0) for c in cells], dtype=float)
        n = len(self.grid)
        number = len(self.waves) + 1
        try:
            result = fit(self.law, X, y, bootstrap=self.bootstrap, seed=self.seed + number, progress=progress,
                         y_sd=y_sd, **self.fit_options)  # fmt: skip
        except ValueError as e:  # too few points for the law: widen the design first
            todo = [
                c for c in initial_design(self.grid, len(cells) + self.wave, self.cost) if c not in measured
            ]
            w = Wave(number, len(cells), spent, -1, -1, 0.0, np.zeros(n), self._affordable(todo, spent))
            w.reason = f"no fit yet ({e})"
            w.done = not w.next_cells
            self.waves.append(w)
            return w
        decision = self._choose(result.theta)
        thetas = result.bootstrap_thetas if result.bootstrap_thetas is not None else result.theta[None]
        picks = np.array([self._choose(t) for t in thetas], dtype=int)
        p = np.bincount(picks, minlength=n) / len(picks)
        mode = int(np.argmax(p))
        settled = float(p[self.grid.steps(mode, np.arange(n)) <= 1].sum())
        w = Wave(number, len(cells), spent, decision, mode, settled, p, result=result)
        vals = self.grid.values[picks]  # the decision under each bootstrap vector
        w.interval = {
            a: (float(np.quantile(vals[:, j], 0.025, method="inverted_cdf")),
                float(np.quantile(vals[:, j], 0.975, method="inverted_cdf")))
            for j, a in enumerate(self.grid.names)
        }  # fmt: skip
        w.edge = self.edge(mode, result.theta)
        if settled >= self.stop and mode in measured:
            w.done, w.reason = True, f"settled: P(within one step of the mode) = {settled:.2f}"
            if w.edge:
                toward = ", ".join(f"{d} {a}" for a, d in w.edge.items())
                w.reason += f"; no interior optimum in the grid: the law keeps improving toward {toward}"
        else:
            w.next_cells = self._affordable(self._next(picks, p, mode, measured, result), spent)
            if not w.next_cells:
                w.done = True
                w.reason = "budget spent" if any(c not in measured for c in range(n)) else "grid exhausted"
        self.waves.append(w)
        return w

    def edge(self, cell: int, theta: np.ndarray) -> dict[str, str]:
        """Axes on which `cell` sits at the grid's edge while the law still improves one step beyond
        it (a step of the axis's own last ratio): the grid holds no interior optimum there, and the
        answer is "larger" or "smaller", not this cell."""
        out: dict[str, str] = {}
        sign = 1.0 if self.law.higher_is_better else -1.0
        here = sign * float(self.law.predict(self.grid.values[[cell]], theta)[0])
        for j, name in enumerate(self.grid.names):
            vals = sorted(self.grid.axes[name])
            k = int(self.grid.index[cell, j])
            if len(vals) < 2:
                continue
            for at, beyond, word in (
                (len(vals) - 1, vals[-1] ** 2 / vals[-2], "larger"),
                (0, vals[0] ** 2 / vals[1], "smaller"),
            ):
                if k != at:
                    continue
                x = self.grid.values[[cell]].copy()
                x[0, j] = beyond
                out_there = sign * float(self.law.predict(x, theta)[0])
                if np.isfinite(out_there) and out_there > here:
                    out[name] = word
        return out

    def _next(
        self, picks: np.ndarray, p: np.ndarray, mode: int, measured: dict[int, float], result: FitResult
    ) -> list[int]:
        chosen: list[int] = []
        for c in self.rng.permutation(picks):  # Thompson draws: one bootstrap replicate's decision each
            c = int(c)
            if c not in measured and c not in chosen:
                chosen.append(c)
            if len(chosen) == self.wave:
                return chosen
        # the plausible cells with the widest prediction band
        near = self.grid.steps(mode, np.arange(len(self.grid))) <= 1
        plausible = np.flatnonzero((p > 0) | near)
        todo = [int(c) for c in plausible if c not in measured and c not in chosen]
        if todo and result.bootstrap_thetas is not None:
            band = result.bootstrap_predictions(self.grid.values[todo])
            width = np.quantile(band, 0.975, axis=0) - np.quantile(band, 0.025, axis=0)
            todo = [todo[i] for i in np.argsort(-width)]
        return (chosen + todo)[: self.wave]

    def run(self, measure: Callable[[list[int]], dict[int, float | tuple[float, float]]]) -> Wave:
        """Drive a whole design: `measure(cells)` returns each cell's metric (a simulation, or a sweep
        wave), or (value, standard deviation) for a value predicted rather than measured. Returns the
        last wave."""
        measured: dict[int, float] = {}
        sd: dict[int, float] = {}

        def take(out: dict[int, float | tuple[float, float]]) -> None:
            for c, v in out.items():
                if isinstance(v, tuple):
                    measured[c], sd[c] = float(v[0]), float(v[1])
                else:
                    measured[c] = float(v)

        take(measure(self.first_wave()))
        while True:
            w = self.update(measured, sd=sd)
            if w.done:
                return w
            take(measure(w.next_cells))
