"""What a sweep shows while it runs and when it ends.

On a terminal: a live table, one row per trial of this invocation (name, state, epoch/epochs, last
training loss, the monitored metric named with its split, elapsed), under a header with the counts,
the best cell so far and an ETA; in the manner of Ray Tune's progress reporter. Piped or redirected:
one plain line per trial event (started, finished, failed), nothing rewritten in place. At the end,
either way: the results table (every cell of the sweep), never cut to the terminal's width.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Group
from rich.table import Table
from rich.text import Text


@dataclass
class TrialView:
    """What the progress display shows of one trial this invocation runs."""

    name: str
    epochs: int
    state: str = "pending"  # pending | running | finished | diverged | oom | failed
    epoch: int = 0
    loss: float | None = None
    metric: float | None = None  # the monitored metric, validation when the run has a validation split
    started: float | None = None
    ended: float | None = None
    reason: str = ""
    flops_per_epoch: float = 0.0  # planned training FLOPs and targets of one epoch: what the ETA
    targets_per_epoch: float = 0.0  # weighs cells by
    first_epoch: int | None = None  # the first epoch this invocation trained (a resumed cell's is > 1)

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or time.time()) - self.started


@dataclass
class Counts:
    total: int
    done: int = 0
    running: int = 0
    failed: int = 0
    diverged: int = 0
    skipped: int = 0
    carried: int = 0  # of the skipped: measured elsewhere, rows carried from another runs table
    continued: int = 0  # of those run: continued from the checkpoint of a trial whose settings changed
    stopped: int = 0  # stopped early on their learning curve (adaptive sweeps)
    best: tuple[str, float] | None = None
    started: float = field(default_factory=time.time)
    finished_times: list[float] = field(default_factory=list)
    metric: str = "ndcg@10"  # the monitored metric (named in the display)
    split: str = "valid"  # where it is measured during training: valid, or test without a validation split
    trials: dict[str, TrialView] = field(default_factory=dict)  # cell id -> view, for cells run now
    earlier: list[TrialView] = field(default_factory=list)  # cells finished by earlier invocations: the ETA's
    # evidence from the first minute of a resumed sweep (elapsed = their wall time over all attempts)

    @property
    def pending(self) -> int:
        return (
            self.total - self.done - self.running - self.failed - self.diverged - self.skipped - self.stopped
        )


STATE_STYLE = {
    "running": "cyan",
    "finished": "green",
    "stopped_early": "yellow",
    "failed": "red",
    "diverged": "red",
    "oom": "red",
}
MAX_ROWS = 24  # running trials first, then the most recently ended ones


def _num(v: float | None, spec: str) -> str:
    return "-" if v is None or not np.isfinite(v) else format(v, spec)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


ETA_COST_EXPONENT = 0.5  # seconds ~ FLOPs^0.5 per target: the laws-real sweeps on 2 CPU cores
ETA_PRIOR_WEIGHT = 2.0  # how many squared log-units of cost spread the fitted exponent must outweigh


def eta_seconds(c: Counts, now: float) -> float | None:
    """Seconds until the trials of this invocation end, from those that finished.

    Cells of a sweep differ in cost by orders of magnitude, and a resumed cell trains only its
    remaining epochs, so the estimate is per training target: one takes k x cost^g seconds (cost:
    the cell's training FLOPs per target). g is the log-log least-squares slope over the finished
    cells, shrunk toward 0.5 (small models are overhead-bound: time grows far slower than FLOPs) and
    kept in [0, 1]; with one finished cell it is 0.5. A cell is expected to train on as many targets
    as the finished ones did on average (early stopping ends most runs before their maximum epochs,
    and a smaller data fraction runs more epochs of fewer targets), at most its maximum; a running
    cell counts for the targets it has left. The remaining work is shared among the trials running
    now. Cells finished by earlier invocations of the sweep count like those finished now. None
    before a cell finished. Replayed on the kept laws-real sweeps: `bench/bench_eta.py`."""
    done = [
        v for v in [*c.trials.values(), *c.earlier]
        if v.state == "finished" and v.started is not None and v.ended and v.first_epoch is not None
    ]  # fmt: skip
    left = [v for v in c.trials.values() if v.state in ("pending", "running")]
    if (
        not done
        or not left
        or any(v.flops_per_epoch <= 0 or v.targets_per_epoch <= 0 for v in [*c.trials.values(), *done])
    ):
        return None
    per_target = [
        max(v.elapsed(), 1e-3) / ((v.epoch - (v.first_epoch or 1) + 1) * v.targets_per_epoch) for v in done
    ]
    g, k = cost_exponent([v.flops_per_epoch / v.targets_per_epoch for v in done], per_target)
    targets = float(np.mean([v.epoch * v.targets_per_epoch for v in done]))
    work = 0.0
    for v in left:
        todo = min(targets, v.epochs * v.targets_per_epoch) - v.epoch * v.targets_per_epoch
        work += k * (v.flops_per_epoch / v.targets_per_epoch) ** g * max(todo, 0.0)
    return work / max(1, sum(v.state == "running" for v in left))


def cost_exponent(costs: list[float], seconds: list[float]) -> tuple[float, float]:
    """(g, k) of seconds = k x cost^g: the log-log slope shrunk toward ETA_COST_EXPONENT, in [0, 1]."""
    x, y = np.log(costs), np.log(seconds)
    dx = x - x.mean()
    g = (float(dx @ (y - y.mean())) + ETA_PRIOR_WEIGHT * ETA_COST_EXPONENT) / (
        float(dx @ dx) + ETA_PRIOR_WEIGHT
    )
    g = float(np.clip(g, 0.0, 1.0))
    return g, float(np.exp(np.mean(y - g * x)))


def header(c: Counts, start: float) -> str:
    elapsed = time.time() - start
    eta_s = eta_seconds(c, time.time())
    ended = c.done + c.diverged + c.failed
    eta = ""
    if eta_s is not None:
        eta = f"  ETA {_clock(eta_s)}"
    elif ended and c.pending + c.running:
        eta = f"  ETA {_clock(elapsed / ended * (c.pending + c.running))}"
    best = f"  best {c.split} {c.metric} {c.best[1]:.4f} ({c.best[0]})" if c.best else ""
    return (
        f"{c.done + c.skipped}/{c.total} done ({c.skipped} earlier)  {c.running} running  {c.pending} pending  "
        f"{c.failed + c.diverged} failed{best}  elapsed {_clock(elapsed)}{eta}"
    )


def live_view(c: Counts, start: float) -> Group:
    """The terminal view: header line and the per-trial table."""
    t = Table("trial", "state", "epoch", "loss", f"{c.split} {c.metric}", "elapsed", box=None, pad_edge=False)
    views = list(c.trials.values())
    running = [v for v in views if v.state == "running"]
    ended = sorted(
        (v for v in views if v.ended is not None and v.state != "running"), key=lambda v: -(v.ended or 0)
    )
    for v in (running + ended)[:MAX_ROWS]:
        t.add_row(
            v.name,
            Text(v.state, style=STATE_STYLE.get(v.state, "")),
            f"{v.epoch}/{v.epochs}",
            _num(v.loss, ".4f"),
            _num(v.metric, ".4f"),
            _clock(v.elapsed()),
        )
    waiting = sum(v.state == "pending" for v in views)
    rows: list[Any] = [Text(header(c, start), style="bold"), t]
    if waiting:
        rows.append(Text(f"{waiting} trial(s) waiting", style="dim"))
    return Group(*rows)


class EventLines:
    """Piped output: one line per trial event, found by comparing states between updates."""

    def __init__(self, emit: Any) -> None:
        self.emit = emit
        self.seen: dict[str, str] = {}

    def __call__(self, c: Counts) -> None:
        for cid, v in c.trials.items():
            before = self.seen.get(cid, "pending")
            if v.state == before:
                continue
            self.seen[cid] = v.state
            self.emit(self.line(c, cid, v))

    @staticmethod
    def line(c: Counts, cid: str, v: TrialView) -> str:
        stamp = time.strftime("%H:%M:%S")
        eta = eta_seconds(c, time.time())
        left = f"; ETA {_clock(eta)} for the {c.pending + c.running} left" if eta is not None else ""
        if v.state == "running":  # an ETA here only when cells finished earlier (a resumed sweep)
            return f"{stamp} started  {v.name} ({cid}){left}"
        metric = f", {c.split} {c.metric} {v.metric:.4f}" if v.metric is not None else ""
        tail = f": {v.reason}" if v.reason and v.state != "finished" else ""
        return (
            f"{stamp} {v.state:8s} {v.name} ({cid}) after {v.epoch} epoch(s), {_clock(v.elapsed())}"
            f"{metric}{tail}{left}"
        )


# ------------------------------------------------------------------------------------ results table


def results_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader compares, one row per cell: test metrics at the best validation epoch
    when the runs have a validation split, else at the last epoch."""
    has_valid = any(c.startswith("valid_best_") for c in table.columns)
    prefix = "best_" if has_valid and "best_ndcg@10" in table.columns else "final_"
    cols: dict[str, str] = {
        "name": "name",
        "status": "status",
        "epochs_run": "epochs",
        "best_epoch": "best epoch",
        "non_embedding_params": "non-emb params",
    }
    monitor = next((c for c in table.columns if c.startswith("valid_best_ndcg@10")), None)
    if monitor:
        cols[monitor] = "valid ndcg@10"
    for m in ("hr@10", "ndcg@10"):
        if f"{prefix}{m}" in table.columns:
            cols[f"{prefix}{m}"] = f"test {m}"
    cols["wall_time_s"] = "wall s"
    present = {k: v for k, v in cols.items() if k in table.columns}
    out = table[list(present)].rename(columns=present).copy()
    for col in ("epochs", "best epoch", "non-emb params", "wall s"):
        if col in out:
            out[col] = out[col].map(lambda v: "-" if pd.isna(v) else f"{float(v):,.0f}")
    for col in [c for c in out.columns if c.startswith(("test ", "valid "))]:
        out[col] = out[col].map(lambda v: "-" if pd.isna(v) else f"{float(v):.4f}")
    return out


def results_renderable(frame: pd.DataFrame, title: str) -> Table:
    t = Table(*frame.columns, title=title, title_justify="left")
    for c in t.columns[2:]:
        c.justify = "right"
    for _, row in frame.iterrows():
        t.add_row(*(str(v) for v in row))
    return t
