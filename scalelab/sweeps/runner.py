"""Run a sweep on Ray Tune: plan, preflight, execute, track, tabulate.

Resume model: a cell is done when its run directory holds a finished (or diverged) summary. Every
invocation runs the cells that are not done, as one Tune experiment; an interrupted cell resumes
from its own checkpoint, a failed one starts again from its checkpoint. Only the driver writes to
MLflow (a Tune callback), so a sqlite store is safe; child run ids are kept in cells.json so a
re-run continues the same MLflow runs instead of duplicating them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab.config import DataConfig
from scalelab.data.loader import load_dataset, resolve_source
from scalelab.data.split import make_split
from scalelab.errors import UserError
from scalelab.models.accounting import size_report
from scalelab.models.registry import resolve
from scalelab.sweeps import results as res
from scalelab.sweeps.spec import Cell, SweepSpec

log = logging.getLogger(__name__)

_ENV_PASSED = ("SCALELAB_CACHE", "SCALELAB_DATA", "SCALELAB_FAULTS")


# ------------------------------------------------------------------------------------------ plan


@dataclass
class PlannedCell:
    cell: Cell
    resources: dict[str, float]
    embedding_params: int
    non_embedding_params: int
    flops_per_epoch: float
    memory_mb: float  # rough: parameters, Adam state, activations of one batch

    def row(self) -> dict[str, Any]:
        c = self.cell.config
        return {
            "cell": self.cell.cell_id,
            "name": c.name,
            "family": c.model.family,
            "depth": c.model.depth,
            "width": c.model.width,
            "fraction": c.data.fraction,
            "emb_params": self.embedding_params,
            "non_emb_params": self.non_embedding_params,
            "flops_per_epoch": self.flops_per_epoch,
            "mem_mb": self.memory_mb,
            **{f"res_{k}": v for k, v in self.resources.items() if v},
        }


def absolute_data_paths(cells: list[Cell]) -> list[Cell]:
    """Trials run in their own working directory: resolve every data path in the driver."""
    out = []
    for c in cells:
        cfg = c.config
        if cfg.data.path is not None:
            path = str(resolve_source(cfg.data.path))
            cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": path})})
        out.append(Cell(c.cell_id, c.axes, cfg))
    return out


def plan(spec: SweepSpec, cells: list[Cell]) -> list[PlannedCell]:
    """Sizes, compute and resources of every cell (loads each distinct dataset once, from the cache)."""
    datasets: dict[str, tuple[int, int]] = {}
    planned = []
    for c in cells:
        cfg = c.config
        key = cfg.data.model_dump_json()
        if key not in datasets:
            data = load_dataset(DataConfig.model_validate(cfg.data.model_dump()))
            sp = make_split(data, cfg.data.split, cfg.data.max_seq_len)
            datasets[key] = (data.num_items, sp.train_targets())
        num_items, targets = datasets[key]
        mspec = resolve(cfg.model, cfg.padded_len())
        negs = {"sampled_softmax": cfg.train.num_negatives, "bce": 1, "full_softmax": num_items}[
            cfg.train.loss
        ]
        size = size_report(mspec, num_items, negs)
        n, d, b = cfg.padded_len(), cfg.model.width, cfg.train.batch_size
        params = size.total_params
        act = (
            b * n * d * 4 * (8 * cfg.model.depth + 4) + b * n * n * 4 * 4 * cfg.model.depth * cfg.model.heads
        )
        neg = b * n * (negs if negs < 4096 else 0) * d * 4 * 2
        memory = (params * 4 * 4 + act + neg) / 2**20
        planned.append(
            PlannedCell(
                c,
                spec.resources.for_params(size.non_embedding_params),
                size.embedding_params,
                size.non_embedding_params,
                size.flops_per_epoch(targets),
                memory,
            )
        )
    return planned


def local_resources() -> dict[str, float]:
    import torch

    from scalelab.training.device import npu_available

    npus = 0
    if npu_available():
        npus = torch.npu.device_count()  # type: ignore[attr-defined]
    return {"cpu": float(os.cpu_count() or 1), "gpu": float(torch.cuda.device_count()), "npu": float(npus)}


def cluster_resources(address: str | None) -> dict[str, float]:
    """Totals of the cluster at `address` (connecting to it), or of this machine."""
    if address is None:
        return local_resources()
    ray = _ray_init(address)
    r = ray.cluster_resources()
    return {"cpu": float(r.get("CPU", 0)), "gpu": float(r.get("GPU", 0)), "npu": float(r.get("NPU", 0))}


def preflight(planned: list[PlannedCell], available: dict[str, float], source: str) -> None:
    for p in planned:
        for k, need in p.resources.items():
            if need > available.get(k, 0.0):
                raise UserError(
                    f"{source}: cell {p.cell.cell_id} ({p.cell.config.name}) asks for {k}={need:g} per trial but the "
                    f"cluster has {available.get(k, 0.0):g} {k.upper()}"
                )


# ------------------------------------------------------------------------------------------- run


@dataclass
class Counts:
    total: int
    done: int = 0
    running: int = 0
    failed: int = 0
    diverged: int = 0
    skipped: int = 0
    best: tuple[str, float] | None = None
    started: float = field(default_factory=time.time)
    finished_times: list[float] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return self.total - self.done - self.running - self.failed - self.diverged - self.skipped


def _ray_init(address: str | None, num_cpus: int | None = None, env: dict[str, str] | None = None):
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Clusters started by `ray start` (Ray >= 2.59) require the token that command wrote to
    # ~/.ray/auth_token; a driver only sends it when token mode is on.
    has_token = os.environ.get("RAY_AUTH_TOKEN") or Path("~/.ray/auth_token").expanduser().exists()
    if address is not None and "RAY_AUTH_MODE" not in os.environ and has_token:
        os.environ["RAY_AUTH_MODE"] = "token"
    import ray

    # Trial failures are recorded in cells.json, the runs table and MLflow; Ray's own error log
    # (a traceback per failed attempt) would bury the compact status, so only critical lines pass.
    for name in ("ray", "ray.tune", "ray.air", "ray.train"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "configure_logging": True,
    }
    if env:
        kwargs["runtime_env"] = {"env_vars": env}
    try:
        if address is None:
            # "local" always starts a private Ray: a bare ray.init() would attach to whatever cluster
            # `ray start` last recorded on this machine (even a dead one), which --address is for.
            ray.init(address="local", num_cpus=num_cpus, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except Exception as e:  # ConnectionError, RuntimeError, ValueError depending on the address
        raise UserError(
            f"cannot start or reach Ray{f' at {address!r}' if address else ''}: {' '.join(str(e).split())[:300]}"
        ) from None
    return ray


class _DriverCallback:
    """Tune callback on the driver: MLflow child runs, cells.json, runs table, live counters."""

    def __init__(
        self,
        root: Path,
        cells: dict[str, Cell],
        state: dict[str, dict[str, Any]],
        counts: Counts,
        logger_factory: Callable[[Cell, str | None], Any] | None,
        monitor: str,
    ) -> None:
        self.root, self.cells, self.state, self.counts = root, cells, state, counts
        self.logger_factory = logger_factory
        self.loggers: dict[str, Any] = {}
        self.monitor = monitor
        self.t0: dict[str, float] = {}

    def _logger(self, cid: str) -> Any:
        if self.logger_factory is None:
            return None
        if cid not in self.loggers:
            lg = self.logger_factory(self.cells[cid], self.state.get(cid, {}).get("run_id"))
            self.loggers[cid] = lg
            self.state.setdefault(cid, {})["run_id"] = lg.run_id
            res.write_state(self.root, self.state)
        return self.loggers[cid]

    def on_start(self, cid: str) -> None:
        self.t0[cid] = time.time()
        self.state.setdefault(cid, {})["status"] = "running"
        self.counts.running += 1
        lg = self._logger(cid)
        if lg is not None:
            lg.set_tags({"status": "running"})
        res.write_state(self.root, self.state)

    def on_result(self, cid: str, result: dict[str, Any]) -> None:
        lg = self._logger(cid)
        if "epoch" in result and "status" not in result:
            metrics = {
                k: v
                for k, v in result.items()
                if isinstance(v, (int, float))
                and k != "epoch"
                and (
                    k in ("loss", "epoch_time_s", "targets_per_s", "peak_memory_mb", "lr")
                    or k.startswith(("valid_", "test_"))
                )
            }
            if lg is not None:
                lg.log_metrics(metrics, step=int(result["epoch"]))
            value = result.get(f"valid_{self.monitor}", result.get(f"test_{self.monitor}"))
            if value is not None and (self.counts.best is None or value > self.counts.best[1]):
                self.counts.best = (self.cells[cid].config.name, float(value))

    def on_end(self, cid: str, error: bool) -> None:
        self.counts.running = max(0, self.counts.running - 1)
        st = self.state.setdefault(cid, {})
        st["wall_time_s"] = st.get("wall_time_s", 0.0) + time.time() - self.t0.get(cid, time.time())
        summary = res.trial_summary(self.root, cid)
        lg = self._logger(cid)
        if not error and summary is not None and summary.get("status") in ("finished", "diverged"):
            st["status"] = summary["status"]
            if summary["status"] == "diverged":
                st["failure_reason"] = summary.get("failure_reason")
                self.counts.diverged += 1
            else:
                self.counts.done += 1
                self.counts.finished_times.append(st["wall_time_s"])
            if lg is not None:
                _log_final(lg, summary)
                lg.set_tags(
                    {
                        "status": st["status"],
                        **({"failure_reason": st.get("failure_reason")} if st.get("failure_reason") else {}),
                    }
                )
                lg.finish("FINISHED" if st["status"] == "finished" else "FAILED")
        else:
            err_file = self.root / "trials" / cid / "error.txt"
            st["status"] = "failed"
            st["failure_reason"] = (
                err_file.read_text().strip() if err_file.exists() else "trial failed (see the Ray logs)"
            )
            self.counts.failed += 1
            if lg is not None:
                lg.set_tags({"status": "failed", "failure_reason": st["failure_reason"][:5000]})
                lg.finish("FAILED")
        res.write_state(self.root, self.state)
        res.write_table(self.root, res.build_table(self.root, list(self.cells.values()), self.state))


def _log_final(lg: Any, summary: dict[str, Any]) -> None:
    metrics: dict[str, float] = {}
    metrics.update({f"final_{k}": v for k, v in summary.get("final", {}).items()})
    metrics.update({f"best_{k}": v for k, v in summary.get("best_test", {}).items()})
    metrics.update({k: v for k, v in summary.get("size", {}).items() if isinstance(v, (int, float))})
    metrics.update(
        {f"data_{k}": v for k, v in summary.get("dataset", {}).items() if isinstance(v, (int, float))}
    )
    if summary.get("flops_per_epoch") is not None:
        metrics["flops_per_epoch"] = summary["flops_per_epoch"]
    # the headline metrics a reviewer compares, under short names
    for k in ("hr@10", "ndcg@10", "mrr"):
        if k in summary.get("final", {}):
            metrics[k] = summary["final"][k]
    lg.log_metrics(metrics, step=int(summary.get("epochs_run") or 0))


@dataclass
class SweepOutcome:
    root: Path
    table: Any
    counts: Counts

    @property
    def exit_code(self) -> int:
        return 0 if self.counts.failed == 0 and self.counts.diverged == 0 else 1


def run_sweep(
    spec: SweepSpec,
    cells: list[Cell],
    source: str,
    address: str | None = None,
    track: bool = True,
    status: Callable[[Counts], Any] | None = None,
) -> SweepOutcome:
    """Run every cell that is not done yet; returns the runs table and the counts."""
    root = spec.results_dir()
    root.mkdir(parents=True, exist_ok=True)
    if not os.access(root, os.W_OK):
        raise UserError(f"{root}: results directory is not writable")
    address = address or spec.address
    cells = absolute_data_paths(cells)
    planned = plan(spec, cells)
    preflight(planned, cluster_resources(address), source)

    by_id = {c.cell_id: c for c in cells}
    state = res.read_state(root)
    counts = Counts(total=len(cells))
    todo = []
    for p in planned:
        st = res.cell_status(root, p.cell.cell_id, state)
        if st in ("finished", "diverged"):
            counts.skipped += 1
            state.setdefault(p.cell.cell_id, {})["status"] = st
        else:
            todo.append(p)
    (root / "spec.json").write_text(json.dumps(spec.model_dump(mode="json"), indent=2))

    logger_factory = None
    parent = None
    if track:
        from scalelab.tracking.mlflow_run import RunLogger, default_tracking_uri

        uri = spec.tracking.mlflow_uri or default_tracking_uri()
        sweep_state = root / "sweep.json"
        parent_id = json.loads(sweep_state.read_text()).get("parent_run_id") if sweep_state.exists() else None
        parent = RunLogger(
            uri,
            spec.tracking.experiment,
            spec.name,
            tags={"sweep": spec.name, "kind": "sweep"},
            run_id=parent_id,
        )
        sweep_state.write_text(json.dumps({"parent_run_id": parent.run_id, "tracking_uri": uri}))
        parent.log_params({"sweep": spec.name, "cells": len(cells), "description": spec.description[:500]})

        def logger_factory(cell: Cell, run_id: str | None) -> Any:
            lg = RunLogger(
                uri,
                spec.tracking.experiment,
                cell.config.name,
                tags={
                    "sweep": spec.name,
                    "cell_id": cell.cell_id,
                    "family": cell.config.model.family,
                    "kind": "trial",
                },
                run_id=run_id,
                parent_run_id=parent.run_id,
            )
            lg.log_params(cell.config.model_dump(mode="json", exclude={"tracking", "output_dir"}))
            return lg

    cb = _DriverCallback(root, by_id, state, counts, logger_factory, cells[0].config.eval.monitor)
    try:
        if todo:
            _run_tune(spec, todo, root, address, cb, status)
    finally:
        res.write_state(root, state)
        table = res.build_table(root, cells, state)
        res.write_table(root, table)
        if parent is not None:
            statuses = table["status"].value_counts().to_dict()
            parent.set_tags({f"cells_{k}": v for k, v in statuses.items()})
            parent.log_artifact(root / "runs.csv")
            parent.finish("FINISHED" if statuses.get("finished", 0) == len(cells) else "FAILED")
    return SweepOutcome(root, table, counts)


def _run_tune(
    spec: SweepSpec,
    todo: list[PlannedCell],
    root: Path,
    address: str | None,
    cb: _DriverCallback,
    status: Callable[[Counts], Any] | None,
) -> None:
    env = {k: os.environ[k] for k in _ENV_PASSED if k in os.environ}
    env.setdefault(
        "SCALELAB_CACHE",
        str(Path(os.environ.get("SCALELAB_CACHE", "~/.cache/scalelab/processed")).expanduser()),
    )
    ray = _ray_init(address, env=env)
    from ray import tune

    from scalelab.sweeps.trial import run_cell

    device = {"gpu": "cuda:0", "npu": "npu:0"}
    payload: dict[str, dict[str, Any]] = {}
    for p in todo:
        kind = "gpu" if p.resources.get("gpu") else ("npu" if p.resources.get("npu") else "cpu")
        cfg = p.cell.config
        cfg = cfg.model_copy(
            update={"train": cfg.train.model_copy(update={"device": device.get(kind, "cpu")})}
        )
        payload[p.cell.cell_id] = {"config": cfg.model_dump(mode="json"), "threads": p.resources["cpu"]}
    resources_by_cell = {p.cell.cell_id: p.resources for p in todo}

    def resources(config: dict[str, Any]) -> dict[str, float]:
        r = resources_by_cell[config["cell"]]
        out = {"cpu": r["cpu"], "gpu": r["gpu"]}
        if r.get("npu"):
            out["NPU"] = r["npu"]
        return out

    trainable = tune.with_resources(
        tune.with_parameters(run_cell, cells=payload, out_root=str(root)), resources
    )

    from scalelab.sweeps.bridge import REGISTRY, Bridge

    REGISTRY[id(cb)] = (cb, status)
    bridge = Bridge()
    bridge.key = id(cb)
    max_conc = spec.max_concurrent
    if max_conc is None:
        avail = cluster_resources(address)
        per = max(p.resources["cpu"] for p in todo)
        max_conc = max(1, int(avail["cpu"] // per))
    storage = Path(spec.storage_path).resolve() if spec.storage_path else root / "ray"
    tuner = tune.Tuner(
        trainable,
        param_space={"cell": tune.grid_search([p.cell.cell_id for p in todo])},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_conc, reuse_actors=True),
        run_config=tune.RunConfig(
            name=f"run-{int(time.time())}",
            storage_path=str(storage),
            failure_config=tune.FailureConfig(max_failures=spec.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[bridge],
            verbose=0,
        ),
    )
    try:
        tuner.fit()
    finally:
        REGISTRY.pop(id(cb), None)
    del ray
