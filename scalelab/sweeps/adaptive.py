"""An adaptive sweep on Ray Tune: `fitters.adaptive.AdaptiveDesigner` chooses the cells wave by wave,
a Tune `Searcher` hands them to the trials.

The state lives on disk, so an adaptive sweep resumes like any other: the cells measured are those
with a finished summary, and a restarted driver fits the law to them and continues with the wave
they call for (or with the rest of the first wave). Every wave
is written to `results/<sweep>/adaptive.json` and logged to the sweep's MLflow parent run (the
decision's P(settled), the compute spent, the cells asked for). Cells the design did not need end
with status `unneeded`.

With `adaptive.curves`, a Tune scheduler (`make_scheduler`) reads every running cell's test-metric
curve and stops the cell once the curve's predicted final (`fitters.curves.predict_final`, at the
cell's epoch limit) has a 95% interval entirely below the value the law predicts for the current
decision: such a cell cannot become the best. (It could still move the law a little; its predicted
value stands in for the measured one, with its standard deviation drawn into the bootstrap.) Stopped
cells end with status `stopped_early`; their predictions are kept in adaptive.json for a resumed
driver. A restarted driver reads a resumed cell's earlier evaluations from its checkpoint (Tune
reports only the epochs after it), so the curve it judges is the whole one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fitters import make_law
from fitters.adaptive import AdaptiveDesigner, Grid, Wave
from fitters.curves import stop_prediction
from scalelab.atomic import atomic_write_json
from scalelab.run_record import RunRecord
from scalelab.sweeps import results as res
from scalelab.sweeps.planning import PlannedCell
from scalelab.sweeps.spec import ADAPTIVE_AXES, AdaptiveSpec

FILE = "adaptive.json"
FINISHED = "FINISHED"  # Searcher.FINISHED


class AdaptiveRun:
    """The design of one adaptive sweep: which cell runs next, and what the measured ones say."""

    def __init__(
        self,
        spec: AdaptiveSpec,
        planned: list[PlannedCell],
        root: Path,
        monitor: str,
        on_wave: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.spec, self.root, self.on_wave = spec, root, on_wave
        self.metric = spec.metric or monitor
        axes: dict[str, list[float]] = {
            var: sorted({float(getattr(p.cell.config.model, var)) for p in planned})
            for var in ADAPTIVE_AXES.values()
        }
        self.grid = Grid(axes)
        self.cell_at: dict[int, str] = {}
        self.epochs: dict[str, int] = {}  # a cell's epoch limit
        self.flops_per_epoch = np.zeros(len(self.grid))
        cost = np.zeros(len(self.grid))
        for p in planned:
            m = p.cell.config.model
            i = self._index(float(m.depth), float(m.width))
            self.cell_at[i] = p.cell.cell_id
            self.epochs[p.cell.cell_id] = p.cell.config.train.epochs
            self.flops_per_epoch[i] = p.flops_per_epoch
            cost[i] = p.flops_per_epoch * p.cell.config.train.epochs  # at most: early stopping spends less
        self.index_of = {c: i for i, c in self.cell_at.items()}
        if len(self.cell_at) != len(self.grid):
            raise ValueError("an adaptive sweep's cells must fill the depth x width grid")
        budget = spec.budget_flops or (spec.budget_fraction * cost.sum() if spec.budget_fraction else None)
        law = make_law(spec.law, list(axes), y_range=(0, 1))
        self.designer = AdaptiveDesigner(
            law, self.grid, cost, budget=budget, initial=spec.initial, wave=spec.wave, stop=spec.stop,
            bootstrap=spec.bootstrap, seed=spec.seed,
        )  # fmt: skip
        self.measured: dict[int, float] = {}
        self.sd: dict[int, float] = {}  # cells whose value is a learning-curve prediction
        self.stopped: dict[str, dict[str, Any]] = dict(self.read_log(root).get("stopped") or {})
        self.used: dict[int, tuple[float, float]] = {}  # cell -> (FLOPs, training seconds) actually spent
        self.failed: set[int] = set()
        self.running: set[int] = set()
        self.started: set[str] = set()  # cells handed to a trial in this invocation
        self.queue: list[int] = []
        self.finished = False
        self.last: Wave | None = None
        self.incumbent: float | None = None  # the law's value for the last wave's decision
        self._started = False
        # a resumed design numbers its waves after those an earlier driver recorded
        self.offset = max((int(e.get("wave", 0)) for e in self.read_log(root).get("waves", [])), default=0)

    def _index(self, depth: float, width: float) -> int:
        hit = np.flatnonzero((self.grid.values == np.array([depth, width])).all(1))
        return int(hit[0])

    # ------------------------------------------------------------------------------- state

    def value_of(self, cid: str) -> float | None:
        """The cell's metric from its summary, if it finished (None otherwise); notes what it spent."""
        i = self.index_of[cid]
        if cid in self.stopped:
            st = self.stopped[cid]
            self.sd[i] = float(st["sd"])
            self.used[i] = (self.flops_per_epoch[i] * st["epoch"], float(st.get("seconds", 0.0)))
            return float(st["value"])
        s = res.trial_summary(self.root, cid)
        if s is None or s.get("status") != "finished":
            return None
        rec = RunRecord.from_json(s)
        values = rec.selected_test if self.spec.which == "best" else rec.final
        v = values.get(self.metric)
        epochs = rec.epochs_run or self.epochs[cid]
        self.used[i] = (self.flops_per_epoch[i] * epochs, float(s.get("mean_epoch_time_s") or 0.0) * epochs)
        return float(v) if v is not None and np.isfinite(v) else None

    def spent(self) -> tuple[float, float]:
        """FLOPs and training hours the measured cells used."""
        flops = sum(self.used[i][0] for i in self.measured if i in self.used)
        hours = sum(self.used[i][1] for i in self.measured if i in self.used) / 3600
        return float(flops), float(hours)

    def _hours_budget(self) -> None:
        """A budget in hours becomes a FLOPs budget at the throughput measured so far."""
        if self.spec.budget_hours is None:
            return
        flops, hours = self.spent()
        if flops > 0 and hours > 0:
            self.designer.budget = self.spec.budget_hours / hours * flops

    def resume(self) -> None:
        """Take the cells finished earlier and replay the design up to the wave they lead to."""
        for cid, i in self.index_of.items():
            v = self.value_of(cid)
            if v is not None:
                self.measured[i] = v
        first = [c for c in self.designer.first_wave() if c not in self.measured]
        self._started = True
        if first:
            self.queue = first
            if self.offset == 0:
                self._record(None, first)
        else:
            self._next_wave()

    # ------------------------------------------------------------------------------ waves

    def next_cell(self) -> str | None:
        """The next cell to run, None to wait for the running ones, FINISHED when the design is done."""
        if not self._started:
            self.resume()
        if self.queue:
            i = self.queue.pop(0)
            self.running.add(i)
            self.started.add(self.cell_at[i])
            return self.cell_at[i]
        if self.running:
            return None
        if self.finished:
            return FINISHED
        self._next_wave()  # leaves cells queued, or the design finished
        return self.next_cell() if self.queue else FINISHED

    def complete(self, cid: str, error: bool = False) -> None:
        i = self.index_of[cid]
        self.running.discard(i)
        v = None if error else self.value_of(cid)
        if v is None:
            self.failed.add(i)  # not measured: the design goes on without it
        else:
            self.measured[i] = v
        if not self.running and not self.queue and not self.finished:
            # the wave is complete: decide now, so the last wave is recorded even when Tune has handed
            # out its last trial and will not ask again
            self._next_wave()

    def _next_wave(self) -> None:
        self._hours_budget()
        w = self.designer.update(self.measured, sd=self.sd, spent=self.spent()[0])
        self.last = w
        self.incumbent = self.designer.incumbent()
        todo = [c for c in w.next_cells if c not in self.failed and c not in self.measured]
        if w.done or not todo:
            self.finished = True
        self.queue = todo
        self._record(w, todo)

    def _record(self, w: Wave | None, asked: list[int]) -> None:
        log = self.read_log(self.root)
        entry: dict[str, Any] = (
            w.to_dict(self.grid)
            if w is not None
            else {"wave": 0, "measured": len(self.measured), "spent": 0.0, "reason": "first wave"}
        )
        if w is not None:
            entry["wave"] = self.offset + w.number
        entry["asked"] = [self.cell_at[i] for i in asked]
        entry["failed"] = sorted(self.cell_at[i] for i in self.failed)
        entry["full_grid_flops"] = float(self.designer.cost.sum())
        entry["budget_flops"] = self.designer.budget
        entry["hours_spent"] = self.spent()[1]
        if w is not None and w.result is not None and w.decision >= 0:
            entry["decision_metric"] = self.predicted(w)
        log["waves"] = [e for e in log.get("waves", []) if e.get("wave") != entry["wave"]] + [entry]
        log["metric"], log["which"] = self.metric, self.spec.which
        log["stopped"] = self.stopped
        atomic_write_json(log, self.root / FILE)
        if self.on_wave is not None:
            self.on_wave(entry)

    def predicted(self, w: Wave) -> dict[str, float]:
        """The law's prediction for the wave's decision, with its 95% band."""
        assert w.result is not None
        x = self.grid.values[[w.decision]]
        value = float(w.result.predict(x)[0])
        if w.result.bootstrap_thetas is None:
            return {"value": value, "lo": value, "hi": value}
        lo, hi = w.result.predict_interval(x)
        return {"value": value, "lo": float(lo[0]), "hi": float(hi[0])}

    # ------------------------------------------------------------------- learning curves

    def check_curve(self, cid: str, curve: list[tuple[int, float]], seconds: float) -> dict[str, Any] | None:
        """Whether the running cell `cid`, whose metric so far is `curve` [(epoch, value)], should stop:
        its prediction (kept, and returned) when its interval cannot reach the decision's value."""
        w = self.last
        if not self.spec.curves or w is None or w.result is None or w.decision < 0 or cid in self.stopped:
            return None
        if self.index_of[cid] == w.decision:
            return None
        incumbent = self.incumbent  # once per wave, not on every trial result
        if incumbent is None:
            return None
        epochs = np.array([e for e, _ in curve], dtype=float)
        values = np.array([v for _, v in curve], dtype=float)
        pred = stop_prediction(epochs, values, self.epochs[cid], incumbent)
        if pred is None:
            return None
        lo, hi = pred.ci95
        info = {
            "value": pred.value, "sd": max((hi - lo) / 3.92, 0.0), "ci95": [lo, hi], "epoch": int(max(epochs)),
            "epochs": self.epochs[cid], "incumbent": incumbent, "seconds": seconds,
            "reason": f"stopped at epoch {int(max(epochs))}: predicted final {self.metric} {pred.value:.4f} "
            f"[{lo:.4f}, {hi:.4f}] cannot reach the decision's {incumbent:.4f}",
        }  # fmt: skip
        self.stopped[cid] = info
        log = self.read_log(self.root)
        log["stopped"] = self.stopped
        atomic_write_json(log, self.root / FILE)  # kept at once: a driver that dies now still knows
        return info

    def recorded_done(self) -> bool:
        """Whether the log's last wave already ended the design."""
        waves = self.read_log(self.root).get("waves") or []
        return bool(waves and waves[-1].get("done"))

    @staticmethod
    def read_log(root: Path) -> dict[str, Any]:
        import json

        path = root / FILE
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            data = {}
        return data if isinstance(data, dict) else {}


