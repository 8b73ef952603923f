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

from scalelab.atomic import atomic_write_json
from scalelab.config import DataConfig
from scalelab.data.loader import load_dataset, resolve_source
from scalelab.data.split import make_split
from scalelab.errors import UserError
from scalelab.models.accounting import run_size, scored_negatives
from scalelab.models.registry import resolve
from scalelab.run_record import RunRecord
from scalelab.sweeps import results as res
from scalelab.sweeps.lock import ResultsLock
from scalelab.sweeps.spec import Cell, SweepSpec

log = logging.getLogger(__name__)

_ENV_PASSED = ("SCALELAB_CACHE", "SCALELAB_DATA", "SCALELAB_FAULTS", "SCALELAB_TRUST_CHECKPOINTS")


# ------------------------------------------------------------------------------------------ plan


TRIAL_FIXED_BYTES = 48 << 10  # zip records of three checkpoints, summary, attempts, Tune's trial state
EPOCH_BYTES = 3 << 10  # one epoch's history, in the checkpoint, its copy and the summary


@dataclass
class PlannedCell:
    cell: Cell
    resources: dict[str, float]
    embedding_params: int
    non_embedding_params: int
    flops_per_epoch: float
    memory_mb: float  # rough: parameters, Adam state, activations of one batch
    total_params: int = 0

    @property
    def disk_bytes(self) -> int:
        """What the trial writes (measured within 2x, tests/test_security.py): the checkpoint (fp32
        weights and two Adam moments), Tune's copy of it, the best weights; plus per-file records,
        the summary and Tune's state (a fixed part and a part per epoch)."""
        epochs = self.cell.config.train.epochs
        return self.total_params * 4 * (3 + 3 + 1) + TRIAL_FIXED_BYTES + epochs * EPOCH_BYTES

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
        data = c.config.data
        update: dict[str, Any] = {}
        if data.path is not None:
            update["path"] = str(resolve_source(data.path))
        for name in ("catalogue", "item_features"):
            value = getattr(data, name)
            if value is not None:
                update[name] = str(Path(value).expanduser().resolve())
        if data.domains is not None:
            update["domains"] = {
                n: d.model_copy(
                    update={
                        "path": str(resolve_source(d.path)),
                        "item_features": d.item_features
                        and str(Path(d.item_features).expanduser().resolve()),
                    }
                )
                for n, d in data.domains.items()
            }
        cfg = c.config.model_copy(update={"data": data.model_copy(update=update)})
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
        negs = scored_negatives(cfg, num_items)
        size = run_size(cfg, mspec, num_items)
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
                size.total_params,
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


def totals(nodes: list[dict[str, float]]) -> dict[str, float]:
    """The cluster's total cpu, gpu and npu."""
    return {k: sum(n[k] for n in nodes) for k in ("cpu", "gpu", "npu")}


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


def trials_that_fit(resources: dict[str, float], nodes: list[dict[str, float]]) -> int:
    """How many copies of a trial the nodes hold at once: its `workers` bundles (cpu/gpu/npu each)
    placed first-fit, a bundle never split across nodes (as Ray's placement groups do)."""
    free = [dict(n) for n in nodes]
    bundle = {k: v for k, v in resources.items() if k != "workers" and v}
    workers = int(resources.get("workers", 1))
    count = 0
    while count < 10_000:
        for _ in range(workers):
            node = next((n for n in free if all(n.get(k, 0) + 1e-9 >= v for k, v in bundle.items())), None)
            if node is None:
                return count
            for k, v in bundle.items():
                node[k] -= v
        count += 1
    return count


Shape = tuple[tuple[str, float], ...]  # a trial's resources, hashable


def preflight(planned: list[PlannedCell], nodes: list[dict[str, float]], source: str) -> dict[Shape, int]:
    """Refuse a cell the cluster cannot run: more than its totals, or workers no set of nodes can
    hold. Returns, per resource shape, how many trials of it fit at once."""
    available = totals(nodes)
    fits: dict[Shape, int] = {}
    for p in planned:
        workers = int(p.resources.get("workers", 1))
        for k, per in p.resources.items():
            if k == "workers":
                continue
            need = per * workers
            if need > available.get(k, 0.0):
                raise UserError(
                    f"{source}: cell {p.cell.cell_id} ({p.cell.config.name}) asks for {k}={need:g} per trial"
                    f"{f' ({workers} workers x {per:g})' if workers > 1 else ''} but the cluster has "
                    f"{available.get(k, 0.0):g} {k.upper()}"
                )
        shape = tuple(sorted(p.resources.items()))
        if shape not in fits:
            fits[shape] = trials_that_fit(p.resources, nodes)
        if fits[shape] == 0:
            largest = max(nodes, key=lambda n: n["cpu"])
            raise UserError(
                f"{source}: cell {p.cell.cell_id} ({p.cell.config.name}) cannot be placed: {describe_shape(shape)} "
                f"do not fit on the {len(nodes)} node(s) (largest: {', '.join(f'{v:g} {k}' for k, v in largest.items())})"
            )
    return fits


