"""The local MLflow store keeps its artifacts beside its database, wherever the command runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab.tracking.mlflow_run import RunLogger, artifact_location


def test_artifacts_land_beside_the_sqlite_store_not_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    store.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    summary = tmp_path / "summary.json"
    summary.write_text('{"status": "finished"}')

    logger = RunLogger(f"sqlite:///{store / 'mlflow.db'}", "exp", "run")
    logger.log_artifact(summary)
    logger.finish()

    assert logger.outbox.flush(force=True)
    logged = store / "mlartifacts" / logger.run_id / "artifacts" / "summary.json"
    assert logged.read_text() == summary.read_text()
    assert list(elsewhere.iterdir()) == []  # MLflow's default would have made ./mlruns here


def test_only_local_sqlite_stores_get_an_artifact_location(tmp_path: Path) -> None:
    assert (
        artifact_location(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}")
        == (tmp_path / "a" / "mlartifacts").as_uri()
    )
    assert artifact_location("http://127.0.0.1:5000") is None
