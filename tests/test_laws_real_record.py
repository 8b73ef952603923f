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
    # the summary repeats each check's headline numbers, ahead of the sections
    summary_row = (f"| ml1m_data | chinchilla on params, tokens | 9 | 3 | **{chin['mean_abs_rel_error']:.1%}** | "
                   f"{sum(c['inside'] for c in held.values())} of 3 |")  # fmt: skip
    assert summary_row in md
    assert md.index("## Summary") < md.index(summary_row) < md.index("## laws_real_ml1m_data")
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


# three constructed datasets: (training targets per epoch, entropy); levels set by a known tied law
DATASETS = {
    "laws_real_ml100k": (40_000, 6.7),
    "laws_real_ml1m": (270_000, 7.4),
    "laws_real_beauty": (130_000, 8.9),
}
TIED = {"w1": 0.05, "w2": 0.05, "w3": -0.4, "w4": -0.3, "w5": -0.5, "b": 1.0, "kappa": 0.5, "lambda": 0.8}


def constructed_datasets() -> dict[str, pd.DataFrame]:
    """The real ML-1M size grid's rows, once per dataset, with NDCG@10 from the tied Performance Law
    (T0, H0 the medians of the fitted rows: those of the middle dataset)."""
    from fitters.performance import PerformanceLaw

    grid = read_table(ROOT / "results" / "reference" / "laws_real" / "laws_real_ml1m.csv")
    grid = grid.drop(columns=[c for c in grid.columns if c.startswith("data_entropy")])
    law = PerformanceLaw(["depth", "width", "tokens", "entropy"], form="tied", t0=130_000, h0=7.4)
    out = {}
    for name, (tokens, h) in DATASETS.items():
        t = grid.copy()
        t["data_train_targets_per_epoch"] = tokens
        t["data_apen_m2_last50_pooled"] = 0.3
        X = np.column_stack([t["depth"], t["width"], np.full(len(t), tokens), np.full(len(t), h)]).astype(
            float
        )
        t["best_ndcg@10"] = law.predict(X, np.array(list(TIED.values())))
        out[name] = t
    return out


def test_across_datasets_the_entropy_term_predicts_each_datasets_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tied law fitted across the datasets recovers the held-out cells of every dataset; without its
    data-quality term it cannot place the levels (tokens alone order them wrongly). Fewer than three
    complete datasets: not fitted."""
    tables = constructed_datasets()
    monkeypatch.setattr(laws_real, "load", lambda name: tables.get(name))
    h = {name: e for name, (_, e) in DATASETS.items()}
    monkeypatch.setattr(laws_real, "data_terms", lambda name: {
        "data_entropy": h[name], "data_entropy_m": 0, "data_entropy_m0": h[name], "data_entropy_m1": 1.0,
        "data_entropy_m1_coverage": 0.5})  # fmt: skip
    reports = [{"sweep": s, "status": "fitted", "cells": 16, "finished": 16,
                "checks": [{"law": "performance", "mean_abs_rel_error": 0.05}]} for s in DATASETS]  # fmt: skip
    rep = laws_real.across_datasets(reports, 3, 20)
    assert rep["status"] == "fitted" and rep["datasets"] == list(DATASETS) and rep["levels"] == 3
    entropy, apen, flat = rep["checks"]
    assert apen["variables"][-1] == "apen"
    assert entropy["variables"] == ["depth", "width", "tokens", "entropy"] and entropy["fitted_on"] == 39
    assert len(entropy["held_out"]) == 9 and {c["name"].split(":")[0] for c in entropy["held_out"]} == {
        "ml100k", "ml1m", "beauty"}  # fmt: skip
    assert max(abs(c["rel_error"]) for c in entropy["held_out"]) < 0.02
    assert flat["law"] == "performance (no data-quality term)" and flat["mean_abs_rel_error"] > 0.05
    md = laws_real.markdown([rep], argparse.Namespace(holdout=3, bootstrap=20))
    assert "| beauty | 6,040 | 3,416 | 130,000 | 8.9000 |" in md
    assert "per-dataset Performance Law" in md
    reports[2]["finished"] = 15
    assert laws_real.across_datasets(reports, 3, 20)["status"].startswith("needs 3 complete size sweeps")