def describe_shape(shape: Shape) -> str:
    r = dict(shape)
    return f"{int(r.get('workers', 1))} worker(s) x " + ", ".join(
        f"{v:g} {k}" for k, v in r.items() if k != "workers" and v
    )


def check_writable(root: Path) -> None:
    """Refuse a results directory that cannot be created or written (a probe file, not os.access,
    which says yes to root on a read-only file system)."""
    import tempfile

    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe"):
            pass
    except OSError as e:
        raise UserError(f"{root}: results directory is not writable ({e.strerror or e})") from None


MIN_FREE_BYTES = 64 << 20  # kept free beyond the trials' own files: tables, MLflow, other writers


def check_free_space(root: Path, need: int) -> None:
    import shutil

    free = shutil.disk_usage(root).free
    if free < need + MIN_FREE_BYTES:
        raise UserError(
            f"{root}: {free / 2**20:,.0f} MiB free, the pending trials need about {need / 2**20:,.1f} MiB "
            f"(checkpoints, summaries) plus {MIN_FREE_BYTES >> 20} MiB kept free; free space or set output_dir"
        )


def written_bytes(root: Path) -> int:
    """What the trials of a results directory wrote: their run directories and Tune's copies."""
    return sum(f.stat().st_size for d in ("trials", "ray") for f in (root / d).rglob("*") if f.is_file())


# ------------------------------------------------------------------------------------------- run


@dataclass
class TrialView:
    """What the progress display shows of one trial this invocation runs."""

    name: str
    epochs: int
    state: str = "pending"  # pending | running | finished | diverged | oom | failed
    epoch: int = 0
    loss: float | None = None
    metric: float | None = None  # the monitored metric, validation when the run has a validation split
    started: float | None = None
    ended: float | None = None
    reason: str = ""

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or time.time()) - self.started


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
    metric: str = "ndcg@10"  # the monitored metric (named in the display)
    split: str = "valid"  # where it is measured during training: valid, or test without a validation split
    trials: dict[str, TrialView] = field(default_factory=dict)  # cell id -> view, for cells run now

    @property
    def pending(self) -> int:
        return self.total - self.done - self.running - self.failed - self.diverged - self.skipped


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


