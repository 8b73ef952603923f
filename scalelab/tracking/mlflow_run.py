"""MLflow logging for a run, through `MlflowClient` (explicit run ids, no global active run).

The default store is an absolute sqlite URI under `results/` of the working directory: trials run
in other working directories, so a relative URI would point somewhere else inside them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from scalelab.errors import UserError

PARAM_BATCH, METRIC_BATCH = 100, 1000  # MLflow's log_batch limits


def default_tracking_uri(results_dir: Path | None = None) -> str:
    root = (results_dir or Path("results")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = str(v)
    return out


def metric_key(name: str) -> str:
    """MLflow metric names allow [A-Za-z0-9_-./ ]; '@' becomes '_at_' (hr@10 -> hr_at_10)."""
    return name.replace("@", "_at_")


class RunLogger:
    """One MLflow run: params once, metrics per epoch (step = epoch), tags, final status."""

    def __init__(
        self,
        uri: str | None,
        experiment: str,
        run_name: str,
        tags: dict[str, str] | None = None,
        run_id: str | None = None,
        parent_run_id: str | None = None,
    ) -> None:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from mlflow.tracking import MlflowClient

        self.uri = uri or default_tracking_uri()
        try:
            self.client = MlflowClient(tracking_uri=self.uri)
            exp = self.client.get_experiment_by_name(experiment)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(experiment)
        except Exception as e:  # bad URI, unreachable server, locked store
            raise UserError(
                f"tracking store {self.uri!r} is not usable: {e.__class__.__name__}: {e}"
            ) from None
        all_tags = dict(tags or {})
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        if run_id is not None:
            self.run_id = run_id
            for k, v in all_tags.items():
                self.client.set_tag(run_id, k, v)
            self.client.update_run(run_id, status="RUNNING")
        else:
            self.run_id = self.client.create_run(exp_id, run_name=run_name, tags=all_tags).info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        items = [Param(k, v[:6000]) for k, v in flatten(params).items() if k not in existing]
        for i in range(0, len(items), PARAM_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + PARAM_BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(metric_key(k), float(v), now, step) for k, v in metrics.items() if v is not None]
        for i in range(0, len(items), METRIC_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + METRIC_BATCH])

    def set_tags(self, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)
