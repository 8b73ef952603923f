"""Training throughput, epoch time and MFU of the real training step, and RecBole's SASRec beside it.

Unit (../shared/reference/peers.md): supervised targets per second, forward + backward + AdamW step
with 128 sampled negatives, after warm-up, data in memory; real ML-1M (leave-one-out, last 201
training items per user, batch 128, width 50). Paths: `plain` = shuffled batches, each trimmed to
its longest row (the default); `bucketed` = `train.bucket_pool: 50`; `fast` = bucketed plus
`train.negatives_per: sequence` (one draw of negatives per sequence instead of per position);
`grouped` = shuffled batches, each computed as 4 groups of similar length (`train.length_groups: 4`);
`+threads` = the same with `train.cpu_workers` = torch's thread count. The epoch time is
the epoch's targets divided by the measured rate (the rate is measured on the first batches of the
epoch's batch order, so it sees the same length mix). MFU = analytic training FLOPs per target
(scalelab/models/accounting.py) x targets/s / this machine's fp32 matmul peak measured in the same
run (torch.mm 2048x2048). RecBole 1.2.1's SASRec (CE over all items, one target per prefix
example) runs in its own environment (.venv-bench, `make bench-env`) in the same invocation.

    python bench/bench_train.py [--steps 12] [--reps 3] [--families hstu,hstu_large,sasrec,llama]
        [--paths plain,fast+threads] [--record NAME] [--no-recbole]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, ml1m_path, write_record

from scalelab.config import load_config
from scalelab.data.loader import load_dataset
from scalelab.data.split import make_split
from scalelab.models import resolve
from scalelab.training.cpu_workers import Workers
from scalelab.training.tasks import make_task
from scalelab.training.trainer import Parallel, _batches, _Loop, _shard_rows, _train_step

CONFIGS = {
    "hstu": ["model.family=hstu", "model.depth=2", "model.heads=1"],
    "hstu_large": ["model.family=hstu", "model.depth=8", "model.heads=2"],
    "sasrec": ["model.family=sasrec", "model.depth=2", "model.heads=1"],
    "llama": ["model.family=llama", "model.depth=2", "model.heads=1"],
    "hstu_d8_w64": ["model.family=hstu", "model.depth=8", "model.heads=2", "model.width=64"],
    "fuxi_alpha": ["model.family=fuxi_alpha", "model.depth=8", "model.heads=2"],  # not in the default run
}
TARGETS = {"hstu": 25_000, "hstu_large": 14_000, "sasrec": 30_000}  # targets/s, the goals


def matmul_peak(reps: int = 5, n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        times.append((time.perf_counter() - t0) / 4)
    return 2 * n**3 / statistics.median(times)


# path: (bucket pool, negatives drawn per, CPU worker threads (0 = as many as torch's threads), length groups)
PATHS = {
    "plain": (None, "position", 1, 1),
    "grouped": (None, "position", 1, 4),
    "bucketed": (50, "position", 1, 1),
    "fast": (50, "sequence", 1, 1),
    "grouped+threads": (None, "position", 0, 4),
    "bucketed+threads": (50, "position", 0, 1),
    "fast+threads": (50, "sequence", 0, 1),
}


class TrainingStep(NamedTuple):
    """The trainer's optimiser step of one family on one path: inside `with pool:`, `step(rows)` runs
    forward, backward and AdamW on those rows and returns their number of targets."""

    task: Any
    model: torch.nn.Module
    step: Callable[[torch.Tensor], int]
    batches: list[torch.Tensor]  # one epoch's batches, in training order
    size: dict  # the task's size report (parameters, FLOPs per target)
    pool: Workers


def training_step(
    name: str, path: Path, variant: str, workers: int | None = None, groups: int | None = None
) -> TrainingStep:
    """Family `name` on `variant`'s path (PATHS); `workers` and `groups` override the path's worker
    threads and length groups."""
    pool_size, negatives_per, threads, path_groups = PATHS[variant]
    if workers is None:
        workers = threads or torch.get_num_threads()
    groups = path_groups if groups is None else groups
    over = [f"data.path={path}", "data.split=leave_one_out", "data.min_seq_len=2", "model.width=50",
            "model.dropout=0.2", *CONFIGS[name]]  # fmt: skip
    over += [f"train.negatives_per={negatives_per}", f"train.cpu_workers={workers}", "train.device=cpu",
             f"train.length_groups={groups}"]  # fmt: skip
    if pool_size:
        over.append(f"train.bucket_pool={pool_size}")
    cfg = load_config(None, over)
    data = load_dataset(cfg.data)
    task = make_task(cfg, data, make_split(data, cfg.data.split, cfg.data.max_seq_len))
    spec = resolve(cfg.model, cfg.padded_len())
    torch.manual_seed(0)
    model = task.build_model(spec)
    size, _ = task.size(model, spec)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    gen = torch.Generator().manual_seed(0)
    batches = _batches(torch.randperm(task.num_rows, generator=gen), task.lengths, 128, pool_size, gen)
    dev = torch.device("cpu")
    loop = _Loop(cfg, task, model, model, Parallel(), opt, sched, dev)
    pool = Workers(workers)

    def step(rows: torch.Tensor) -> int:
        shards = [task.batch(r) for r in _shard_rows(rows, task.lengths, workers, groups)]
        return _train_step(loop, shards, gen, pool)[1]

    return TrainingStep(task, model, step, batches, size, pool)


def targets_per_s(step: Callable[[torch.Tensor], int], batches: list[torch.Tensor]) -> float:
    """Training targets per second of `step` over `batches`, one after another."""
    t0, n = time.perf_counter(), 0
    for rows in batches:
        n += step(rows)
    return n / (time.perf_counter() - t0)


def alternating_rates(arms: dict, batches: list[torch.Tensor], steps: int, reps: int) -> dict:
    """Same-process A/B: each arm (a TrainingStep) runs the same `steps` batches in turn, round after
    round; the median targets/s of each arm over `reps` rounds after one warm-up round."""
    rates: dict = {k: [] for k in arms}
    for r in range(reps + 1):  # the first round warms up
        chosen = batches[r * steps : (r + 1) * steps]
        for key, ts in arms.items():
            with ts.pool:
                rate = targets_per_s(ts.step, chosen)
            if r:
                rates[key].append(rate)
    return {k: statistics.median(v) for k, v in rates.items()}


def bench_family(name: str, path: Path, steps: int, reps: int, variant: str) -> dict:
    ts = training_step(name, path, variant)
    rates = []
    with ts.pool:
        for rows in ts.batches[:3]:  # warm-up
            ts.step(rows)
        for r in range(reps):
            rates.append(targets_per_s(ts.step, ts.batches[3 + r * steps : 3 + (r + 1) * steps]))
    rate = statistics.median(rates)
    return {
        "family": name, "path": variant, "workers": ts.pool.n, "targets_per_s": rate,
        "epoch_targets": ts.task.num_targets, "epoch_s": ts.task.num_targets / rate,
        "flops_per_target": ts.size["flops_per_token"], "achieved_gflops": ts.size["flops_per_token"] * rate / 1e9,
    }  # fmt: skip


def recbole(steps: int) -> dict:
    py = ROOT / ".venv-bench" / "bin" / "python"
    if not py.exists():
        return {"skipped": f"{py} missing: run `make bench-env`"}
    out = subprocess.run(
        [str(py), str(ROOT / "bench" / "recbole_sasrec.py"), str(ml1m_path()), str(steps)],
        capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    if out.returncode != 0:
        return {
            "failed": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"
        }
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--families", default="hstu,hstu_large,sasrec,llama,hstu_d8_w64")
    ap.add_argument("--no-recbole", action="store_true")
    ap.add_argument("--paths", default=",".join(PATHS), help="comma-separated subset of " + ", ".join(PATHS))
    ap.add_argument("--record", default="bench_train", help="name of the JSON record under results/reference")
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    path = ml1m_path()
    peak = matmul_peak()
    rows = []
    for fam in args.families.split(","):
        for variant in args.paths.split(","):
            r = bench_family(fam, path, args.steps, args.reps, variant)
            r["mfu"] = r["achieved_gflops"] * 1e9 / peak
            rows.append(r)
            print(f"{fam:12s} {r['path']:16s} {r['targets_per_s']:9,.0f} targets/s  epoch {r['epoch_s']:6.1f} s  "
                  f"MFU {100 * r['mfu']:.1f}%", flush=True)  # fmt: skip
    peak_after = matmul_peak()
    rec = {} if args.no_recbole else recbole(args.steps)
    if rec:
        print("recbole sasrec:", rec)
    ref = rec.get("targets_per_s")
    for r in rows:
        r["ratio_vs_recbole_sasrec"] = r["targets_per_s"] / ref if ref else None
        r["target"] = TARGETS.get(r["family"])
    record = {
        "machine": machine(), "matmul_peak_gflops": [peak / 1e9, peak_after / 1e9], "steps": args.steps,
        "reps": args.reps, "rows": rows, "recbole_sasrec": rec,
    }  # fmt: skip
    print("written", write_record(args.record, record))


if __name__ == "__main__":
    main()