class _DriverCallback:
    """Tune callback on the driver: MLflow child runs, cells.json, runs table, live counters."""

    def __init__(
        self,
        root: Path,
        cells: dict[str, Cell],
        state: dict[str, dict[str, Any]],
        counts: Counts,
        loggers: dict[str, Any],
        monitor: str,
    ) -> None:
        self.root, self.cells, self.state, self.counts = root, cells, state, counts
        self.loggers = loggers  # cell id -> RunLogger (empty when not tracking)
        self.monitor = monitor
        self.t0: dict[str, float] = {}
        self.sent: dict[str, Sent] = {}
        self.deferred: list[str] = []  # cells whose MLflow run could not be completed yet
        self.storage_error = ""

    def view(self, cid: str) -> TrialView:
        cfg = self.cells[cid].config
        return self.counts.trials.setdefault(cid, TrialView(cfg.name, cfg.train.epochs))

    def on_start(self, cid: str) -> None:
        self.t0[cid] = time.time()
        v = self.view(cid)
        v.state, v.ended = "running", None
        if v.started is None:
            v.started = time.time()
        self.state.setdefault(cid, {})["status"] = "running"
        self.state[cid]["attempt_started"] = self.t0[cid]  # cleared at the end; kept if the driver dies
        self.counts.running += 1
        lg = self.loggers.get(cid)
        if lg is not None:
            lg.set_status("RUNNING")
            lg.set_tags({"status": "running"})
        self.persist()

    def on_result(self, cid: str, result: dict[str, Any]) -> None:
        lg = self.loggers.get(cid)
        if "epoch" in result and "status" not in result:
            if lg is not None:
                sent = self.sent.setdefault(cid, Sent())
                lg.log_metrics(epoch_metrics(result), step=int(result["epoch"]))
                sent.epochs.add(int(result["epoch"]))
                if result.get("step_losses"):
                    first = int(result["first_step"])
                    lg.log_series("step_loss", list(result["step_losses"]), first)
                    sent.steps.update(range(first, first + len(result["step_losses"])))
            value = result.get(f"valid_{self.monitor}", result.get(f"test_{self.monitor}"))
            v = self.view(cid)
            v.epoch = int(result["epoch"])
            v.loss = result.get("loss")
            if value is not None:
                v.metric = float(value)
                self.counts.split = "valid" if f"valid_{self.monitor}" in result else "test"
            if value is not None and (self.counts.best is None or value > self.counts.best[1]):
                self.counts.best = (self.cells[cid].config.name, float(value))

    def on_end(self, cid: str, error: bool) -> None:
        self.counts.running = max(0, self.counts.running - 1)
        st = self.state.setdefault(cid, {})
        st["wall_time_s"] = st.get("wall_time_s", 0.0) + time.time() - self.t0.get(cid, time.time())
        st.pop("attempt_started", None)
        summary = res.trial_summary(self.root, cid)
        lg = self.loggers.get(cid)
        if not error and summary is not None and summary.get("status") in ("finished", "diverged", "oom"):
            st["status"] = summary["status"]
            if summary["status"] == "finished":
                self.counts.done += 1
                self.counts.finished_times.append(st["wall_time_s"])
            else:
                st["failure_reason"] = summary.get("failure_reason")
                if summary["status"] == "diverged":
                    self.counts.diverged += 1
                else:
                    self.counts.failed += 1
            if lg is not None:
                self.complete(cid, lg, summary)
        else:
            err_file = self.root / "trials" / cid / "error.txt"
            st["status"] = "failed"
            st["failure_reason"] = (
                err_file.read_text().strip() if err_file.exists() else "trial failed (see the Ray logs)"
            )
            self.counts.failed += 1
            if lg is not None:
                if summary is not None:
                    self.complete(cid, lg, summary, finish=False)
                lg.set_tags({"status": "failed", "failure_reason": st["failure_reason"][:5000]})
                lg.finish("FAILED")
        v = self.view(cid)
        v.state, v.ended, v.reason = st["status"], time.time(), str(st.get("failure_reason") or "")
        self.persist()

    def persist(self) -> None:
        """cells.json and the runs table; a storage error (disk full) is kept for the summary and
        the state stays in memory, so the other trials go on and the final write tries again."""
        try:
            res.write_state(self.root, self.state)
            res.write_table(self.root, res.build_table(self.root, list(self.cells.values()), self.state))
        except OSError as e:
            self.storage_error = f"cannot write {e.filename or self.root}: {e.strerror or e}"
            log.error(self.storage_error)

    def complete(self, cid: str, lg: Any, summary: dict[str, Any], finish: bool = True) -> None:
        from scalelab.tracking.mlflow_run import is_transient

        try:
            if finish:
                record_summary(lg, summary, self.sent.get(cid, Sent()))
                self.state[cid]["tracked"] = True
            else:
                backfill(lg, summary, self.sent.get(cid, Sent()))
        except Exception as e:  # the store could not be read to find the gaps: retried at the end
            if not is_transient(e):
                raise
            if finish:
                self.deferred.append(cid)


_EPOCH_KEYS = ("loss", "epoch_time_s", "targets_per_s", "peak_memory_mb", "lr")


