"""Running the cells as Ray Tune trials: the Ray connection (a private loopback-only local Ray, or a
cluster), the trials' environment and resources, and the Tune experiment."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scalelab.errors import UserError
from scalelab.sweeps.planning import PlannedCell, local_resources
from scalelab.sweeps.progress import Counts
from scalelab.sweeps.spec import SweepSpec
from scalelab.sweeps.tracking_driver import _DriverCallback

_ENV_PASSED = ("SCALELAB_CACHE", "SCALELAB_DATA", "SCALELAB_FAULTS", "SCALELAB_TRUST_CHECKPOINTS")


def cluster_nodes(address: str | None) -> list[dict[str, float]]:
    """Per-node capacities (cpu, gpu, npu) of the cluster at `address`, or of this machine."""
    if address is None:
        return [local_resources()]
    ray = _ray_init(address)
    nodes = []
    for n in ray.nodes():
        if n.get("Alive"):
            r = n.get("Resources", {})
            nodes.append(
                {"cpu": float(r.get("CPU", 0)), "gpu": float(r.get("GPU", 0)), "npu": float(r.get("NPU", 0))}
            )
    return nodes


def _ray_init(address: str | None, num_cpus: int | None = None, env: dict[str, str] | None = None):
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Clusters started by `ray start` (Ray >= 2.59) require the token that command wrote to
    # ~/.ray/auth_token; a driver only sends it when token mode is on. (A cluster without token auth
    # needs RAY_AUTH_MODE=disabled in the driver's environment, which is respected.)
    has_token = os.environ.get("RAY_AUTH_TOKEN") or Path("~/.ray/auth_token").expanduser().exists()
    if address is not None and "RAY_AUTH_MODE" not in os.environ and has_token:
        os.environ["RAY_AUTH_MODE"] = "token"
    if address is None:
        _loopback_only()
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


def _loopback_only() -> None:
    """Make the private local Ray listen on 127.0.0.1 only (GCS, raylet, object manager, workers).

    Ray takes a node's address from `get_node_ip_address()`, which is the loopback address when
    "clusters" are disabled (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, the setting Ray itself uses on
    macOS and Windows); its servers then bind to that address instead of every interface. Nothing
    outside this machine can reach the local Ray; on this machine its token authentication (on by
    default for a new local Ray in current versions, checked on 2.60) still applies. Read at import, so the constant is also
    set when Ray is already imported in this process."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import sys

    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False  # type: ignore[attr-defined]


def _trial_env() -> dict[str, str]:
    """Environment the trial processes need from the driver's."""
    env = {k: os.environ[k] for k in _ENV_PASSED if k in os.environ}
    env.setdefault(
        "SCALELAB_CACHE",
        str(Path(os.environ.get("SCALELAB_CACHE", "~/.cache/scalelab/processed")).expanduser()),
    )
    return env


def _run_tune(
    spec: SweepSpec,
    todo: list[PlannedCell],
    root: Path,
    address: str | None,
    cb: _DriverCallback,
    status: Callable[[Counts], Any] | None,
    available: dict[str, float],
    design: Any = None,
) -> None:
    """The cells of `todo` as one Tune experiment: every one (a grid search), or those an adaptive
    `design` (sweeps/adaptive.py) asks for, through its Searcher."""
    ray = _ray_init(address, env=_trial_env())
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
        payload[p.cell.cell_id] = {
            "config": cfg.model_dump(mode="json"),
            "threads": p.resources["cpu"],
            "workers": int(p.resources.get("workers", 1)),
            "per_worker": {k: v for k, v in p.resources.items() if k != "workers"},
        }
    resources_by_cell = {p.cell.cell_id: p.resources for p in todo}

    def resources(config: dict[str, Any]) -> dict[str, float]:
        r = resources_by_cell[config["cell"]]
        if r.get("workers", 1) > 1:  # the trial only drives; its TorchTrainer reserves the workers
            return {"cpu": 0, "gpu": 0, "memory": 1 << 20}  # (Tune refuses an all-zero request)
        out = {"cpu": r["cpu"], "gpu": r["gpu"]}
        if r.get("npu"):
            out["NPU"] = r["npu"]
        return out

    trainable = tune.with_resources(
        tune.with_parameters(run_cell, cells=payload, out_root=str(root)),
        resources,  # type: ignore[arg-type]  # Tune turns the callable's dict into a placement group
    )

    from scalelab.sweeps.bridge import REGISTRY, Bridge

    REGISTRY[id(cb)] = (cb, status)
    bridge = Bridge()
    bridge.key = id(cb)
    max_conc = spec.max_concurrent
    if max_conc is None:
        per = max(p.resources["cpu"] * p.resources.get("workers", 1) for p in todo)
        max_conc = max(1, int(available["cpu"] // per))
    storage = Path(spec.storage_path).resolve() if spec.storage_path else root / "ray"
    if design is not None:
        from scalelab.sweeps.adaptive import make_scheduler, make_searcher

        space: dict[str, Any] = {}
        tune_config = tune.TuneConfig(
            search_alg=make_searcher(design), num_samples=len(todo), max_concurrent_trials=max_conc,
            reuse_actors=True, scheduler=make_scheduler(design) if design.spec.curves else None,
        )  # fmt: skip
    else:
        space = {"cell": tune.grid_search([p.cell.cell_id for p in todo])}
        tune_config = tune.TuneConfig(max_concurrent_trials=max_conc, reuse_actors=True)
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune_config,
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
