"""The driver's side of tracking: a Tune callback that keeps MLflow child runs, cells.json, the
runs table and the live counters up to date, and fills in what a trial wrote while the driver was
not watching (backfill from the trial's own summary)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab.atomic import atomic_write_json
from scalelab.run_record import RunRecord
from scalelab.sweeps import results as res
from scalelab.sweeps.planning import PlannedCell
from scalelab.sweeps.progress import Counts, TrialView
from scalelab.sweeps.spec import Cell, SweepSpec

log = logging.getLogger(__name__)


class _DriverCallback:
    """Tune callback on the driver: MLflow child runs, cells.json, runs table, live counters."""

    def __init__(
        self,
        root: Path,
        cells: dict[str, Cell],
        state: dict[str, dict[str, Any]],
        counts: Counts,
        loggers: dict[str, Any],
        monitor: str,
    ) -> None:
        self.root, self.cells, self.state, self.counts = root, cells, state, counts
        self.loggers = loggers  # cell id -> RunLogger (empty when not tracking)
        self.monitor = monitor
        self.t0: dict[str, float] = {}
        self.sent: dict[str, Sent] = {}
        self.deferred: list[str] = []  # cells whose MLflow run could not be completed yet
        self.storage_error = ""
        self.early: dict[str, dict[str, Any]] = {}  # cells an adaptive design stopped on their curve

    def view(self, cid: str) -> TrialView:
        cfg = self.cells[cid].config
        return self.counts.trials.setdefault(cid, TrialView(cfg.name, cfg.train.epochs))

    def on_start(self, cid: str) -> None:
        self.t0[cid] = time.time()
        v = self.view(cid)
        v.state, v.ended = "running", None
        if v.started is None:
            v.started = time.time()
        self.state.setdefault(cid, {})["status"] = "running"
        self.state[cid]["attempt_started"] = self.t0[cid]  # cleared at the end; kept if the driver dies
        self.counts.running += 1
        lg = self.loggers.get(cid)
        if lg is not None:
            lg.set_status("RUNNING")
            lg.set_tags({"status": "running"})
        self.persist()

    def on_result(self, cid: str, result: dict[str, Any]) -> None:
        lg = self.loggers.get(cid)
        if "epoch" in result and "status" not in result:
            if lg is not None:
                sent = self.sent.setdefault(cid, Sent())
                lg.log_metrics(epoch_metrics(result), step=int(result["epoch"]))
                sent.epochs.add(int(result["epoch"]))
                if result.get("step_losses"):
                    first = int(result["first_step"])
                    lg.log_series("step_loss", list(result["step_losses"]), first)
                    sent.steps.update(range(first, first + len(result["step_losses"])))
            value = result.get(f"valid_{self.monitor}", result.get(f"test_{self.monitor}"))
            v = self.view(cid)
            v.epoch = int(result["epoch"])
            if v.first_epoch is None:  # a resumed cell's first report is its checkpoint's next epoch
                v.first_epoch = v.epoch
            v.loss = result.get("loss")
            if value is not None:
                v.metric = float(value)
                self.counts.split = "valid" if f"valid_{self.monitor}" in result else "test"
            if value is not None and (self.counts.best is None or value > self.counts.best[1]):
                self.counts.best = (self.cells[cid].config.name, float(value))

    def on_end(self, cid: str, error: bool) -> None:
        self.counts.running = max(0, self.counts.running - 1)
        st = self.state.setdefault(cid, {})
        st["wall_time_s"] = st.get("wall_time_s", 0.0) + time.time() - self.t0.get(cid, time.time())
        st.pop("attempt_started", None)
        summary = res.trial_summary(self.root, cid)
        lg = self.loggers.get(cid)
        if not error and summary is not None and summary.get("status") in ("finished", "diverged", "oom"):
            st["status"] = summary["status"]
            if summary["status"] == "finished":
                self.counts.done += 1
                self.counts.finished_times.append(st["wall_time_s"])
            else:
                st["failure_reason"] = summary.get("failure_reason")
                if summary["status"] == "diverged":
                    self.counts.diverged += 1
                else:
                    self.counts.failed += 1
            if lg is not None:
                self.complete(cid, lg, summary)
        elif not error and cid in self.early:
            st["status"], st["failure_reason"] = "stopped_early", self.early[cid]["reason"]
            self.counts.stopped += 1
            if lg is not None:
                lg.set_tags({"status": "stopped_early", "reason": st["failure_reason"]})
                lg.finish("KILLED")
        else:
            err_file = self.root / "trials" / cid / "error.txt"
            st["status"] = "failed"
            st["failure_reason"] = (
                err_file.read_text().strip() if err_file.exists() else "trial failed (see the Ray logs)"
            )
            self.counts.failed += 1
            if lg is not None:
                if summary is not None:
                    self.complete(cid, lg, summary, finish=False)
                lg.set_tags({"status": "failed", "failure_reason": st["failure_reason"][:5000]})
                lg.finish("FAILED")
        v = self.view(cid)
        v.state, v.ended, v.reason = st["status"], time.time(), str(st.get("failure_reason") or "")
        self.persist()

    def persist(self) -> None:
        """cells.json and the runs table; a storage error (disk full) is kept for the summary and
        the state stays in memory, so the other trials go on and the final write tries again."""
        try:
            res.write_state(self.root, self.state)
            res.write_table(self.root, res.build_table(self.root, list(self.cells.values()), self.state))
        except OSError as e:
            self.storage_error = f"cannot write {e.filename or self.root}: {e.strerror or e}"
            log.error(self.storage_error)

    def complete(self, cid: str, lg: Any, summary: dict[str, Any], finish: bool = True) -> None:
        from scalelab.tracking.mlflow_run import is_transient

        try:
            if finish:
                record_summary(lg, summary, self.sent.get(cid, Sent()))
                self.state[cid]["tracked"] = True
            else:
                backfill(lg, summary, self.sent.get(cid, Sent()))
        except Exception as e:  # the store could not be read to find the gaps: retried at the end
            if not is_transient(e):
                raise
            if finish:
                self.deferred.append(cid)


_EPOCH_KEYS = ("loss", "epoch_time_s", "targets_per_s", "peak_memory_mb", "lr")


def epoch_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The per-epoch metrics of a trial report or a summary history entry."""
    return {
        k: v
        for k, v in record.items()
        if isinstance(v, (int, float))
        and not isinstance(v, bool)
        and (k in _EPOCH_KEYS or k.startswith(("valid_", "test_")))
    }


