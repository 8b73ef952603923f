"""MLflow logging for a run, through `MlflowClient` (explicit run ids, no global active run).

The default store is an absolute sqlite URI under `results/` of the working directory: trials run
in other working directories, so a relative URI would point somewhere else inside them.

Writes go through an `Outbox`: a write the store cannot take right now (server down, network
error, sqlite busy) is queued in order, persisted to a spool file when one is given, and retried
before the next write and at `drain()`. A write the store refuses (a bad value) is not retried: it
raises. So an outage of the tracking server delays metrics but never drops them, and what is still
undelivered when the process ends stays in the spool for the next run to deliver.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scalelab.atomic import atomic_write_text
from scalelab.errors import UserError

PARAM_BATCH, METRIC_BATCH = 100, 1000  # MLflow's log_batch limits

# Errors the store reports about the request itself: retrying cannot help.
_PERMANENT = {
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_DOES_NOT_EXIST",
    "RESOURCE_ALREADY_EXISTS",
    "BAD_REQUEST",
    "INVALID_STATE",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
}


# MLflow 3's UI opens an experiment in the view its kind asks for; without the tag it guesses, and
# shows the GenAI overview (traces, token usage). Training runs are "custom model development".
EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_TAGS = {EXPERIMENT_KIND: "custom_model_development"}


def default_tracking_uri(results_dir: Path | None = None) -> str:
    root = (results_dir or Path("results")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Serialise the first use of a local sqlite store across processes: MLflow creates its tables
    (and experiments) on first use, and two processes doing it at once fail (CircularDependencyError,
    UNIQUE constraint). A file lock beside the database; other stores need none."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    from filelock import FileLock

    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(db) + ".lock", timeout=600):
        yield


def open_client(uri: str) -> Any:
    """An MlflowClient whose store exists (created under `store_lock` if it did not)."""
    from mlflow.tracking import MlflowClient

    try:
        with store_lock(uri):  # the client makes a sqlite store (tables, migrations) when first used
            client = MlflowClient(tracking_uri=uri)
            if uri.startswith("sqlite:///"):
                client.search_experiments(max_results=1)
                follow_moved_store(Path(uri.removeprefix("sqlite:///")))
    except Exception as e:  # a corrupt or unwritable database file
        raise UserError(
            f"tracking store {uri!r} is not usable: {e.__class__.__name__}: {' '.join(str(e).split())[:300]}"
        ) from None
    return client


def follow_moved_store(db: Path) -> int:
    """Keep a moved or copied `results/` self-contained: MLflow stores artifact locations as absolute
    URIs, so a copy of `results/` would still read and write the original's `mlartifacts/`. Every
    location under a `mlartifacts/` directory that is not the one beside `db` is rewritten to the
    one beside it (experiments and runs; the artifacts already copied with the store stay valid).
    Returns the number of rows rewritten; a warning says so. Written by hand: MLflow has no API to
    change an experiment's artifact location (its `experiments` and `runs` tables hold it)."""
    import logging
    import sqlite3

    here = (db.resolve().parent / "mlartifacts").as_uri()
    changed = 0
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT experiment_id, artifact_location FROM experiments").fetchall()
        for exp_id, loc in rows:
            if not loc or not loc.startswith("file://") or "/mlartifacts" not in loc:
                continue
            old = loc[: loc.index("/mlartifacts") + len("/mlartifacts")]
            if old == here:
                continue
            con.execute(
                "UPDATE experiments SET artifact_location = ? || substr(artifact_location, ?) WHERE experiment_id = ?",
                (here, len(old) + 1, exp_id),
            )
            cur = con.execute(
                "UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) WHERE experiment_id = ? AND "
                "substr(artifact_uri, 1, ?) = ?",
                (here, len(old) + 1, exp_id, len(old), old),
            )
            changed += 1 + cur.rowcount
    if changed:
        logging.getLogger(__name__).warning(
            "%s: the store was moved or copied; its artifact locations now point to %s", db, here
        )
    return changed