def epoch_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The per-epoch metrics of a trial report or a summary history entry."""
    return {
        k: v
        for k, v in record.items()
        if isinstance(v, (int, float))
        and not isinstance(v, bool)
        and (k in _EPOCH_KEYS or k.startswith(("valid_", "test_")))
    }


def backfill(lg: Any, summary: dict[str, Any], sent: Sent | None = None) -> None:
    """Log the epochs (and step losses) of the run's history that the store does not have yet:
    reports lost when the driver died, or sent by a trial attempt that was killed. `sent` is what
    this driver already submitted; the store is only read when the history goes beyond it."""
    history = summary.get("history") or []
    if not history:
        return
    sent = sent or Sent()
    epochs = {int(h["epoch"]) for h in history}
    have = sent.epochs if epochs <= sent.epochs else lg.logged_steps("loss")
    for h in history:
        if int(h["epoch"]) not in have:
            lg.log_metrics(epoch_metrics(h), step=int(h["epoch"]))
    steps = {  # global step -> loss
        int(h.get("first_step", 1)) + i: v for h in history for i, v in enumerate(h.get("step_losses") or [])
    }
    if steps:
        have_steps = sent.steps if steps.keys() <= sent.steps else lg.logged_steps("step_loss")
        missing = {k: v for k, v in steps.items() if k not in have_steps}
        if missing:
            lg.log_points("step_loss", missing)


@dataclass
class Sent:
    """What the driver submitted for one cell in this invocation (epochs, global steps)."""

    epochs: set[int] = field(default_factory=set)
    steps: set[int] = field(default_factory=set)
    final: bool = False


def record_summary(lg: Any, summary: dict[str, Any], sent: Sent | None = None) -> None:
    """Complete a finished (or diverged / oom) trial's MLflow run from its summary, idempotently.
    Reads the store only for what this invocation did not send itself (it raises if the store is
    unreachable then; the caller retries later)."""
    backfill(lg, summary, sent)
    if summary["status"] == "finished":
        monitor = summary.get("monitor", "ndcg@10")
        if sent is not None or not lg.logged_steps(monitor):
            _log_final(lg, summary)
    tags = {"status": summary["status"]}
    if summary.get("failure_reason"):
        tags["failure_reason"] = summary["failure_reason"]
    if summary.get("git_commit"):
        tags["mlflow.source.git.commit"] = summary["git_commit"]  # MLflow shows it on the run page
    if summary.get("selection"):
        tags["selection"] = (
            f"test metrics at the epoch chosen on {summary['selection']}: {summary.get('best_epoch')}"
        )
    lg.set_tags(tags)
    lg.finish("FINISHED" if summary["status"] == "finished" else "FAILED")


def _log_final(lg: Any, summary: dict[str, Any]) -> None:
    """The run's results, one value per name (`RunRecord.tracking_metrics`): every test metric at
    the selected epoch (the best validation epoch when the run has a validation split, else the
    last) under its plain name (hr_at_10, ndcg_at_10, ...), sizes, dataset statistics and FLOPs. The
    per-epoch series are the `valid_*` / `test_*` metrics logged every evaluation; their last point
    is the last epoch."""
    rec = RunRecord.from_json(summary)
    lg.log_metrics(rec.tracking_metrics(), step=int(rec.epochs_run or 0))


DONE_STATUSES = ("finished", "diverged", "failed", "oom")  # a cell that ended, one way or the other


@dataclass
class SweepOutcome:
    root: Path
    table: Any
    counts: Counts

    undelivered: int = 0  # tracking writes the store did not take (kept in the spool)
    spool: Path | None = None
    tracking_error: str = ""

    @property
    def unfinished(self) -> Any:
        """Rows of the cells this invocation left neither done nor failed (an interrupted sweep)."""
        return self.table[~self.table["status"].isin(list(DONE_STATUSES))]

    @property
    def exit_code(self) -> int:
        """0: every cell done; 1: a cell failed or diverged, or tracking writes are pending;
        3: the sweep was interrupted with cells still to run (re-run to resume)."""
        if len(self.unfinished):
            return 3
        ok = self.counts.failed == 0 and self.counts.diverged == 0 and self.undelivered == 0
        return 0 if ok else 1


def run_sweep(
    spec: SweepSpec,
    cells: list[Cell],
    source: str,
    address: str | None = None,
    track: bool = True,
    status: Callable[[Counts], Any] | None = None,
) -> SweepOutcome:
    """Run every cell that is not done yet; returns the runs table and the counts. The driver holds
    the results directory's lock throughout: a second driver is refused at once."""
    root = spec.results_dir()
    check_writable(root)
    with ResultsLock(root):
        return _run_sweep(spec, cells, source, root, address, track, status)


