"""The training loop: one call of `train_run` is one run (and one sweep trial).

Reproducibility: epoch e draws its user order, negatives and dropout masks from seeds derived from
(train.seed, e), so a run resumed at an epoch boundary replays exactly what an uninterrupted run
does. Checkpoints (model, optimiser, scheduler, epoch, history, RNG states) are written atomically
after every epoch; the best model by the monitored validation metric is kept beside them.
"""

from __future__ import annotations

import errno
import math
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scalelab import __version__, faults
from scalelab.config import RunConfig, dump_config
from scalelab.data.cond_entropy import choose_m
from scalelab.data.entropy import apen_summary
from scalelab.data.loader import load_dataset
from scalelab.data.split import make_split
from scalelab.errors import (
    ConfigError,
    OutOfMemory,
    StorageError,
    TrainingDiverged,
    is_out_of_memory,
)
from scalelab.models import resolve
from scalelab.models.rng import dropout_generator
from scalelab.run_record import RunRecord
from scalelab.training import checkpoint as ckpt
from scalelab.training.cpu_workers import Workers, worker_count
from scalelab.training.device import peak_memory_bytes, reset_peak_memory, resolve_device
from scalelab.training.tasks import Task, make_task

WARMUP_STEPS = 3  # steps of the first epoch excluded from throughput
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}


@dataclass
class EpochRecord:
    epoch: int  # 1-based
    loss: float
    epoch_time_s: float
    targets: int
    targets_per_s: float
    peak_memory_bytes: int
    lr: float
    valid: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    step_losses: list[float] = field(default_factory=list)  # one per optimiser step
    first_step: int = 1  # global index of the epoch's first step (1-based)
    padding: float = 0.0  # share of the computed sequence positions that were padding
    last: bool = False  # the run ends after this epoch (epoch limit, patience or token budget)

    def flat(self) -> dict[str, float]:
        out = {
            "loss": self.loss,
            "epoch_time_s": self.epoch_time_s,
            "targets_per_s": self.targets_per_s,
            "peak_memory_mb": self.peak_memory_bytes / 2**20,
            "lr": self.lr,
            "padding": self.padding,
        }
        out.update({f"valid_{k}": v for k, v in self.valid.items()})
        out.update({f"test_{k}": v for k, v in self.test.items()})
        return out


Callback = Callable[[EpochRecord], None]


def _seed(base: int, epoch: int, stream: int) -> int:
    return (base * 1_000_003 + epoch * 97 + stream) % (2**63 - 1)


def _lr_lambda(cfg: RunConfig, total_steps: int) -> Callable[[int], float]:
    warm, sched = cfg.train.warmup_steps, cfg.train.schedule

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if sched == "constant" or total_steps <= warm:
            return 1.0
        frac = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 0.5 * (1 + math.cos(math.pi * frac)) if sched == "cosine" else 1.0 - frac

    return f


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, str]:
    import pandas
    import scipy

    return {
        "scalelab": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "scipy": scipy.__version__,
    }


def default_output_dir(cfg: RunConfig) -> Path:
    return Path(cfg.output_dir) if cfg.output_dir else Path("results") / "runs" / cfg.name


