"""Helpers shared by the benchmarks: real data, timing, and writing records."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
REFERENCE = ROOT / "results" / "reference"


def ml1m_path() -> Path:
    p = SHARED / "ml-1m" / "interactions.tsv.gz"
    if not p.exists():
        raise SystemExit(f"benchmark needs {p} (real ML-1M in ../shared/datasets)")
    return p


def padded_batches(
    ptr: np.ndarray,
    items: np.ndarray,
    ts: np.ndarray,
    ends: np.ndarray,
    max_len: int,
    batch: int,
    seed: int = 0,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Right-padded (items, timestamps) batches of each user's last `max_len` events before `ends`."""
    users = np.random.default_rng(seed).permutation(len(ends))
    out = []
    for lo in range(0, len(users) - batch + 1, batch):
        sel = users[lo : lo + batch]
        it = np.zeros((batch, max_len), dtype=np.int64)
        tt = np.zeros((batch, max_len), dtype=np.int64)
        for r, u in enumerate(sel):
            start = max(ptr[u], ends[u] - max_len)
            n = ends[u] - start
            it[r, :n] = items[start : ends[u]]
            tt[r, :n] = ts[start : ends[u]]
        out.append((torch.from_numpy(it), torch.from_numpy(tt)))
    return out


def median_time(fn: Callable[[], Any], reps: int = 3) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": _cpu_model() or platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_1_5_15": [round(x, 2) for x in os.getloadavg()],  # background runs distort timings
    }


def _cpu_model() -> str | None:
    """The CPU's model name and clock from /proc/cpuinfo (Linux), None elsewhere: hosts of the same
    name differ in speed, so records say which one they ran on."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    name, mhz = fields.get("model name"), fields.get("cpu MHz")
    return f"{name} ({float(mhz):.0f} MHz)" if name and mhz else name


def write_record(name: str, record: dict[str, Any]) -> Path:
    REFERENCE.mkdir(parents=True, exist_ok=True)
    path = REFERENCE / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
