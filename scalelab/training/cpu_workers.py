"""Data parallelism across threads on a CPU: each worker thread takes a share of the batch and runs
every operator on one core.

With a few cores, PyTorch's intra-op threads split each operator between them; at the sizes of
these models (width 50-64, a few hundred positions per row) many operators are too small to split
well or are not parallelised at all, and every split operator ends in a barrier. One share of the
batch per core, operators single-threaded, can keep the cores busier (PyTorch releases the GIL
inside operators). Measured on two cores (bench/bench_cpu_workers.py, same-process A/B): 1.2-1.5x
the training step rate of HSTU, HSTU-large and SASRec on the default and fast paths (an earlier,
noisier run: 0.9-1.3x); the all-user evaluation gained nothing (0.97-1.08x), so it does not use them.
Written here because PyTorch has no in-process data parallelism on CPU (DistributedDataParallel
needs a process per worker and a collective per step).

Gradient mode, inference mode and autocast are thread-local in PyTorch: the functions run in the
workers set their own. Randomness in a worker comes from its own generators (`rng.dropout_generator`),
so a run with a given number of workers is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


def worker_count(device: torch.device, requested: int) -> int:
    """Worker threads for `device`: `requested` on the CPU, 1 elsewhere (accelerators keep one
    stream of large kernels)."""
    return max(1, requested) if device.type == "cpu" else 1


class Workers:
    """A pool of `n` threads; while it is open, operators run on the calling thread only (torch's
    thread count is process-wide: set to 1, restored on exit). `map` keeps the input order; with
    n = 1 it runs on the calling thread and changes nothing."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._pool: ThreadPoolExecutor | None = None
        self._threads_before = 0

    def __enter__(self) -> Workers:
        if self.n > 1:
            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
            self._pool = ThreadPoolExecutor(self.n, thread_name_prefix="scalelab-cpu")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
            torch.set_num_threads(self._threads_before)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if self._pool is None:
            return [fn(x) for x in items]
        return list(self._pool.map(fn, items))
