"""The run record is the contract between the trainer and its readers: summary.json round-trips
through `RunRecord`, and the runs table built from it has every column `fitters/table.py` documents."""

from __future__ import annotations

import re
from pathlib import Path

import fitters.table
from scalelab.config import load_config
from scalelab.run_record import RunRecord
from scalelab.sweeps.results import build_table
from scalelab.sweeps.spec import Cell
from scalelab.training.trainer import train_run

SETTINGS = [
    "data.synthetic.num_users=200", "data.synthetic.num_items=60", "data.synthetic.mean_seq_len=12",
    "data.max_seq_len=12", "model.width=16", "model.depth=1", "train.epochs=2", "train.batch_size=64",
    "train.num_negatives=8", "train.device=cpu", "eval.ks=[10]",
]  # fmt: skip


def documented_columns() -> list[str]:
    """The column names of the schema table in fitters/table.py's docstring, placeholders filled."""
    doc = fitters.table.__doc__ or ""
    cells = [line.split("|")[1] for line in doc.splitlines() if line.startswith("| ") and "---" not in line]
    names = [n.strip() for cell in cells[1:] for n in cell.split(",")]  # cells[0] is the header
    return [re.sub(r"<k>", "0", n).replace("<metric>", "ndcg@10") for n in names]


def test_summary_round_trips_and_the_table_has_the_documented_columns(tmp_path: Path) -> None:
    cfg = load_config(None, SETTINGS)
    summary = train_run(cfg, tmp_path / "trials" / "c1")
    rec = RunRecord.from_json(summary)
    assert rec.to_json() == summary
    assert rec.status == "finished" and rec.epochs_run == 2 and rec.selected_test == rec.final
    table = build_table(tmp_path, [Cell("c1", {}, cfg)], {})
    missing = [c for c in documented_columns() if c not in table.columns]
    assert len(documented_columns()) >= 15
    assert not missing, f"runs table lacks documented columns {missing}"
    row = table.iloc[0]
    assert row["final_ndcg@10"] == summary["final"]["ndcg@10"]
    assert row["non_embedding_params"] == summary["size"]["non_embedding_params"]
    assert row["data_train_targets_per_epoch"] == summary["dataset"]["train_targets_per_epoch"]


def test_failed_and_running_records_keep_only_what_they_have() -> None:
    failed = RunRecord(
        name="x", status="diverged", failure_reason="loss nan at epoch 3", history=[{"epoch": 1}]
    )
    d = failed.to_json()
    assert d["failure_reason"] == "loss nan at epoch 3" and d["history"] == [{"epoch": 1}]
    assert "best_test" not in d and "epochs_run" not in d
    running = RunRecord(name="x").to_json()
    assert "history" not in running and "failure_reason" not in running
    assert RunRecord.from_json(d) == failed
    # an older or foreign summary: unknown keys ignored, missing ones defaulted
    old = RunRecord.from_json({"name": "y", "status": "finished", "final": {"hr@10": 0.2}, "legacy": 1})
    assert old.selected_test == {"hr@10": 0.2} and old.tracking_metrics() == {"hr@10": 0.2}
