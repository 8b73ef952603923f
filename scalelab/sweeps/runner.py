"""Run a sweep on Ray Tune: plan, preflight, execute, track, tabulate.

Resume model: a cell is done when its run directory holds a finished (or diverged) summary. Every
invocation runs the cells that are not done, as one Tune experiment; an interrupted cell resumes
from its own checkpoint, a failed one starts again from its checkpoint. Only the driver writes to
MLflow (a Tune callback), so a sqlite store is safe; child run ids are kept in cells.json so a
re-run continues the same MLflow runs instead of duplicating them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.atomic import atomic_write_json
from scalelab.errors import UserError
from scalelab.sweeps import results as res
from scalelab.sweeps.continuation import continue_from_stale
from scalelab.sweeps.execution import _ray_init, _run_tune, _trial_env, cluster_nodes
from scalelab.sweeps.lock import ResultsLock
from scalelab.sweeps.planning import (
    EPOCH_BYTES,
    MIN_FREE_BYTES,
    TRIAL_FIXED_BYTES,
    PlannedCell,
    absolute_data_paths,
    check_free_space,
    check_writable,
    describe_shape,
    local_resources,
    plan,
    preflight,
    totals,
    trials_that_fit,
    written_bytes,
)
from scalelab.sweeps.progress import Counts, TrialView
from scalelab.sweeps.spec import Cell, SweepSpec
from scalelab.sweeps.tracking_driver import _DriverCallback, _open_tracking, record_summary

__all__ = [  # the planning names are re-exported: `scalelab sweep --dry-run` and the tests use them here
    "EPOCH_BYTES", "MIN_FREE_BYTES", "TRIAL_FIXED_BYTES", "Counts", "PlannedCell", "SweepOutcome",
    "TrialView", "absolute_data_paths", "check_free_space", "check_writable", "cluster_nodes",
    "describe_shape", "local_resources", "plan", "preflight", "record_summary", "run_sweep", "totals",
    "trials_that_fit", "written_bytes",
]  # fmt: skip


# a cell that ended, one way or the other (unneeded: an adaptive sweep's design did not ask for it)
# stopped_early: its learning curve showed it could not change the adaptive design's decision
DONE_STATUSES = ("finished", "diverged", "failed", "oom", "unneeded", "stopped_early")


@dataclass
class SweepOutcome:
    root: Path
    table: Any
    counts: Counts

    undelivered: int = 0  # tracking writes the store did not take (kept in the spool)
    spool: Path | None = None
    tracking_error: str = ""

    @property
    def unfinished(self) -> Any:
        """Rows of the cells this invocation left neither done nor failed (an interrupted sweep)."""
        return self.table[~self.table["status"].isin(list(DONE_STATUSES))]

    @property
    def exit_code(self) -> int:
        """0: every cell done; 1: a cell failed or diverged, or tracking writes are pending;
        3: the sweep was interrupted with cells still to run (re-run to resume)."""
        if len(self.unfinished):
            return 3
        ok = self.counts.failed == 0 and self.counts.diverged == 0 and self.undelivered == 0
        return 0 if ok else 1


def run_sweep(
    spec: SweepSpec,
    cells: list[Cell],
    source: str,
    address: str | None = None,
    track: bool = True,
    status: Callable[[Counts], Any] | None = None,
    resume_from: Path | None = None,
) -> SweepOutcome:
    """Run every cell that is not done yet; returns the runs table and the counts. The driver holds
    the results directory's lock throughout: a second driver is refused at once.

    `resume_from`: a runs table kept from another machine or results directory; the cells it lists
    as finished (or diverged) with this sweep's exact settings are carried, not run again."""
    root = spec.results_dir()
    if resume_from is not None and spec.adaptive is not None:
        raise UserError(
            f"{source}: --resume-from does not combine with an adaptive design (its waves are chosen "
            "from the cells run here)"
        )
    check_writable(root)
    with ResultsLock(root):
        if resume_from is not None:
            res.carry_rows(root, resume_from, cells)
        return _run_sweep(spec, cells, source, root, address, track, status)


def _adaptive_run(spec: SweepSpec, planned: list[PlannedCell], root: Path, monitor: str, parent: Any) -> Any:
    """The adaptive design of the sweep; each wave is logged to the parent MLflow run."""
    from scalelab.sweeps.adaptive import AdaptiveRun

    def on_wave(entry: dict[str, Any]) -> None:
        if parent is None:
            return
        step = int(entry["wave"])
        metrics = {"adaptive_cells_measured": entry["measured"], "adaptive_flops_spent": entry["spent"]}
        if entry.get("settled") is not None:
            metrics["adaptive_settled"] = entry["settled"]
        parent.log_metrics(metrics, step=step)
        parent.log_artifact(root / "adaptive.json")

    assert spec.adaptive is not None
    return AdaptiveRun(spec.adaptive, planned, root, monitor, on_wave)


def _earlier_view(root: Path, p: PlannedCell, st: dict[str, Any]) -> TrialView | None:
    """A cell finished by an earlier invocation, as the ETA reads it: its epochs and its wall time
    over all attempts (None when either was not recorded)."""
    summary = res.trial_summary(root, p.cell.cell_id)
    wall, epochs = st.get("wall_time_s"), (summary or {}).get("epochs_run")
    if not wall or not epochs:
        return None
    return TrialView(
        p.cell.config.name, p.cell.config.train.epochs, state="finished", epoch=int(epochs), started=0.0,
        ended=float(wall), first_epoch=1, flops_per_epoch=p.flops_per_epoch, targets_per_epoch=p.targets_per_epoch,
    )  # fmt: skip


