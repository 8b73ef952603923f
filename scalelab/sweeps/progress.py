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


def header(c: Counts, start: float) -> str:
    elapsed = time.time() - start
    ended = c.done + c.diverged + c.failed
    eta = ""
    if ended and c.pending + c.running:
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
        if v.state == "running":
            return f"{stamp} started  {v.name} ({cid})"
        metric = f", {c.split} {c.metric} {v.metric:.4f}" if v.metric is not None else ""
        tail = f": {v.reason}" if v.reason and v.state != "finished" else ""
        return (
            f"{stamp} {v.state:8s} {v.name} ({cid}) after {v.epoch} epoch(s), {_clock(v.elapsed())}"
            f"{metric}{tail}"
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