def _run_sweep(
    spec: SweepSpec,
    cells: list[Cell],
    source: str,
    root: Path,
    address: str | None,
    track: bool,
    status: Callable[[Counts], Any] | None,
) -> SweepOutcome:
    address = address or spec.address
    cells = absolute_data_paths(cells)
    planned = plan(spec, cells)
    nodes = cluster_nodes(address)
    preflight(planned, nodes, source)

    by_id = {c.cell_id: c for c in cells}
    state = res.read_state(root)
    for cid, record in state.items():
        res.close_interrupted_attempt(root, cid, record)
    counts = Counts(total=len(cells))
    todo = []
    for p in planned:
        st = res.cell_status(root, p.cell.cell_id, state)
        if st in ("finished", "diverged"):
            counts.skipped += 1
            state.setdefault(p.cell.cell_id, {})["status"] = st
        else:
            todo.append(p)
    check_free_space(root, sum(p.disk_bytes for p in todo))
    atomic_write_json(spec.model_dump(mode="json"), root / "spec.json")

    loggers: dict[str, Any] = {}
    parent = outbox = None
    if track:
        # Creating the MLflow runs (seconds on a fresh sqlite store) overlaps with starting Ray.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            opening = pool.submit(_open_tracking, spec, root, cells, todo, state, loggers)
            if todo:
                try:
                    _ray_init(address, env=_trial_env())
                except UserError:
                    opening.result()  # a tracking error, if any, is the first thing to report
                    raise
            parent, outbox = opening.result()
        res.write_state(root, state)

    counts.metric = cells[0].config.monitor()
    for p in todo:
        counts.trials[p.cell.cell_id] = TrialView(p.cell.config.name, p.cell.config.train.epochs)
    cb = _DriverCallback(root, by_id, state, counts, loggers, cells[0].config.monitor())
    try:
        if todo:
            _run_tune(spec, todo, root, address, cb, status, totals(nodes))
    finally:
        for p in todo:  # started or queued but never ended: the sweep was interrupted
            rec = state.setdefault(p.cell.cell_id, {})
            if rec.get("status", "pending") in ("pending", "running"):
                rec["status"] = "interrupted"
        res.write_state(root, state)
        table = res.build_table(root, cells, state)
        res.write_table(root, table)
        if parent is not None:
            statuses = table["status"].value_counts().to_dict()
            parent.set_tags({f"cells_{k}": v for k, v in statuses.items()})
            parent.log_artifact(root / "runs.csv")
            parent.finish("FINISHED" if statuses.get("finished", 0) == len(cells) else "FAILED")
    outcome = SweepOutcome(root, table, counts)
    if outbox is not None:
        delivered = outbox.drain(spec.tracking.drain_timeout_s)
        if delivered and cb.deferred:
            retry, cb.deferred = cb.deferred, []
            for cid in retry:  # complete() puts a cell back if the store still cannot be read
                summary = res.trial_summary(root, cid)
                if summary is not None:
                    cb.complete(cid, loggers[cid], summary)
            delivered = outbox.drain(spec.tracking.drain_timeout_s)
            res.write_state(root, state)
        if not delivered or cb.deferred:
            outcome.undelivered, outcome.spool = len(outbox.pending) + len(cb.deferred), outbox.spool
            outcome.tracking_error = getattr(outbox, "last_error", "")
    return outcome


def _open_tracking(
    spec: SweepSpec,
    root: Path,
    cells: list[Cell],
    todo: list[PlannedCell],
    state: dict[str, dict[str, Any]],
    loggers: dict[str, Any],
) -> tuple[Any, Any]:
    """The sweep's parent MLflow run and one child run per cell, created before anything runs (an
    unusable store is refused up front; later outages are buffered by the outbox). Cells done in an
    earlier invocation whose runs miss epochs or final metrics (the driver died) are completed."""
    from scalelab.tracking.mlflow_run import Outbox, RunLogger, default_tracking_uri

    uri = spec.tracking.mlflow_uri or default_tracking_uri()
    outbox = Outbox(uri, spool=root / "tracking_spool.jsonl")
    sweep_state = root / "sweep.json"
    parent_id = json.loads(sweep_state.read_text()).get("parent_run_id") if sweep_state.exists() else None
    parent = RunLogger(
        uri,
        spec.tracking.experiment,
        spec.name,
        tags={"sweep": spec.name, "kind": "sweep"},
        run_id=parent_id,
        outbox=outbox,
    )
    outbox.flush(force=True)  # what an earlier invocation could not deliver goes first
    atomic_write_json({"parent_run_id": parent.run_id, "tracking_uri": uri}, sweep_state)
    parent.log_params({"sweep": spec.name, "cells": len(cells), "description": spec.description[:500]})

    def child(cell: Cell, status: str) -> Any:
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
            run_id=state.get(cell.cell_id, {}).get("run_id"),
            parent_run_id=parent.run_id,
            outbox=outbox,
            status=status,
        )
        state.setdefault(cell.cell_id, {})["run_id"] = lg.run_id
        lg.log_params(cell.config.model_dump(mode="json", exclude={"tracking", "output_dir"}))
        return lg

    pending = {p.cell.cell_id for p in todo}
    for cell in cells:
        cid = cell.cell_id
        if cid in pending:
            loggers[cid] = child(cell, "SCHEDULED")
        elif not state.get(cid, {}).get("tracked"):
            summary = res.trial_summary(root, cid)
            if summary is not None:
                record_summary(child(cell, "RUNNING"), summary)
                state[cid]["tracked"] = True
    return parent, outbox


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
) -> None:
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
