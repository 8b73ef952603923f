"""Data-parallel trials (Ray Train TorchTrainer, gloo) and sweeps on a multi-node Ray cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sweep_helpers import mlflow_runs, start_sweep, sweep

# Full softmax and no dropout: nothing random but the data order, which both runs share, so one
# worker and two workers with the same global batch must compute the same model.
DDP_BASE = {
    "data": {"synthetic": {"num_users": 300, "num_items": 60, "mean_seq_len": 12}, "max_seq_len": 12},
    "model": {"family": "hstu", "heads": 1, "depth": 1, "width": 16, "dropout": 0.0},
    "train": {"epochs": 3, "batch_size": 64, "loss": "full_softmax"},
    "eval": {"ks": [10]},
}


def ddp_spec(tmp: Path, name: str, workers: int) -> Path:
    spec = {
        "name": name,
        "base": DDP_BASE,
        "resources": {"cpu": 1, "workers": workers},
        "output_dir": str(tmp / name),
        "tracking": {"mlflow_uri": f"sqlite:///{tmp / 'mlflow.db'}", "experiment": name},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def only_summary(root: Path) -> dict:
    (path,) = list((root / "trials").glob("*/summary.json"))
    return json.loads(path.read_text())


@pytest.mark.slow  # ~55 s; opt-in (make test-all) to keep the default run under 10 minutes
def test_two_gloo_workers_train_the_same_model_as_one(tmp_path: Path) -> None:
    p2 = sweep(str(ddp_spec(tmp_path, "two", workers=2)))
    assert p2.returncode == 0, p2.stderr[-3000:]
    p1 = sweep(str(ddp_spec(tmp_path, "one", workers=1)))
    assert p1.returncode == 0, p1.stderr[-3000:]
    two, one = only_summary(tmp_path / "two"), only_summary(tmp_path / "one")
    assert two["workers"] == 2 and one["workers"] == 1
    assert [h["loss"] for h in two["history"]] == pytest.approx([h["loss"] for h in one["history"]], rel=1e-4)
    assert two["final"] == pytest.approx(one["final"], abs=2e-3)  # ranks may flip on near-ties
    assert two["dataset"]["train_targets_per_epoch"] == one["dataset"]["train_targets_per_epoch"]
    print(f"\n2 workers: loss {[h['loss'] for h in two['history']]} final {two['final']}")
    print(f"1 worker:  loss {[h['loss'] for h in one['history']]} final {one['final']}")
    # every user evaluated once: the metrics are means over all users of the dataset
    runs = mlflow_runs(tmp_path, "two")
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 2 and len(children) == 1, [r.info.run_name for r in runs]  # parent + one trial
    from mlflow.tracking import MlflowClient

    hist = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_metric_history(
        children[0].info.run_id, "loss"
    )
    assert sorted(m.step for m in hist) == [1, 2, 3]


def test_dry_run_refuses_a_trial_no_node_can_hold(tmp_path: Path) -> None:
    spec = ddp_spec(tmp_path, "toobig", workers=2)
    raw = yaml.safe_load(spec.read_text())
    raw["resources"] = {"cpu": 1, "gpu": 1, "workers": 2}
    spec.write_text(yaml.safe_dump(raw))
    p = sweep(str(spec), "--dry-run")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "2 workers x 1" in p.stderr and "GPU" in p.stderr, p.stderr


NO_AUTH = {"RAY_AUTH_MODE": "disabled"}  # Ray's test cluster runs without token auth
CLUSTER = """
import sys
from ray.cluster_utils import Cluster

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
worker = cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
print(cluster.address, worker.node_id, flush=True)
for line in sys.stdin:
    if line.strip() == "remove":
        cluster.remove_node(worker, allow_graceful=False)
        print("removed", flush=True)
    elif line.strip() == "exit":
        break
cluster.shutdown()
"""


@pytest.mark.slow  # ~45 s; opt-in (make test-all); single-node faults are in test_sweeps.py
def test_multi_node_sweep_survives_losing_a_node(tmp_path: Path) -> None:
    """Two Ray nodes on this machine (Ray's own multi-node test cluster: a head and a worker node, each
    with its raylet); trials run on both; the worker node is removed mid-sweep; its trial is retried
    on the head and the sweep completes."""
    helper = subprocess.Popen(
        [sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        start_new_session=True, env={**os.environ, **NO_AUTH},
    )  # fmt: skip
    try:
        address, worker_node = helper.stdout.readline().split()
        spec = {
            "name": "nodes",
            "base": {
                "data": {"synthetic": {"num_users": 1500, "num_items": 100, "mean_seq_len": 20}, "max_seq_len": 20},
                "model": {"family": "hstu", "heads": 1, "depth": 1},
                "train": {"epochs": 20, "batch_size": 32, "num_negatives": 16},
                "eval": {"ks": [10]},
            },
            "grid": {"model.width": [8, 12, 16, 20]},
            "resources": {"cpu": 1},
            "retries": 2,
            "max_concurrent": 2,
            "output_dir": str(tmp_path / "nodes"),
            "tracking": {"mlflow_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "nodes"},
        }  # fmt: skip
        path = tmp_path / "nodes.yaml"
        path.write_text(yaml.safe_dump(spec))
        # wait until both nodes have joined: the dry run reports the cluster's CPUs
        deadline = time.time() + 120
        while time.time() < deadline:
            p = sweep(str(path), "--address", address, "--dry-run", env=NO_AUTH)
            if "2 cpu" in p.stdout:
                break
            time.sleep(2)
        assert "2 cpu" in p.stdout, p.stdout + p.stderr
        driver = start_sweep(str(path), "--address", address, env=NO_AUTH)
        trials = tmp_path / "nodes" / "trials"

        def nodes_used() -> dict[str, str]:  # trial -> node of its latest attempt
            return {
                f.parent.name: json.loads(f.read_text().splitlines()[-1])["node_id"]
                for f in trials.glob("*/attempts.jsonl")
                if f.read_text().strip()
            }

        def on_worker_running() -> list[str]:  # trials on the worker node with a checkpoint, not done
            return [
                t
                for t, node in nodes_used().items()
                if node == worker_node
                and (trials / t / "checkpoint.pt").exists()
                and not (trials / t / "summary.json").exists()
            ]

        deadline = time.time() + 300
        while time.time() < deadline and not (len(set(nodes_used().values())) == 2 and on_worker_running()):
            time.sleep(0.1)
        assert len(set(nodes_used().values())) == 2, "trials should run on both nodes"
        victims = on_worker_running()
        assert victims, "no trial was running on the worker node"
        helper.stdin.write("remove\n")  # the worker node dies with its running trial
        helper.stdin.flush()
        assert helper.stdout.readline().strip() == "removed"
        _, err = driver.communicate(timeout=900)
        assert driver.returncode == 0, err[-3000:]
        table = pd.read_csv(tmp_path / "nodes" / "runs.csv")
        assert len(table) == 4 and (table["status"] == "finished").all()
        for t in victims:  # retried on the surviving node, resuming from the last checkpoint
            attempts = [json.loads(x) for x in (trials / t / "attempts.jsonl").read_text().splitlines()]
            assert len(attempts) >= 2 and attempts[-1]["node_id"] != worker_node, attempts
            assert json.loads((trials / t / "summary.json").read_text())["resumed_from_epoch"] >= 1
    finally:
        try:
            helper.stdin.write("exit\n")
            helper.stdin.flush()
            helper.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(helper.pid, signal.SIGKILL)
