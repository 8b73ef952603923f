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


@pytest.mark.slow  # opt-in (make test-all): the fault sweep checks the MLflow records in the default run
def test_a_sweep_and_its_fit_in_mlflow_read_as_model_training(tmp_path: Path) -> None:
    """Through MLflow's client: the experiment is marked as model training; each trial holds each
    result once under one name (no final_/best_ copies), the per-epoch series, its git commit and
    how the reported epoch was chosen; the fit run carries the sweep's tag."""
    import json
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient
    from sweep_helpers import BASE, sweep, write_spec

    spec = write_spec(tmp_path, "mlf", grid={"model.depth": [1, 2], "model.width": [8, 16]},
                      base={**BASE, "train": {**BASE["train"], "epochs": 3}})  # fmt: skip
    p = sweep(str(spec))
    assert p.returncode == 0, p.stderr
    fit = subprocess.run([sys.executable, "-m", "scalelab", "fit", "--sweep", str(tmp_path / "mlf"), "--law", "power",
                          "--x", "params", "--holdout", "none", "--bootstrap", "20"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("mlf")
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    runs = client.search_runs([exp.experiment_id], filter_string="tags.sweep = 'mlf'")
    kinds = sorted(r.data.tags.get("kind") for r in runs)
    assert kinds == ["fit", "sweep", "trial", "trial", "trial", "trial"], kinds
    for r in (r for r in runs if r.data.tags.get("kind") == "trial"):
        keys = set(r.data.metrics)
        copies = [k for k in keys if k.startswith(("final_", "best_")) and k not in ("best_epoch",)]
        assert not copies, copies
        summary = json.loads(
            (tmp_path / "mlf" / "trials" / r.data.tags["cell_id"] / "summary.json").read_text()
        )
        assert (
            r.data.metrics["ndcg_at_10"] == summary["best_test"]["ndcg@10"]
        )  # the selected epoch's test value
        assert len(client.get_metric_history(r.info.run_id, "ndcg_at_10")) == 1
        assert [m.step for m in client.get_metric_history(r.info.run_id, "test_ndcg_at_10")] == [1, 2, 3]
        assert r.data.tags.get("mlflow.source.git.commit") == summary["git_commit"]
        assert r.data.tags["selection"].startswith("test metrics at the epoch chosen on validation")


def test_a_copied_results_directory_writes_its_own_artifacts(tmp_path: Path) -> None:
    """Copy results/ elsewhere and log into the copy: the artifact lands in the copy's mlartifacts/,
    the original is untouched (MLflow keeps absolute artifact URIs; the store follows its move)."""
    import shutil

    from mlflow.tracking import MlflowClient

    original, copy = tmp_path / "a" / "results", tmp_path / "b" / "results"
    original.mkdir(parents=True)
    first = tmp_path / "first.txt"
    first.write_text("first")
    lg = RunLogger(f"sqlite:///{original / 'mlflow.db'}", "exp", "run")
    lg.log_artifact(first)
    lg.finish()
    assert lg.outbox.flush(force=True)
    shutil.copytree(original, copy)
    before = sorted(p.name for p in original.rglob("*"))

    second = tmp_path / "second.txt"
    second.write_text("second")
    # a later command on the copy (a new process, as in use: MLflow caches artifact repositories by run)
    import subprocess
    import sys

    script = (
        "from pathlib import Path; from scalelab.tracking.mlflow_run import RunLogger; "
        f"lg = RunLogger('sqlite:///{copy / 'mlflow.db'}', 'exp', 'run', run_id='{lg.run_id}'); "
        f"lg.log_artifact(Path('{second}')); lg.finish(); assert lg.outbox.flush(force=True)"
    )
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "the store was moved or copied" in p.stderr
    assert (copy / "mlartifacts" / lg.run_id / "artifacts" / "second.txt").read_text() == "second"
    assert sorted(p.name for p in original.rglob("*")) == before  # nothing written into the original
    run = MlflowClient(f"sqlite:///{copy / 'mlflow.db'}").get_run(lg.run_id)
    assert run.info.artifact_uri.startswith((copy / "mlartifacts").as_uri())
