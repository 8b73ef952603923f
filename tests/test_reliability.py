"""Faults a long sweep meets: the driver killed, the tracking server gone, the disk full or
read-only, many trials logging at once. Each test injects the fault for real (SIGKILL, a stopped
MLflow server, an unwritable directory) and then counts what is in the runs table and MLflow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from sweep_helpers import BASE, cell_ids, free_port, start_sweep, sweep, write_spec

from scalelab.errors import UserError

STEP_BASE = {**BASE, "train": {**BASE["train"], "epochs": 3}, "tracking": {"step_metrics": True}}
STEPS_PER_EPOCH = 4  # 200 synthetic users, batch 64


def spec_file(tmp: Path, name: str, uri: str, **extra: object) -> Path:
    """The shared 4-cell spec, 3 epochs with step metrics, one trial at a time."""
    return write_spec(tmp, name, uri, base=STEP_BASE, max_concurrent=1, **extra)


def wait_for(pred, timeout: float = 300, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def summaries(root: Path) -> int:
    return len(list((root / "trials").glob("*/summary.json")))


def check_complete_tracking(uri: str, experiment: str, cells: int, epochs: int = 3) -> int:
    """Every cell's child run holds each epoch's metrics once, every step loss once, final metrics.
    Returns the number of metric values stored in the child runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) - len(children) == 1, "one parent run"
    assert len(children) == cells
    for r in children:
        assert r.info.status == "FINISHED" and r.data.tags["status"] == "finished", r.info.run_name
        for key in ("loss", "test_ndcg_at_10", "targets_per_s"):
            steps = [m.step for m in client.get_metric_history(r.info.run_id, key)]
            assert sorted(steps) == list(range(1, epochs + 1)), (r.info.run_name, key, steps)
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "step_loss")]
        assert sorted(steps) == list(range(1, epochs * STEPS_PER_EPOCH + 1)), (r.info.run_name, steps)
        assert len(client.get_metric_history(r.info.run_id, "ndcg_at_10")) == 1
    return sum(len(client.get_metric_history(r.info.run_id, k)) for r in children for k in r.data.metrics)


@pytest.mark.slow  # opt-in (make test-all): keeps the default run under 10 minutes
def test_driver_sigkill_then_rerun_finishes_only_missing_cells(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = spec_file(tmp_path, "killed", uri)
    root = tmp_path / "killed"
    driver = start_sweep(str(spec), capture=False)
    wait_for(lambda: summaries(root) >= 2 or driver.poll() is not None, what="two finished trials")
    os.kill(driver.pid, signal.SIGKILL)  # no handler runs: nothing is flushed or cleaned up
    driver.wait()
    done_before = {p.parent.name for p in (root / "trials").glob("*/summary.json")}
    assert 2 <= len(done_before) < 4, "the driver should have been killed mid-sweep"
    mtimes = {c: (root / "trials" / c / "summary.json").stat().st_mtime for c in done_before}
    p = sweep(str(spec))
    assert p.returncode == 0, p.stderr
    assert f"{len(done_before)} already done" in p.stdout, p.stdout
    for c in done_before:  # finished cells were not trained again
        assert (root / "trials" / c / "summary.json").stat().st_mtime == mtimes[c]
    table = pd.read_csv(root / "runs.csv")
    assert sorted(table["cell_id"]) == sorted(cell_ids(spec)) and (table["status"] == "finished").all()
    check_complete_tracking(uri, "killed", cells=4)


# ----------------------------------------------------------------------------- tracking server


class MlflowServer:
    def __init__(self, tmp: Path, port: int) -> None:
        self.tmp, self.port, self.proc = tmp, port, None
        self.uri = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.tmp / 'srv.db'}",
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            cwd=self.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

        def up() -> bool:
            try:
                urllib.request.urlopen(f"{self.uri}/health", timeout=2)
                return True
            except OSError:
                return False

        wait_for(up, timeout=120, what="the MLflow server")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.mark.slow  # opt-in (make test-all): keeps the default run under 10 minutes
