"""The runs table: one row per cell, the input of `scalelab fit` and `scalelab report`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from scalelab.atomic import atomic_write, atomic_write_json
from scalelab.config import RunConfig
from scalelab.errors import DataError
from scalelab.models.registry import resolve
from scalelab.run_record import RunRecord, flat
from scalelab.sweeps.spec import Cell

STATE_FILE = "cells.json"
CARRIED_FILE = "carried.csv"  # rows of cells measured elsewhere (`scalelab sweep --resume-from`)
CARRIED_STATUSES = ("finished", "diverged")


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


def read_runs_table(path: Path) -> pd.DataFrame:
    """A runs table (runs.csv or runs.parquet) written by a sweep; a one-line error otherwise."""
    if not path.is_file():
        raise DataError(f"{path}: no such runs table")
    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as e:  # pandas raises many types for a malformed file
        raise DataError(f"{path}: not a readable runs table ({type(e).__name__}: {e})") from None
    missing = [c for c in ("cell_id", "status") if c not in table.columns]
    if missing:
        raise DataError(f"{path}: not a sweep's runs table (no column {', '.join(missing)})")
    table["cell_id"] = table["cell_id"].astype(str)
    return table


def carry_rows(root: Path, source: Path, cells: list[Cell]) -> None:
    """Keep the rows of `source` (a runs table from another machine or an earlier results directory)
    whose cells belong to this sweep and ended there (finished or diverged) in root/carried.csv; the
    sweep does not run them again and its runs table shows them. Rows already carried stay; a cell
    this sweep measured itself is never replaced.

    The cell id hashes the cell's whole configuration, so a row is carried only for a cell with the
    same settings (data, model, training, evaluation)."""
    table = read_runs_table(source)
    ids = {c.cell_id for c in cells}
    rows = table[table["cell_id"].isin(ids) & table["status"].isin(list(CARRIED_STATUSES))]
    if rows.empty:
        raise DataError(
            f"{source}: no finished cell of this sweep in it (cell ids differ when any setting differs)"
        )
    rows = rows[[trial_summary(root, cid) is None for cid in rows["cell_id"]]]
    kept = read_carried(root)
    if kept is not None:
        rows = pd.concat([kept[~kept["cell_id"].isin(rows["cell_id"])], rows], ignore_index=True)
    atomic_write(root / CARRIED_FILE, lambda f: rows.to_csv(f, index=False))


def read_carried(root: Path) -> pd.DataFrame | None:
    path = root / CARRIED_FILE
    return read_runs_table(path) if path.exists() else None


# a row's columns that describe its cell (build_table), before the run's own (RunRecord.table_fields)
# and its configuration (cfg.*)
CELL_COLUMNS = (
    "cell_id", "name", "status", "failure_reason", "family", "depth", "width", "heads", "head_dim",
    "data_fraction", "history_fraction", "seed", "axes", "wall_time_s", "continued_from",
)  # fmt: skip


def record_from_row(row: pd.Series) -> RunRecord:
    """The run's results from its runs-table row (a carried cell: trained elsewhere)."""
    fields = {str(k): v for k, v in row.items() if k not in CELL_COLUMNS and not str(k).startswith("cfg.")}
    return RunRecord.from_table_fields(fields, status=str(row["status"]))


def build_table(root: Path, cells: list[Cell], state: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    ended_here = set()  # cells with their own finished / diverged summary in this directory
    for cell in cells:
        cfg: RunConfig = cell.config
        spec = resolve(cfg.model, cfg.padded_len())
        s = trial_summary(root, cell.cell_id) or {}
        if s.get("status") in CARRIED_STATUSES:
            ended_here.add(cell.cell_id)
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
            # the stale trial (run under earlier stopping settings) whose checkpoint this cell went on from
            "continued_from": st.get("continued_from"),
        }
        row.update(rec.table_fields())
        row.update(flat("cfg.", cfg.model_dump(mode="json", exclude={"tracking", "name", "output_dir"})))
        rows.append(row)
    table = pd.DataFrame(rows)
    carried = read_carried(root)
    if carried is None:
        return table
    # a cell measured elsewhere (and not here since) is shown with its carried row
    return overlay(table, carried, set(table["cell_id"]) - ended_here)


def overlay(table: pd.DataFrame, kept: pd.DataFrame, ids: set[str]) -> pd.DataFrame:
    """`table` with the rows of `kept` standing in for the cells `ids` (both keyed by cell_id): the
    table's row order, the union of both tables' columns."""
    kept = kept[kept["cell_id"].isin(ids)]
    if kept.empty:
        return table
    columns = list(table.columns) + [c for c in kept.columns if c not in table.columns]
    rest = table[~table["cell_id"].isin(kept["cell_id"])]
    order = {cid: i for i, cid in enumerate(table["cell_id"])}
    merged = pd.concat([rest, kept], ignore_index=True).reindex(columns=columns)
    return merged.sort_values("cell_id", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)


def carried_ids(root: Path) -> set[str]:
    """Cells whose result was carried from another runs table (`--resume-from`)."""
    carried = read_carried(root)
    return set() if carried is None else set(carried["cell_id"])


def write_table(root: Path, table: pd.DataFrame) -> None:
    """runs.csv and runs.parquet, each written to a unique temporary name and renamed."""
    atomic_write(root / "runs.csv", lambda f: table.to_csv(f, index=False))
    atomic_write(root / "runs.parquet", lambda f: table.to_parquet(f, index=False))
