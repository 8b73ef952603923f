"""Shared helpers of the sweep tests: a tiny synthetic sweep spec, running the CLI, reading MLflow."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from scalelab.sweeps.spec import load_sweep

BASE = {
    "data": {"synthetic": {"num_users": 200, "num_items": 50, "mean_seq_len": 12}, "max_seq_len": 12},
    "model": {"family": "hstu", "heads": 1},
    "train": {"epochs": 2, "batch_size": 64, "num_negatives": 8},
    "eval": {"ks": [10]},
}


def write_spec(tmp: Path, name: str, uri: str | None = None, **extra: object) -> Path:
    """A 4-cell spec (depth x width) under tmp; `uri` defaults to tmp/mlflow.db; `extra` overrides."""
    spec = {
        "name": name,
        "base": BASE,
        "grid": {"model.depth": [1, 2], "model.width": [8, 16]},
        "resources": {"cpu": 1},
        "retries": 1,
        "output_dir": str(tmp / name),
        "tracking": {"mlflow_uri": uri or f"sqlite:///{tmp / 'mlflow.db'}", "experiment": name},
        **extra,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def sweep(
    *args: str, env: dict[str, str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scalelab", "sweep", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip


def start_sweep(*args: str, env: dict[str, str] | None = None, capture: bool = True) -> subprocess.Popen:
    """`scalelab sweep ARGS` in the background (output captured as text, or discarded)."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "scalelab", "sweep", *args],
        stdout=out, stderr=out, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mlflow_runs(tmp: Path, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


def cell_ids(path: Path) -> list[str]:
    _, cells = load_sweep(path)
    return [c.cell_id for c in cells]
