"""Turning a results table (scalelab's runs.csv/parquet, or any table) into law inputs.

The column schema a results table may follow (scalelab's runs tables do); any other column can be
named directly as a variable or metric:

| column                         | meaning                                                    |
|--------------------------------|------------------------------------------------------------|
| depth, width                   | blocks and embedding width                                 |
| non_embedding_params           | parameters without the item and position tables            |
| total_params, embedding_params | all parameters; the embedding tables alone                 |
| data_train_targets_per_epoch   | training targets (tokens) in one pass over the data        |
| epochs_run, best_epoch         | epochs trained; the epoch of the best validation metric    |
| flops_per_token                | training FLOPs per target, item-scoring layer included     |
| flops_per_epoch                | flops_per_token x data_train_targets_per_epoch             |
| data_apen_m2_last50_pooled     | pooled approximate entropy (Pincus) of the sequences       |
| data_entropy_m<k>              | bias-corrected H(next item given the previous k), k = 0..2 |
| data_entropy_m                 | the largest k the run's data covers (coverage >= 0.8)      |
| data_fraction                  | share of the users kept                                    |
| status                         | finished rows are fitted, the others skipped               |
| final_<metric>, best_<metric>  | test metric at the last / the best validation epoch        |
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

# Friendly variable names -> columns of scalelab's runs table.
ALIASES = {
    "depth": "depth",
    "width": "width",
    "params": "non_embedding_params",
    "non_embedding_params": "non_embedding_params",
    "total_params": "total_params",
    "embedding_params": "embedding_params",
    "tokens": "data_train_targets_per_epoch",
    "apen": "data_apen_m2_last50_pooled",
    "entropy": "entropy",  # derived per fit: data_entropy_m<k> at the k every fitted row covers
    "compute": "flops_per_epoch",
    "fraction": "data_fraction",
    "train_tokens": "train_tokens",
    "train_flops": "train_flops",
}

# Columns computed from others when a table lacks them: training targets and FLOPs of a whole run.
DERIVED = {
    "train_tokens": ("data_train_targets_per_epoch", "epochs_run"),
    "train_flops": ("flops_per_epoch", "epochs_run"),
}


def with_derived(table: pd.DataFrame) -> pd.DataFrame:
    """The table plus the DERIVED columns it can compute and does not have."""
    extra = {
        name: pd.to_numeric(table[a], errors="coerce") * pd.to_numeric(table[b], errors="coerce")
        for name, (a, b) in DERIVED.items()
        if name not in table.columns and a in table.columns and b in table.columns
    }
    # concat, not assign: a wide runs table read from CSV has many blocks, and inserting into it makes
    # pandas warn that the frame is fragmented
    return pd.concat([table, pd.DataFrame(extra, index=table.index)], axis=1) if extra else table


def with_entropy(table: pd.DataFrame) -> pd.DataFrame:
    """The table plus `entropy`: the conditional entropy at one context length k for every row, the
    largest k that every row's data covers (the smallest of their `data_entropy_m`), so that rows of
    different sizes are compared at the same k. Unchanged when the table lacks the columns."""
    if "data_entropy_m" not in table.columns:
        return table
    chosen = pd.to_numeric(table["data_entropy_m"], errors="coerce")
    if chosen.isna().all():
        return table
    k = int(chosen.min())
    col = f"data_entropy_m{k}"
    if col not in table.columns:
        return table
    warnings.warn(
        f"entropy: H(next item | previous {k}), the context length every fitted row covers", stacklevel=3
    )
    return pd.concat([table, table[col].rename("entropy")], axis=1)


def unconverged(rows: pd.DataFrame) -> pd.Series:
    """Rows whose best validation epoch is their last epoch: training had not converged (all False
    when the table does not say)."""
    if not {"best_epoch", "epochs_run"} <= set(rows.columns):
        return pd.Series(False, index=rows.index)
    best = pd.to_numeric(rows["best_epoch"], errors="coerce")
    last = pd.to_numeric(rows["epochs_run"], errors="coerce")
    return (best >= last) & (last > 1)


def read_table(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: no such file")
    if p.suffix == ".parquet":
        return pd.read_parquet(p)
    return pd.read_csv(p)


def resolve_which(table: pd.DataFrame, which: str = "auto") -> str:
    """`auto`: `best` (the test metric at the best validation epoch) when the runs selected their epoch
    on a validation split, else `final` (the last epoch: without a validation split the "best" epoch
    would be chosen on the test metric itself)."""
    if which != "auto":
        return which
    valid = [c for c in table.columns if c.startswith("valid_best_")]
    selected = bool(valid) and pd.to_numeric(table[valid[0]], errors="coerce").notna().any()
    return "best" if selected and any(c.startswith("best_") for c in table.columns) else "final"


def metric_column(table: pd.DataFrame, metric: str, which: str = "final") -> str:
    """`ndcg@10` -> `final_ndcg@10` (or best_...) when the table is a scalelab runs table."""
    for col in (f"{which}_{metric}", metric):
        if col in table.columns:
            return col
    known = sorted(c.removeprefix(f"{which}_") for c in table.columns if c.startswith(f"{which}_"))
    raise ValueError(
        f"the results table has no metric {metric!r}" + (f" (has: {', '.join(known)})" if known else "")
    )


def variable_column(table: pd.DataFrame, name: str) -> str:
    col = ALIASES.get(name, name)
    if col not in table.columns:
        raise ValueError(f"the results table has no column for variable {name!r} (looked for {col!r})")
    return col


def select(
    table: pd.DataFrame,
    variables: list[str],
    metric: str,
    which: str = "final",
    status: str | None = "finished",
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(X, y, rows used). Rows of other statuses are skipped; non-finite rows are dropped with a
    warning that counts them."""
    table = with_derived(table)
    if status is not None and "status" in table.columns:
        table = table[table["status"] == status]
    if "entropy" in variables and "entropy" not in table.columns:
        table = with_entropy(table)
    ycol = metric_column(table, metric, resolve_which(table, which))
    xcols = [variable_column(table, v) for v in variables]
    sub = table[[*xcols, ycol]].apply(pd.to_numeric, errors="coerce")
    ok = np.isfinite(sub.to_numpy(dtype=float)).all(axis=1)
    positive = (sub[xcols] > 0).all(axis=1).to_numpy()
    dropped = int((~ok).sum())
    if dropped:
        warnings.warn(f"dropped {dropped} row(s) with missing or non-finite values", stacklevel=2)
    nonpos = int((ok & ~positive).sum())
    if nonpos:
        warnings.warn(
            f"dropped {nonpos} row(s) with non-positive variables (laws take logarithms)", stacklevel=2
        )
    keep = ok & positive
    rows = table[keep]
    return sub[xcols].to_numpy(dtype=float)[keep], sub[ycol].to_numpy(dtype=float)[keep], rows