def artifact_location(uri: str) -> str | None:
    """Where a new experiment of a local sqlite store keeps its artifacts: `mlartifacts/` beside the
    database file. MLflow's own default for such a store is `./mlruns` under the current directory,
    which scatters artifacts wherever a command happens to run. Other stores (a tracking server)
    choose for themselves (None)."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()


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


def _quick_http_failures() -> None:
    """MLflow retries a failed HTTP request up to 7 times with exponential backoff (minutes); the
    outbox retries on its own schedule, so one request should fail fast. User settings win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def is_transient(e: Exception) -> bool:
    from mlflow.exceptions import MlflowException

    if isinstance(e, MlflowException):
        return getattr(e, "error_code", "") not in _PERMANENT
    return isinstance(e, (OSError, ConnectionError, TimeoutError)) or "database is locked" in str(e)


class Outbox:
    """Ordered, retrying, optionally persistent queue of writes to one tracking store."""

    def __init__(self, uri: str, spool: Path | None = None) -> None:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        _quick_http_failures()
        self.uri = uri
        self.client = open_client(uri)
        self.spool = spool
        self.pending: list[dict[str, Any]] = []
        self.delivered = 0
        self.failures = 0
        self._next_try = 0.0
        self._backoff = 1.0
        if spool is not None and spool.exists():
            self.pending = [json.loads(line) for line in spool.read_text().splitlines() if line.strip()]

    # -- operations (JSON-serialisable so that they can be spooled)
    def _apply(self, op: dict[str, Any]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        kind, run_id, c = op["op"], op["run_id"], self.client
        if kind == "log_batch":
            c.log_batch(
                run_id,
                metrics=[Metric(*m) for m in op.get("metrics", [])],
                params=[Param(*p) for p in op.get("params", [])],
                tags=[RunTag(*t) for t in op.get("tags", [])],
            )
        elif kind == "update_run":
            c.update_run(run_id, status=op["status"])
        elif kind == "set_terminated":
            c.set_terminated(run_id, status=op["status"])
        elif kind == "log_artifact":
            if Path(op["path"]).exists():
                c.log_artifact(run_id, op["path"])
        else:  # pragma: no cover - spool written by this module only
            raise ValueError(f"unknown tracking operation {kind!r}")

    def submit(self, op: dict[str, Any]) -> None:
        self.pending.append(op)
        self.flush()
        if self.pending:
            self._persist()

    def flush(self, force: bool = False) -> bool:
        """Deliver queued writes in order; False if some remain (the store is unreachable)."""
        if not self.pending:
            return True
        if not force and time.monotonic() < self._next_try:
            return False
        had = len(self.pending)
        while self.pending:
            try:
                self._apply(self.pending[0])
            except Exception as e:
                if not is_transient(e):
                    self.pending.pop(0)
                    self._persist()
                    raise
                self.failures += 1
                self._next_try = time.monotonic() + self._backoff
                self._backoff = min(30.0, self._backoff * 2)
                self.last_error = f"{e.__class__.__name__}: {' '.join(str(e).split())[:200]}"
                if len(self.pending) != had:
                    self._persist()
                return False
            self.pending.pop(0)
            self.delivered += 1
        self._backoff = 1.0
        self._persist()
        return True

    def drain(self, timeout_s: float = 60.0) -> bool:
        """Retry until everything is delivered or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while not self.flush(force=True):
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        return True

    def _persist(self) -> None:
        if self.spool is None:
            return
        if not self.pending:
            self.spool.unlink(missing_ok=True)
            return
        atomic_write_text("".join(json.dumps(op) + "\n" for op in self.pending), self.spool)


class RunLogger:
    """One MLflow run: params once, metrics per epoch (step = epoch), tags, final status.

    Creating (or reopening) the run talks to the store directly, so an unusable store is reported
    before any work starts; everything after that goes through the outbox.
    """

    def __init__(
        self,
        uri: str | None,
        experiment: str,
        run_name: str,
        tags: dict[str, str] | None = None,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        outbox: Outbox | None = None,
        status: str = "RUNNING",
    ) -> None:
        self.uri = uri or default_tracking_uri()
        self.outbox = outbox or Outbox(self.uri)
        self.client = self.outbox.client
        all_tags = dict(tags or {})
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        try:
            with store_lock(self.uri):  # two sweeps may create the store or the experiment at once
                exp = self.client.get_experiment_by_name(experiment)
                exp_id = (
                    exp.experiment_id
                    if exp
                    else self.client.create_experiment(
                        experiment, artifact_location=artifact_location(self.uri), tags=EXPERIMENT_TAGS
                    )
                )
                if exp is not None and exp.tags.get(EXPERIMENT_KIND) is None:
                    self.client.set_experiment_tag(exp_id, EXPERIMENT_KIND, EXPERIMENT_TAGS[EXPERIMENT_KIND])
            self.reopened = run_id is not None
            if run_id is not None:
                self.run_id = run_id
                self.client.log_batch(run_id, tags=_tags(all_tags))
                self.client.update_run(run_id, status=status)
            else:
                self.run_id = self.client.create_run(exp_id, run_name=run_name, tags=all_tags).info.run_id
                if status != "RUNNING":
                    self.client.update_run(self.run_id, status=status)
        except Exception as e:  # bad URI, unreachable server, locked store
            raise UserError(
                f"tracking store {self.uri!r} is not usable: {e.__class__.__name__}: {' '.join(str(e).split())[:300]}"
            ) from None

    def log_params(self, params: dict[str, Any]) -> None:
        existing = self.client.get_run(self.run_id).data.params if self.reopened else {}
        items = [[k, v[:6000]] for k, v in flatten(params).items() if k not in existing]
        for i in range(0, len(items), PARAM_BATCH):
            self.outbox.submit(
                {"op": "log_batch", "run_id": self.run_id, "params": items[i : i + PARAM_BATCH]}
            )

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        items = [[metric_key(k), float(v), now, step] for k, v in metrics.items() if v is not None]
        self._log(items)

    def log_series(self, key: str, values: list[float], first_step: int) -> None:
        """One metric at consecutive steps first_step, first_step + 1, ..."""
        self.log_points(key, {first_step + i: v for i, v in enumerate(values)})

    def log_points(self, key: str, points: dict[int, float]) -> None:
        """One metric at the given steps."""
        now = int(time.time() * 1000)
        self._log([[metric_key(key), float(v), now, step] for step, v in points.items()])

    def _log(self, items: list[list[Any]]) -> None:
        for i in range(0, len(items), METRIC_BATCH):
            self.outbox.submit(
                {"op": "log_batch", "run_id": self.run_id, "metrics": items[i : i + METRIC_BATCH]}
            )

    def logged_steps(self, key: str) -> set[int]:
        """Steps at which `key` is already in the store (read directly)."""
        return {m.step for m in self.client.get_metric_history(self.run_id, metric_key(key))}

    def set_tags(self, tags: dict[str, Any]) -> None:
        self.outbox.submit({"op": "log_batch", "run_id": self.run_id, "tags": _tags(tags, raw=True)})

    def set_status(self, status: str) -> None:
        self.outbox.submit({"op": "update_run", "run_id": self.run_id, "status": status})

    def log_artifact(self, path: Path) -> None:
        self.outbox.submit({"op": "log_artifact", "run_id": self.run_id, "path": str(Path(path).resolve())})

    def finish(self, status: str = "FINISHED") -> None:
        self.outbox.submit({"op": "set_terminated", "run_id": self.run_id, "status": status})


def _tags(tags: dict[str, Any], raw: bool = False) -> list[Any]:
    from mlflow.entities import RunTag

    pairs = [[k, str(v)[:5000]] for k, v in tags.items()]
    return pairs if raw else [RunTag(k, v) for k, v in pairs]