def _run_sweep(
    spec: SweepSpec,
    cells: list[Cell],
    source: str,
    root: Path,
    address: str | None,
    track: bool,
    status: Callable[[Counts], Any] | None,
) -> SweepOutcome:
    address = address or spec.address
    cells = absolute_data_paths(cells)
    planned = plan(spec, cells)
    nodes = cluster_nodes(address)
    preflight(planned, nodes, source)

    by_id = {c.cell_id: c for c in cells}
    state = res.read_state(root)
    for cid, record in state.items():
        res.close_interrupted_attempt(root, cid, record)
    counts = Counts(total=len(cells))
    carried = res.carried_ids(root)
    todo = []
    for p in planned:
        st = res.cell_status(root, p.cell.cell_id, state)
        if st in ("finished", "diverged"):
            counts.skipped += 1
            state.setdefault(p.cell.cell_id, {})["status"] = st
            if st == "finished" and (earlier := _earlier_view(root, p, state[p.cell.cell_id])) is not None:
                counts.earlier.append(earlier)
        elif p.cell.cell_id in carried:  # measured elsewhere: its row is in carried.csv
            counts.skipped += 1
            counts.carried += 1
            state.setdefault(p.cell.cell_id, {})["status"] = "carried"
        else:
            todo.append(p)
            rec = state.setdefault(p.cell.cell_id, {})
            if rec.get("status") in ("interrupted", "running"):  # queued again, until its trial starts
                rec["status"] = "pending"
    check_free_space(root, sum(p.disk_bytes for p in todo))
    continued = continue_from_stale(root, cells, [p.cell for p in todo])
    counts.continued = len(continued)
    for cid, donor in continued.items():
        state.setdefault(cid, {})["continued_from"] = donor
    atomic_write_json(spec.model_dump(mode="json"), root / "spec.json")

    loggers: dict[str, Any] = {}
    parent = outbox = None
    if track:
        # Creating the MLflow runs (seconds on a fresh sqlite store) overlaps with starting Ray.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            opening = pool.submit(_open_tracking, spec, root, cells, todo, state, loggers)
            if todo:
                try:
                    _ray_init(address, env=_trial_env())
                except UserError:
                    opening.result()  # a tracking error, if any, is the first thing to report
                    raise
            parent, outbox = opening.result()
        res.write_state(root, state)

    counts.metric = cells[0].config.monitor()
    for p in todo:
        cfg = p.cell.config
        counts.trials[p.cell.cell_id] = TrialView(
            cfg.name,
            cfg.train.epochs,
            flops_per_epoch=p.flops_per_epoch,
            targets_per_epoch=p.targets_per_epoch,
        )
    cb = _DriverCallback(root, by_id, state, counts, loggers, cells[0].config.monitor())
    design = _adaptive_run(spec, planned, root, cells[0].config.monitor(), parent) if spec.adaptive else None
    if design is not None:
        cb.early = design.stopped
    try:
        if todo:
            _run_tune(spec, todo, root, address, cb, status, totals(nodes), design)
        elif design is not None and not design.recorded_done():
            design.next_cell()  # every cell is done: record the design's decision on all of them
    finally:
        for p in todo:  # started or queued but never ended: the sweep was interrupted
            rec = state.setdefault(p.cell.cell_id, {})
            if rec.get("status", "pending") in ("pending", "running"):
                unneeded = design is not None and design.finished and p.cell.cell_id not in design.started
                # a cell that never trained stays pending; one with training to resume is interrupted
                begun = (
                    rec.get("status") == "running"
                    or (root / "trials" / p.cell.cell_id / "checkpoint.pt").exists()
                )
                rec["status"] = "unneeded" if unneeded else "interrupted" if begun else "pending"
                lg = loggers.get(p.cell.cell_id)
                if unneeded and lg is not None:
                    lg.set_tags(
                        {"status": "unneeded", "reason": "the adaptive design did not ask for this cell"}
                    )
                    lg.finish("KILLED")
        res.write_state(root, state)
        table = res.build_table(root, cells, state)
        res.write_table(root, table)
        if parent is not None:
            statuses = table["status"].value_counts().to_dict()
            parent.set_tags({f"cells_{k}": v for k, v in statuses.items()})
            parent.log_artifact(root / "runs.csv")
            ended = ("finished", "unneeded", "stopped_early")
            complete = sum(statuses.get(k, 0) for k in ended) == len(cells)
            parent.finish("FINISHED" if complete else "FAILED")
    outcome = SweepOutcome(root, table, counts)
    if outbox is not None:
        delivered = outbox.drain(spec.tracking.drain_timeout_s)
        if delivered and cb.deferred:
            retry, cb.deferred = cb.deferred, []
            for cid in retry:  # complete() puts a cell back if the store still cannot be read
                summary = res.trial_summary(root, cid)
                if summary is not None:
                    cb.complete(cid, loggers[cid], summary)
            delivered = outbox.drain(spec.tracking.drain_timeout_s)
            res.write_state(root, state)
        if not delivered or cb.deferred:
            outcome.undelivered, outcome.spool = len(outbox.pending) + len(cb.deferred), outbox.spool
            outcome.tracking_error = getattr(outbox, "last_error", "")
    return outcome