def test_tracking_server_outages_lose_no_metric(tmp_path: Path) -> None:
    server = MlflowServer(tmp_path, free_port())
    server.start()
    try:
        # 1. the server dies after the first trial and comes back two trials later: writes are
        #    buffered and delivered, the sweep ends cleanly
        spec = spec_file(tmp_path, "outage", server.uri)
        root = tmp_path / "outage"
        driver = start_sweep(str(spec))
        wait_for(lambda: summaries(root) >= 1, what="the first trial")
        server.kill()
        wait_for(
            lambda: summaries(root) >= 3 or driver.poll() is not None, what="two trials without a server"
        )
        server.start()
        _, err = driver.communicate(timeout=600)
        assert driver.returncode == 0, err[-3000:]
        assert not (root / "tracking_spool.jsonl").exists()
        found = check_complete_tracking(server.uri, "outage", cells=4)
        print(f"\nserver down for two trials: {found} metric values found")

        # 2. the server is gone when the sweep ends: a loud failure, the writes kept in the spool,
        #    delivered by the next invocation
        spec = spec_file(tmp_path, "gone", server.uri, tracking={
            "mlflow_uri": server.uri, "experiment": "gone", "drain_timeout_s": 2})  # fmt: skip
        root = tmp_path / "gone"
        driver = start_sweep(str(spec))
        wait_for(lambda: summaries(root) >= 1, what="the first trial")
        server.kill()
        _, err = driver.communicate(timeout=600)
        assert driver.returncode == 1 and "Traceback" not in err, err[-3000:]
        assert "did not take" in err and "tracking_spool.jsonl" in err, err
        spooled = (root / "tracking_spool.jsonl").read_text().splitlines()
        assert len(spooled) > 10
        assert (pd.read_csv(root / "runs.csv")["status"] == "finished").all()  # training itself is done
        server.start()
        p = sweep(str(spec))
        assert p.returncode == 0, p.stderr
        assert "4 already done" in p.stdout
        assert not (root / "tracking_spool.jsonl").exists()
        found = check_complete_tracking(server.uri, "gone", cells=4)
        print(
            f"server gone at the end: {len(spooled)} writes spooled, delivered on re-run; {found} metric values found"
        )
    finally:
        server.kill()


def test_unreachable_tracking_store_is_refused_before_launch(tmp_path: Path) -> None:
    spec = spec_file(tmp_path, "nostore", f"http://127.0.0.1:{free_port()}")
    p = sweep(str(spec))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "tracking store" in p.stderr and "not usable" in p.stderr, p.stderr
    assert not (tmp_path / "nostore" / "trials").exists()  # nothing started


# -------------------------------------------------------------------------------------- storage


def test_unwritable_results_directory_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    spec = spec_file(tmp_path, "blocked", f"sqlite:///{tmp_path / 'm.db'}", output_dir=str(blocker / "sub"))
    p = sweep(str(spec))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "results directory is not writable" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_full_disk_is_refused_before_launch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from scalelab.sweeps import runner

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=10 << 20))
    with pytest.raises(UserError, match=r"10 MiB free, the pending trials need about"):
        runner.check_free_space(tmp_path, need=50 << 20)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=10 << 30))
    runner.check_free_space(tmp_path, need=50 << 20)


@pytest.mark.slow  # ~23 s; opt-in (make test-all) to keep the default run under 10 minutes
def test_disk_full_mid_run_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    """Writing epoch 2's checkpoint fails with ENOSPC: a one-line error, epoch 1's checkpoint intact,
    and the run resumes from it to the same result as an undisturbed run."""
    args = [
        "--set", "data.synthetic.num_users=200", "--set", "data.synthetic.num_items=50",
        "--set", "data.max_seq_len=12", "--set", "model.width=8", "--set", "model.depth=1",
        "--set", "train.epochs=3", "--set", "train.batch_size=64", "--set", "train.num_negatives=8",
        "--set", "eval.ks=[10]",
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "scalelab", "train", *args, "--no-track"]
    env = {**os.environ, "SCALELAB_FAULTS": "enospc@run"}
    p = subprocess.run(
        [*cmd, "-o", str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=300
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "No space left on device" in p.stderr and "resumes from it" in p.stderr, p.stderr
    import torch

    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 1
    assert not list((tmp_path / "run").glob(".checkpoint.pt.*"))  # no half-written temporary left
    again = subprocess.run([*cmd, "-o", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    ref = subprocess.run([*cmd, "-o", str(tmp_path / "ref")], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and ref.returncode == 0, again.stderr + ref.stderr
    a = json.loads((tmp_path / "run" / "summary.json").read_text())
    b = json.loads((tmp_path / "ref" / "summary.json").read_text())
    assert a["resumed_from_epoch"] == 1 and a["final"] == b["final"]


# ----------------------------------------------------------------------------------------- load


@pytest.mark.slow
def test_sixteen_concurrent_trials_logging_every_step(tmp_path: Path) -> None:
    """16 trials at once, each logging every step, into one sqlite store: all metrics arrive."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = spec_file(
        tmp_path, "load", uri,
        grid={"model.depth": [1, 2], "model.width": [8, 12, 16, 20], "train.seed": [1, 2]},
        resources={"cpu": 0.125}, max_concurrent=16,
    )  # fmt: skip
    p = sweep(str(spec), timeout=1200)
    assert p.returncode == 0, p.stderr
    assert "database is locked" not in p.stderr
    values = check_complete_tracking(uri, "load", cells=16)
    print(f"\n16 concurrent trials: {values} metric values written and found")