def train_run(
    cfg: RunConfig,
    output_dir: Path | None = None,
    callbacks: list[Callback] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train (or resume) the run of `cfg` in `output_dir`; returns the summary (also in summary.json,
    the JSON form of `RunRecord`)."""
    return Trainer(cfg, output_dir, callbacks, progress).run().to_json()


@dataclass
class _Best:
    """The epoch selected so far on the monitored metric, with its metrics."""

    epoch: int
    value: float
    valid: dict[str, float]
    test: dict[str, float]


def _evaluated(entry: dict[str, Any]) -> bool:
    """Whether a history entry (one epoch) holds an evaluation."""
    return any(k.startswith(("valid_", "test_")) for k in entry)


class Trainer:
    """One run: `setup` (checkpoint check, data, task, model, optimiser, resume state), then per epoch
    `train_epoch`, `evaluate` (selection and early stopping) and `checkpoint`; `run` drives them and
    returns the run's `RunRecord`."""

    def __init__(
        self,
        cfg: RunConfig,
        output_dir: Path | None = None,
        callbacks: list[Callback] | None = None,
        progress: bool = False,
    ) -> None:
        self.t_begin = time.perf_counter()
        self.cfg = cfg
        self.out = (output_dir or default_output_dir(cfg)).resolve()
        self.callbacks = callbacks or []
        self.progress = progress
        self.device = resolve_device(cfg.train.device)
        self.par = Parallel.current()
        if self.par.world > 1 and worker_count(self.device, cfg.train.cpu_workers) > 1:
            raise ConfigError(
                "train.cpu_workers: worker threads do not combine with several training processes (set it to 1)"
            )
        if self.par.world > 1 and cfg.train.length_groups > 1:
            raise ConfigError(
                "train.length_groups: length groups do not combine with several training processes (set it to 1)"
            )
        self.fp = ckpt.fingerprint(cfg)
        self.ckpt_path, self.best_path = self.out / "checkpoint.pt", self.out / "best.pt"
        self.monitor = cfg.monitor()
        self.lower_is_better = self.monitor.startswith("logloss")
        # the training state a checkpoint carries
        self.start_epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best: _Best | None = None
        self.targets_seen = 0
        self.patience_left = cfg.train.patience

    # ---------------------------------------------------------------------------------- setup

    def setup(self) -> None:
        cfg, device = self.cfg, self.device
        state = ckpt.load(self.ckpt_path, device, self.fp) if self.ckpt_path.exists() else None
        data = load_dataset(cfg.data)
        split = make_split(data, cfg.data.split, cfg.data.max_seq_len)
        self.task = task = make_task(cfg, data, split)
        apen = apen_summary(data.ptr, data.items, m=2, last=50)
        entropy, by_m = choose_m(data.ptr, data.items, m_max=2, last=50)
        dataset_stats = {
            "users": data.num_users,
            "items": data.num_items,
            "interactions": data.num_interactions,
            "train_users": task.num_rows,
            "train_targets_per_epoch": task.num_targets,
            "apen_m2_last50_per_user": apen.per_user_mean,
            "apen_m2_last50_pooled": apen.pooled,
            # the data-quality term (scalelab/data/cond_entropy.py): H(next | previous m) at the largest
            # m the data covers, and at every m <= 2 with its coverage, so a fit can use one m for all rows
            "entropy": entropy.value,
            "entropy_m": entropy.m,
            **{f"entropy_m{e.m}": e.value for e in by_m},
            **{f"entropy_m{e.m}_coverage": e.coverage for e in by_m},
            "cache_key": data.meta.get("cache_key") or data.meta.get("cache", {}).get("key"),
        }

        spec = resolve(cfg.model, cfg.padded_len())
        torch.manual_seed(cfg.train.seed)
        self.model = model = task.build_model(spec).to(device)
        if cfg.train.compile:
            _compile(model)
        net = self.par.wrap(model, device)  # DistributedDataParallel when several workers train together
        size, flops_per_epoch = task.size(model, spec)
        opt = torch.optim.AdamW(
            model.parameters(), lr=cfg.train.lr, betas=cfg.train.betas, weight_decay=cfg.train.weight_decay
        )
        self.steps_per_epoch = math.ceil(task.num_rows / cfg.train.batch_size)
        total_steps = self.steps_per_epoch * cfg.train.epochs
        if cfg.train.token_budget:
            total_steps = min(
                total_steps,
                math.ceil(cfg.train.token_budget / max(1, task.num_targets) * self.steps_per_epoch),
            )
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, total_steps))
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            self.start_epoch, self.history = state["epoch"], state["history"]
            self.best = _Best(**{k: v for k, v in state["best"].items()}) if state["best"] else None
            self.targets_seen = state["targets_seen"]
            if cfg.train.patience is not None and self.best is not None:
                # counted from the history, not restored: a run resumed with another patience waits as
                # a run started with it would have
                waited = sum(1 for h in self.history if h["epoch"] > self.best.epoch and _evaluated(h))
                self.patience_left = cfg.train.patience - waited
        self.loop = _Loop(cfg, task, model, net, self.par, opt, sched, device)
        self.record = RunRecord(
            name=cfg.name,
            status="running",
            config=dump_config(cfg),
            fingerprint=self.fp,
            output_dir=str(self.out),
            device=str(device),
            versions=_versions(),
            git_commit=_git_commit(),
            dataset=dataset_stats,
            task=cfg.task.kind,
            size=size,
            flops_per_epoch=flops_per_epoch,
            side_inputs=task.info or None,
            resumed_from_epoch=self.start_epoch if state is not None else None,
        )
        self.out.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------------------- the steps

    def train_epoch(self, epoch: int, bar: _Progress, injected: set[str]) -> EpochRecord:
        """One pass over the training rows (epoch is 0-based)."""
        record = _train_epoch(
            self.loop, epoch, bar, first=(epoch == self.start_epoch), out=self.out, injected=injected
        )
        self.targets_seen += record.targets
        return record

    def evaluate(self, record: EpochRecord) -> None:
        """Validation and test metrics into `record`; keeps the best epoch (and its weights) on the
        monitored metric and counts down the patience."""
        cfg, task = self.cfg, self.task
        for which in ("valid", "test") if task.has_valid else ("test",):
            metrics = task.evaluate(
                self.model, which, self.device, cfg.train.precision, cfg.train.seed, self.par.shard
            )
            setattr(record, which, metrics)
        watched = record.valid if task.has_valid else record.test
        if self.monitor not in watched:
            raise ValueError(f"eval.monitor {self.monitor!r} is not a computed metric ({', '.join(watched)})")
        value = watched[self.monitor]
        best = self.best
        if best is None or (value < best.value if self.lower_is_better else value > best.value):
            self.best = _Best(record.epoch, value, record.valid, record.test)
            if self.par.rank == 0:
                ckpt.atomic_save({"model": self.model.state_dict(), "epoch": record.epoch}, self.best_path)
            self.patience_left = cfg.train.patience
        elif self.patience_left is not None:
            self.patience_left -= 1

    def evaluates_after(self, epoch: int) -> bool:
        """Whether the run evaluates after `epoch` (0-based): every eval_every epochs, or after each
        epoch that crosses a multiple of eval_every_steps optimizer steps; always after the last."""
        cfg = self.cfg
        if epoch + 1 == cfg.train.epochs:
            return True
        if (every := cfg.train.eval_every_steps) is not None:
            return (epoch + 1) * self.steps_per_epoch // every > epoch * self.steps_per_epoch // every
        return (epoch + 1) % cfg.train.eval_every == 0

    def budget_spent(self) -> bool:
        """Whether the token budget (if any) has been reached."""
        budget = self.cfg.train.token_budget
        return bool(budget and self.targets_seen >= budget)

    def ending(self, epoch: int) -> str | None:
        """Why the run ends after `epoch` (0-based), or None if it goes on: patience (once train.min_steps
        steps are done), the epoch limit or the token budget, in that order of precedence."""
        cfg = self.cfg
        stepped = (epoch + 1) * self.steps_per_epoch
        if self.patience_left is not None and self.patience_left <= 0 and stepped >= cfg.train.min_steps:
            return "early_stopping"
        if epoch + 1 == cfg.train.epochs:
            return "epochs"
        if self.budget_spent():
            return "token_budget"
        return None

    def checkpoint(self, epoch: int) -> None:
        """Everything a resumed run needs to continue exactly, written atomically (epoch 0-based)."""
        loop = self.loop
        self.par.save(
            self.fp,
            {
                "fingerprint": self.fp,
                "model": self.model.state_dict(),
                "optimizer": loop.opt.state_dict(),
                "scheduler": loop.sched.state_dict(),
                "epoch": epoch + 1,
                "history": self.history,
                "best": asdict(self.best) if self.best else None,
                "targets_seen": self.targets_seen,
                "rng": {"torch": torch.get_rng_state()},
            },
            self.ckpt_path,
        )

    # ------------------------------------------------------------------------------------ run

    def run(self) -> RunRecord:
        self.setup()
        cfg, out = self.cfg, self.out
        injected = faults.active(out)
        bar = _Progress(self.progress, cfg.train.epochs, self.steps_per_epoch)
        stop_reason = "epochs"
        try:
            for epoch in range(self.start_epoch, cfg.train.epochs):
                if self.budget_spent():  # a resumed run that had already spent it
                    stop_reason = "token_budget"
                    break
                record = self.train_epoch(epoch, bar, injected)
                if self.evaluates_after(epoch):
                    self.evaluate(record)
                entry: dict[str, Any] = {"epoch": record.epoch, **record.flat()}
                if cfg.tracking.step_metrics:
                    entry["step_losses"], entry["first_step"] = record.step_losses, record.first_step
                self.history.append(entry)
                faults.before_checkpoint(out, injected, record.epoch)
                self.checkpoint(epoch)
                bar.epoch_done(record)
                ending = self.ending(epoch)
                record.last = ending is not None
                for cb in self.callbacks:
                    cb(record)
                faults.after_epoch(out, injected)
                if ending is not None:
                    stop_reason = ending
                    break
        except (TrainingDiverged, OutOfMemory) as e:
            self._failed("diverged" if isinstance(e, TrainingDiverged) else "oom", str(e))
            raise
        except OSError as e:
            if e.errno in _STORAGE_ERRNOS:  # disk full, read-only, quota: the last checkpoint is intact
                last = len(self.history) - 1 if self.history else 0
                raise StorageError(
                    f"cannot write {e.filename or out}: {e.strerror}; the run stopped after its last complete "
                    f"checkpoint (epoch {last}) and resumes from it once there is space"
                ) from None
            raise
        finally:
            bar.close()
        return self._finished(stop_reason)

    def _failed(self, status: str, reason: str) -> None:
        self.record.status, self.record.failure_reason, self.record.history = status, reason, self.history
        if self.par.rank == 0:
            ckpt.atomic_write_json(self.record.to_json(), self.out / "summary.json")

    def _finished(self, stop_reason: str) -> RunRecord:
        history, best, r = self.history, self.best, self.record
        r.status, r.stop_reason, r.history = "finished", stop_reason, history
        r.epochs_run = history[-1]["epoch"] if history else 0
        r.targets_seen = self.targets_seen
        r.final = (
            {k.removeprefix("test_"): v for k, v in history[-1].items() if k.startswith("test_")}
            if history
            else {}
        )
        r.best_epoch = best.epoch if best else None
        r.best_valid = best.valid if best else {}
        r.best_test = best.test if best else {}
        r.monitor = self.monitor
        r.selection = "validation" if self.task.has_valid else "test (no validation split: optimistic)"
        r.mean_epoch_time_s = float(np.mean([h["epoch_time_s"] for h in history])) if history else None
        r.final_monitor = history[-1].get("test_" + self.monitor) if history else None
        r.run_time_s = time.perf_counter() - self.t_begin  # this invocation: data, model, epochs, evals
        r.workers = self.par.world
        if self.par.rank == 0:
            ckpt.atomic_write_json(r.to_json(), self.out / "summary.json")
        return r