def backfill(lg: Any, summary: dict[str, Any], sent: Sent | None = None) -> None:
    """Log the epochs (and step losses) of the run's history that the store does not have yet:
    reports lost when the driver died, or sent by a trial attempt that was killed. `sent` is what
    this driver already submitted; the store is only read when the history goes beyond it."""
    history = summary.get("history") or []
    if not history:
        return
    sent = sent or Sent()
    epochs = {int(h["epoch"]) for h in history}
    have = sent.epochs if epochs <= sent.epochs else lg.logged_steps("loss")
    for h in history:
        if int(h["epoch"]) not in have:
            lg.log_metrics(epoch_metrics(h), step=int(h["epoch"]))
    steps = {  # global step -> loss
        int(h.get("first_step", 1)) + i: v for h in history for i, v in enumerate(h.get("step_losses") or [])
    }
    if steps:
        have_steps = sent.steps if steps.keys() <= sent.steps else lg.logged_steps("step_loss")
        missing = {k: v for k, v in steps.items() if k not in have_steps}
        if missing:
            lg.log_points("step_loss", missing)


@dataclass
class Sent:
    """What the driver submitted for one cell in this invocation (epochs, global steps)."""

    epochs: set[int] = field(default_factory=set)
    steps: set[int] = field(default_factory=set)
    final: bool = False


def record_summary(lg: Any, summary: dict[str, Any], sent: Sent | None = None) -> None:
    """Complete a finished (or diverged / oom) trial's MLflow run from its summary, idempotently.
    Reads the store only for what this invocation did not send itself (it raises if the store is
    unreachable then; the caller retries later)."""
    backfill(lg, summary, sent)
    if summary["status"] == "finished":
        monitor = summary.get("monitor", "ndcg@10")
        if sent is not None or not lg.logged_steps(monitor):
            _log_final(lg, summary)
    tags = {"status": summary["status"]}
    if summary.get("failure_reason"):
        tags["failure_reason"] = summary["failure_reason"]
    if summary.get("git_commit"):
        tags["mlflow.source.git.commit"] = summary["git_commit"]  # MLflow shows it on the run page
    if summary.get("selection"):
        tags["selection"] = (
            f"test metrics at the epoch chosen on {summary['selection']}: {summary.get('best_epoch')}"
        )
    lg.set_tags(tags)
    lg.finish("FINISHED" if summary["status"] == "finished" else "FAILED")