def make_searcher(run: AdaptiveRun) -> Any:
    """A Ray Tune Searcher over `run` (its suggestions are {"cell": cell id})."""
    from ray.tune.search import Searcher

    class AdaptiveSearcher(Searcher):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(metric=None, mode=None)
            self.cells: dict[str, str] = {}

        def suggest(self, trial_id: str) -> dict[str, Any] | None:  # or Searcher.FINISHED (a str)
            cid = run.next_cell()
            if cid is None or cid == FINISHED:
                return Searcher.FINISHED if cid == FINISHED else None  # type: ignore[return-value]
            self.cells[trial_id] = cid
            return {"cell": cid}

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            cid = self.cells.pop(trial_id, None)
            if cid is not None:
                run.complete(cid, error)

    return AdaptiveSearcher()


def make_scheduler(run: AdaptiveRun) -> Any:
    """A Ray Tune scheduler that stops a running cell once `run.check_curve` says its learning curve
    cannot reach the decision (FIFO otherwise)."""
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    key = f"test_{run.metric}"

    class CurveScheduler(FIFOScheduler):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.curves: dict[str, list[tuple[int, float]]] = {}
            self.seconds: dict[str, float] = {}
            self.seen: set[str] = set()

        def catch_up(self, cid: str, epoch: int) -> None:
            """The epochs before `epoch` from the cell's checkpoint (a cell resumed by a restarted
            driver reports only the epochs after its checkpoint)."""
            from scalelab.training.checkpoint import read_history

            if epoch <= 1:
                return
            for h in read_history(run.root / "trials" / cid / "checkpoint.pt"):
                if int(h.get("epoch", epoch)) < epoch:
                    self.seconds[cid] = self.seconds.get(cid, 0.0) + float(h.get("epoch_time_s") or 0.0)
                    if h.get(key) is not None:
                        self.curves.setdefault(cid, []).append((int(h["epoch"]), float(h[key])))

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
            cid = trial.config["cell"]
            if "epoch" in result and "status" not in result:
                if cid not in self.seen:  # a cell resumed after a driver restart: its earlier epochs
                    self.seen.add(cid)
                    self.catch_up(cid, int(result["epoch"]))
                self.seconds[cid] = self.seconds.get(cid, 0.0) + float(result.get("epoch_time_s") or 0.0)
                if result.get(key) is not None:
                    self.curves.setdefault(cid, []).append((int(result["epoch"]), float(result[key])))
                    if result.get("last_epoch"):  # the cell ends here anyway: its measured value stands
                        return TrialScheduler.CONTINUE  # type: ignore[no-any-return]
                    if run.check_curve(cid, self.curves[cid], self.seconds[cid]) is not None:
                        return TrialScheduler.STOP  # type: ignore[no-any-return]  # Tune compares by identity
            return TrialScheduler.CONTINUE  # type: ignore[no-any-return]

    return CurveScheduler()