def _compile(model: torch.nn.Module) -> None:
    """torch.compile the part that dominates the cost, in place (state-dict keys unchanged): a
    sequence encoder's block stack, or the whole model when it has none (DIN)."""
    target = getattr(model, "encoder", model)
    target = getattr(target, "encoder", target)  # a ranker wraps a retrieval model
    target.compile(dynamic=True)


@dataclass
class _Loop:
    """What every training step uses."""

    cfg: RunConfig
    task: Task
    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    par: Parallel
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    device: torch.device


def _train_epoch(
    loop: _Loop, epoch: int, bar: _Progress, first: bool, out: Path, injected: set[str]
) -> EpochRecord:
    cfg, model, par, device = loop.cfg, loop.model, loop.par, loop.device
    model.train()
    torch.manual_seed(_seed(cfg.train.seed, epoch, 0) + par.rank)  # dropout masks
    order_gen = torch.Generator().manual_seed(_seed(cfg.train.seed, epoch, 1))
    order = torch.randperm(loop.task.num_rows, generator=order_gen)  # the same on every worker: each
    batches = _batches(
        order, loop.task.lengths, cfg.train.batch_size, cfg.train.bucket_pool, order_gen
    )  # takes a slice
    gen = torch.Generator(device=device).manual_seed(_seed(cfg.train.seed, epoch, 2) + par.rank)  # negatives
    reset_peak_memory(device)
    total_loss, total_targets, timed_targets, slots, real = 0.0, 0, 0, 0, 0
    t_start = time.perf_counter()
    t_timed = t_start
    steps = len(batches)
    step_losses: list[float] = []
    threads = worker_count(device, cfg.train.cpu_workers)
    groups = cfg.train.length_groups
    # uniform target weights: every batch's summed loss divided by the epoch's mean targets per batch
    per_batch = loop.task.num_targets / len(batches) if cfg.train.target_weights == "uniform" else None
    with Workers(threads) as workers:
        for step, rows in enumerate(batches):
            if first and step == WARMUP_STEPS:
                t_timed, timed_targets = time.perf_counter(), 0
            if len(rows) < par.world:  # a last batch too small to give every worker a row
                continue
            try:
                faults.in_step(out, injected, epoch, step)
                mine = rows[par.rank :: par.world]
                shards = [loop.task.batch(r) for r in _shard_rows(mine, loop.task.lengths, threads, groups)]
                items = [b[0] for b in shards if b[0] is not None]  # every task's batch leads with item ids
                slots += sum(x.numel() for x in items)  # positions computed, padding included
                real += sum(int((x != 0).sum()) for x in items)
                value, n = _train_step(
                    loop, shards, gen, workers, nan="nan" in injected and step == 0, per_batch=per_batch
                )
            except TrainingDiverged as e:
                raise TrainingDiverged(epoch + 1, step + 1, e.loss) from None
            except Exception as e:
                if is_out_of_memory(e):
                    raise OutOfMemory(epoch + 1, step + 1, str(device), " ".join(str(e).split())) from None
                raise
            step_losses.append(value)
            total_loss += value * n
            total_targets += n
            timed_targets += n
            bar.step(epoch + 1, step + 1, value)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    now = time.perf_counter()
    return EpochRecord(
        epoch=epoch + 1,
        loss=total_loss / max(1, total_targets),
        epoch_time_s=now - t_start,
        targets=total_targets,
        targets_per_s=timed_targets / max(1e-9, now - t_timed),
        peak_memory_bytes=peak_memory_bytes(device),
        lr=float(loop.sched.get_last_lr()[0]),
        step_losses=step_losses,
        first_step=epoch * steps + 1,
        padding=1.0 - real / slots if slots else 0.0,
    )


