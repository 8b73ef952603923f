"""Per-thread random streams for dropout: the worker threads of a CPU training step
(training/cpu_workers.py) each draw their masks from their own generator, so a run is reproducible
whatever order the threads run in."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F


class _ThreadRng(threading.local):
    generator: torch.Generator | None = None


_thread_rng = _ThreadRng()


def thread_generator() -> torch.Generator | None:
    """This thread's dropout generator, if it has one."""
    return _thread_rng.generator


@contextmanager
def dropout_generator(gen: torch.Generator) -> Iterator[None]:
    """Dropout masks drawn in this thread come from `gen` until exit. Worker threads of a CPU
    training step use it (training/cpu_workers.py): the process-wide generator would hand them
    masks in whatever order the threads happen to draw, and the run would not be reproducible."""
    before, _thread_rng.generator = _thread_rng.generator, gen
    try:
        yield
    finally:
        _thread_rng.generator = before


def drop(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout: F.dropout, or, in a thread with its own dropout generator, the same keep-mask
    computation (bernoulli(1 - p) / (1 - p)) drawn from that generator."""
    gen = _thread_rng.generator
    if gen is None or not training or p == 0.0:
        return F.dropout(x, p, training)
    return x * torch.empty_like(x).bernoulli_(1.0 - p, generator=gen).div_(1.0 - p)
