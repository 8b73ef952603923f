"""The runs table: one row per cell, the input of `scalelab fit` and `scalelab report`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from scalelab.atomic import atomic_write, atomic_write_json
from scalelab.config import RunConfig
from scalelab.models.registry import resolve
from scalelab.run_record import RunRecord, flat
from scalelab.sweeps.spec import Cell

STATE_FILE = "cells.json"


def read_state(root: Path) -> dict[str, dict[str, Any]]:
    path = root / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def write_state(root: Path, state: dict[str, dict[str, Any]]) -> None:
    atomic_write_json(state, root / STATE_FILE)


def close_interrupted_attempt(root: Path, cid: str, st: dict[str, Any]) -> None:
    """A trial attempt the driver never saw end (the driver was interrupted or killed): count its
    time in `wall_time_s` up to the last file the trial wrote (checkpoint or summary)."""
    started = st.pop("attempt_started", None)
    if started is None:
        return
    written = [p.stat().st_mtime for p in (root / "trials" / cid).glob("*") if p.is_file()]
    last = max(written, default=started)
    if last > started:
        st["wall_time_s"] = st.get("wall_time_s", 0.0) + last - float(started)


def trial_summary(root: Path, cid: str) -> dict[str, Any] | None:
    path = root / "trials" / cid / "summary.json"
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError):
        return None


def cell_status(root: Path, cid: str, state: dict[str, dict[str, Any]]) -> str:
    """finished / diverged (from the run's own summary), else what the driver recorded, else pending."""
    s = trial_summary(root, cid)
    if s is not None and s.get("status") in ("finished", "diverged"):
        return str(s["status"])
    return str(state.get(cid, {}).get("status", "pending"))


def build_table(root: Path, cells: list[Cell], state: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for cell in cells:
        cfg: RunConfig = cell.config
        spec = resolve(cfg.model, cfg.padded_len())
        s = trial_summary(root, cell.cell_id) or {}
        rec = RunRecord.from_json(s)
        st = state.get(cell.cell_id, {})
        row: dict[str, Any] = {
            "cell_id": cell.cell_id,
            "name": cfg.name,
            "status": cell_status(root, cell.cell_id, state),
            "failure_reason": rec.failure_reason or st.get("failure_reason"),
            "family": cfg.model.family,
            "depth": cfg.model.depth,
            "width": cfg.model.width,
            "heads": cfg.model.heads,
            "head_dim": spec.head_dim,
            "data_fraction": cfg.data.fraction,
            "history_fraction": cfg.data.history_fraction,
            "seed": cfg.train.seed,
            "axes": json.dumps(cell.axes, sort_keys=True),
            "epochs_run": None,
            "best_epoch": None,
            "wall_time_s": st.get("wall_time_s"),
        }
        row.update(rec.table_fields())
        row.update(flat("cfg.", cfg.model_dump(mode="json", exclude={"tracking", "name", "output_dir"})))
        rows.append(row)
    return pd.DataFrame(rows)


def write_table(root: Path, table: pd.DataFrame) -> None:
    """runs.csv and runs.parquet, each written to a unique temporary name and renamed."""
    atomic_write(root / "runs.csv", lambda f: table.to_csv(f, index=False))
    atomic_write(root / "runs.parquet", lambda f: table.to_parquet(f, index=False))