def _batches(
    order: torch.Tensor, lengths: torch.Tensor, bs: int, pool: int | None, gen: torch.Generator
) -> list[torch.Tensor]:
    """Row batches of one epoch: consecutive slices of the shuffled `order`, or, with a bucket pool,
    slices of length-sorted pools of `pool` batches, in shuffled batch order."""
    if pool is None:
        return list(order.split(bs))
    batches: list[torch.Tensor] = []
    for chunk in order.split(bs * pool):
        batches += chunk[torch.argsort(lengths[chunk], stable=True)].split(bs)
    return [batches[i] for i in torch.randperm(len(batches), generator=gen)]


def _shard_rows(rows: torch.Tensor, lengths: torch.Tensor, threads: int, groups: int) -> list[torch.Tensor]:
    """The rows of one step's shards, each computed (and padded) on its own. One length group: one
    shard per worker thread, interleaved (with length buckets each thread gets an equal share of the
    lengths). Several: the rows sorted by length and cut into that many groups (at least one per
    thread), so each is padded only to its own longest row."""
    if groups <= 1:
        return [rows[i::threads] for i in range(min(threads, len(rows)))]
    by_length = rows[torch.argsort(lengths[rows], stable=True)]
    return list(by_length.tensor_split(min(max(groups, threads), len(rows))))


