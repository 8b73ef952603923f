"""bench/laws_real.py's data-fraction check on a constructed sweep: the real ML-1M grid's rows for
three sizes, copied to four user fractions, with NDCG@10 set by a known Chinchilla law. The check must
fit the small fractions, predict the full-data cells and write them in the record's table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fitters.table import read_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import laws_real  # noqa: E402

E, A, ALPHA, B, BETA = 0.30, 0.9, 0.35, 40.0, 0.45  # NDCG@10 = E - A / N^alpha - B / D^beta


def constructed() -> pd.DataFrame:
    grid = read_table(ROOT / "results" / "reference" / "laws_real" / "laws_real_ml1m.csv")
    base = grid[grid["name"].str.contains("L1-D16|L2-D32|L4-D64")]
    rows = []
    for f in (0.125, 0.25, 0.5, 1.0):
        for _, r in base.iterrows():
            r = r.copy()
            r["data_fraction"] = f
            r["name"] = str(r["name"]).replace("f1.00", f"f{f:.2f}")
            r["data_train_targets_per_epoch"] = round(r["data_train_targets_per_epoch"] * f)
            r["flops_per_epoch"] = r["flops_per_epoch"] * f
            n, d = float(r["non_embedding_params"]), float(r["data_train_targets_per_epoch"])
            r["best_ndcg@10"] = E - A / n**ALPHA - B / d**BETA
            rows.append(r)
    return pd.DataFrame(rows).reset_index(drop=True)


def test_data_fraction_check_predicts_the_full_data_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    table = constructed()
    monkeypatch.setattr(laws_real, "load", lambda name: table if name == laws_real.DATA_SWEEP else None)
    rep = laws_real.data_sweep(20)
    assert rep["status"] == "fitted" and rep["finished"] == 12
    checks = {c["law"]: c for c in rep["checks"]}
    assert set(checks) == {"performance", "chinchilla", "power"}
    chin = checks["chinchilla"]
    assert chin["variables"] == ["params", "tokens"] and chin["fitted_on"] == 9
    held = {c["name"]: c for c in chin["held_out"]}
    assert set(held) == set(table.loc[table["data_fraction"] == 1.0, "name"])
    for c in held.values():  # the truth is a Chinchilla law: its held-out cells are predicted
        assert abs(c["rel_error"]) < 0.01, c
    assert checks["power"]["decision"]["values"] == {"compute": float(table["flops_per_epoch"].max())}
    md = laws_real.markdown([rep], argparse.Namespace(holdout=3, bootstrap=20))
    assert "| data fraction | training targets/epoch |" in md
    assert "| hstu-L4-D64-f0.12-s42 | 4 | 64 | 83,096 | 0.125 |" in md
    assert np.isfinite(checks["performance"]["mean_abs_rel_error"])


def test_live_rows_join_the_archived_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep re-run on a fresh machine has only its new cells live: the record keeps the archived
    rows of the others (and never lets an unfinished live row hide an archived finished one)."""
    monkeypatch.setattr(laws_real, "ROOT", tmp_path)
    monkeypatch.setattr(laws_real, "ARCHIVE", tmp_path / "archive")
    (tmp_path / "archive").mkdir()
    old = pd.DataFrame({"cell_id": ["a", "b", "c"], "status": ["finished", "finished", "interrupted"],
                        "best_ndcg@10": [0.1, 0.2, None]})  # fmt: skip
    old.to_csv(tmp_path / "archive" / "s.csv", index=False)
    assert laws_real.load("s")["best_ndcg@10"].tolist()[:2] == [0.1, 0.2]  # no live table: the archive
    (tmp_path / "results" / "s").mkdir(parents=True)
    live = pd.DataFrame({"cell_id": ["a", "b", "c"], "status": ["pending", "finished", "finished"],
                         "best_ndcg@10": [None, 0.25, 0.3], "wall_time_s": [None, 5.0, 6.0]})  # fmt: skip
    live.to_csv(tmp_path / "results" / "s" / "runs.csv", index=False)
    t = laws_real.load("s").set_index("cell_id")
    assert t.loc["a", "status"] == "finished" and t.loc["a", "best_ndcg@10"] == 0.1  # archived, kept
    assert t.loc["b", "best_ndcg@10"] == 0.25 and t.loc["c", "best_ndcg@10"] == 0.3  # live wins
    laws_real.archive("s")
    again = read_table(tmp_path / "archive" / "s.csv").set_index("cell_id")
    assert again.loc[["a", "b", "c"], "best_ndcg@10"].tolist() == [0.1, 0.25, 0.3]