def _log_final(lg: Any, summary: dict[str, Any]) -> None:
    """The run's results, one value per name (`RunRecord.tracking_metrics`): every test metric at
    the selected epoch (the best validation epoch when the run has a validation split, else the
    last) under its plain name (hr_at_10, ndcg_at_10, ...), sizes, dataset statistics and FLOPs. The
    per-epoch series are the `valid_*` / `test_*` metrics logged every evaluation; their last point
    is the last epoch."""
    rec = RunRecord.from_json(summary)
    lg.log_metrics(rec.tracking_metrics(), step=int(rec.epochs_run or 0))


def _open_tracking(
    spec: SweepSpec,
    root: Path,
    cells: list[Cell],
    todo: list[PlannedCell],
    state: dict[str, dict[str, Any]],
    loggers: dict[str, Any],
) -> tuple[Any, Any]:
    """The sweep's parent MLflow run and one child run per cell, created before anything runs (an
    unusable store is refused up front; later outages are buffered by the outbox). Cells done in an
    earlier invocation whose runs miss epochs or final metrics (the driver died) are completed."""
    from scalelab.tracking.mlflow_run import Outbox, RunLogger, default_tracking_uri

    uri = spec.tracking.mlflow_uri or default_tracking_uri()
    outbox = Outbox(uri, spool=root / "tracking_spool.jsonl")
    sweep_state = root / "sweep.json"
    parent_id = json.loads(sweep_state.read_text()).get("parent_run_id") if sweep_state.exists() else None
    parent = RunLogger(
        uri,
        spec.tracking.experiment,
        spec.name,
        tags={"sweep": spec.name, "kind": "sweep"},
        run_id=parent_id,
        outbox=outbox,
    )
    outbox.flush(force=True)  # what an earlier invocation could not deliver goes first
    atomic_write_json({"parent_run_id": parent.run_id, "tracking_uri": uri}, sweep_state)
    parent.log_params({"sweep": spec.name, "cells": len(cells), "description": spec.description[:500]})

    def child(cell: Cell, status: str) -> Any:
        lg = RunLogger(
            uri,
            spec.tracking.experiment,
            cell.config.name,
            tags={
                "sweep": spec.name,
                "cell_id": cell.cell_id,
                "family": cell.config.model.family,
                "kind": "trial",
            },
            run_id=state.get(cell.cell_id, {}).get("run_id"),
            parent_run_id=parent.run_id,
            outbox=outbox,
            status=status,
        )
        state.setdefault(cell.cell_id, {})["run_id"] = lg.run_id
        lg.log_params(cell.config.model_dump(mode="json", exclude={"tracking", "output_dir"}))
        return lg

    pending = {p.cell.cell_id for p in todo}
    carried = res.read_carried(root)
    carried_rows = {} if carried is None else {str(r["cell_id"]): r for _, r in carried.iterrows()}
    for cell in cells:
        cid = cell.cell_id
        if cid in pending:
            loggers[cid] = child(cell, "SCHEDULED")
        elif not state.get(cid, {}).get("tracked"):
            summary = res.trial_summary(root, cid)
            if summary is not None:
                record_summary(child(cell, "RUNNING"), summary)
                state[cid]["tracked"] = True
            elif cid in carried_rows:
                record_carried(child(cell, "RUNNING"), carried_rows[cid])
                state[cid]["tracked"] = True
    return parent, outbox


def record_carried(lg: Any, row: Any) -> None:
    """A cell carried from another runs table (`--resume-from`): its run holds the row's results
    under the names a trained cell's run has (`RunRecord.tracking_metrics`: hr_at_10 at the selected
    epoch, sizes, data_*, FLOPs) at its last epoch, tagged `carried`; its per-epoch curves stayed with
    the machine that trained it."""
    rec = res.record_from_row(row)
    if rec.status == "finished":
        lg.log_metrics(rec.tracking_metrics(), step=int(rec.epochs_run or 0))
    lg.set_tags({"status": str(row["status"]), "carried": "true"})
    lg.finish("FINISHED" if row["status"] == "finished" else "FAILED")