def _train_step(
    loop: _Loop,
    shards: list[tuple[torch.Tensor | None, ...]],
    gen: torch.Generator,
    workers: Workers,
    nan: bool = False,
    per_batch: float | None = None,
) -> tuple[float, int]:
    """One optimiser step on one batch (this worker's slice of it, as one shard or as one shard per
    CPU worker thread); returns (mean loss over the global batch, its number of targets). The gradient
    is the sum over the batch's targets divided by their number, or by `per_batch` when given
    (`train.target_weights: uniform`)."""
    cfg, model, par, device = loop.cfg, loop.model, loop.par, loop.device
    if len(shards) > 1:
        value, n_all = _sharded_gradients(loop, shards, gen, workers, nan, per_batch)
    else:
        loss, n = loop.task.loss(loop.net, model, shards[0], gen, device, cfg.train.precision)
        if nan:
            loss = loss * float("nan")
        value, n_all = par.global_mean(float(loss.detach()), n, device)
        if not math.isfinite(value):
            raise TrainingDiverged(0, 0, value)  # the caller fills in epoch and step
        if par.world > 1 or per_batch:
            # DDP averages gradients over workers: weight so that the result is the sum over all the
            # batch's targets divided by their number (or by per_batch)
            loss = loss * (n * par.world / (per_batch or n_all))
        loop.opt.zero_grad(set_to_none=True)
        loss.backward()
    if cfg.train.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
    loop.opt.step()
    loop.sched.step()
    return value, n_all


def _sharded_gradients(
    loop: _Loop,
    shards: list[tuple[torch.Tensor | None, ...]],
    gen: torch.Generator,
    workers: Workers,
    nan: bool,
    per_batch: float | None = None,
) -> tuple[float, int]:
    """Gradient of the mean loss over all shards' targets (their sum / `per_batch` when given) into
    the parameters' .grad, each shard's forward and backward on its own worker thread
    (cpu_workers.py). Shard i draws negatives and
    dropout masks from generators seeded from `gen`, and the gradients are summed in shard order,
    so the step is reproducible for a given number of shards."""
    cfg, model = loop.cfg, loop.model
    params = [p for p in model.parameters() if p.requires_grad]
    seeds = torch.randint(0, 2**62, (len(shards), 2), generator=gen).tolist()

    def shard(i: int) -> tuple[float, int, tuple[torch.Tensor | None, ...]]:
        negatives = torch.Generator().manual_seed(seeds[i][0])
        with dropout_generator(torch.Generator().manual_seed(seeds[i][1])):
            loss, n = loop.task.loss(loop.net, model, shards[i], negatives, loop.device, cfg.train.precision)
            if nan:
                loss = loss * float("nan")
            grads = torch.autograd.grad(loss * n, params, allow_unused=True)  # the sum over its targets
        return float(loss.detach()), n, grads

    parts = workers.map(shard, range(len(shards)))
    n_all = sum(n for _, n, _ in parts)
    value = sum(v * n for v, n, _ in parts) / n_all
    if not math.isfinite(value):
        raise TrainingDiverged(0, 0, value)  # the caller fills in epoch and step
    loop.opt.zero_grad(set_to_none=True)
    for j, p in enumerate(params):
        grads = [gj for _, _, g in parts if (gj := g[j]) is not None]
        if grads:
            total = grads[0].clone()
            for g in grads[1:]:
                total += g
            p.grad = total.div_(per_batch or n_all)
    return value, n_all


@dataclass
class Parallel:
    """This process's place among the data-parallel workers of one run (rank 0 of 1 when alone).
    Workers are started by Ray Train's TorchTrainer, which also creates the process group."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> Parallel:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def shard(self) -> tuple[int, int] | None:
        return (self.rank, self.world) if self.world > 1 else None

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index or 0] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def global_mean(self, local_mean: float, n: int, device: torch.device) -> tuple[float, int]:
        """(mean over every worker's targets, their number); NaN anywhere makes it NaN everywhere."""
        if self.world == 1:
            return local_mean, n
        import torch.distributed as dist

        t = torch.tensor([local_mean * n, float(n)], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return float(t[0] / t[1]), int(t[1])

    def save(self, fp: str, obj: dict[str, Any], path: Path) -> None:
        """Rank 0 writes (the output directory is shared storage); the others wait for it."""
        if self.rank == 0:
            ckpt.save(obj, path, fp)
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


_SHOWN = ("hr@10", "ndcg@10", "auc", "gauc", "logloss")  # metrics the progress output shows


class _Progress:
    """A rich progress bar (epoch, step, last loss and metrics), or nothing."""

    def __init__(self, enabled: bool, epochs: int, steps: int) -> None:
        import sys

        self.enabled = enabled and sys.stderr.isatty()
        self.lines = enabled and not self.enabled  # not a terminal (a log file): one line per epoch
        if not self.enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.p = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            TextColumn("step {task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[last]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
            console=__import__("rich.console").console.Console(stderr=True),
        )
        self.task = self.p.add_task("train", total=steps, epoch=0, epochs=epochs, loss=float("nan"), last="")
        self.p.start()

    def step(self, epoch: int, step: int, loss: float) -> None:
        if self.enabled:
            self.p.update(self.task, completed=step, epoch=epoch, loss=loss)

    def epoch_done(self, r: EpochRecord) -> None:
        if self.lines:
            import sys

            m = r.valid or r.test
            metrics = " ".join(
                f"{'valid' if r.valid else 'test'}_{k} {v:.4f}" for k, v in m.items() if k in _SHOWN
            )
            print(
                f"epoch {r.epoch}: loss {r.loss:.4f}, {r.epoch_time_s:.1f} s, {r.targets_per_s:,.0f} targets/s {metrics}",
                file=sys.stderr,
                flush=True,
            )
        if self.enabled:
            m = r.valid or r.test
            last = " ".join(f"{k} {v:.4f}" for k, v in m.items() if k in _SHOWN)
            self.p.update(self.task, last=f"[{'valid' if r.valid else 'test'}] {last}" if last else "")

    def close(self) -> None:
        if self.enabled:
            self.p.stop()
