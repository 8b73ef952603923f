"""Fault injection for reliability tests (off unless SCALELAB_FAULTS is set).

SCALELAB_FAULTS is a comma-separated list of KIND@MATCH entries; MATCH is compared with the
run's output directory name (a sweep trial's cell id), `*` matches every run. Kinds:
- `nan`: the loss of the first step becomes NaN (exercises the real divergence path);
- `crash_once`: the run raises after its first epoch's checkpoint, once (a marker file in the
  output directory remembers it), so a retry must resume;
- `crash`: the run raises after its first epoch every time;
- `kill_once`: the process SIGKILLs itself in the middle of its second epoch, once (the worker
  dies as under the kernel's OOM killer or a lost node: no exception, no clean-up);
- `oom`: the first step raises torch.OutOfMemoryError, every time;
- `enospc`: writing the checkpoint of the second epoch fails with "No space left on device".
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path


def active(output_dir: Path) -> set[str]:
    spec = os.environ.get("SCALELAB_FAULTS", "")
    kinds = set()
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        kind, _, match = entry.partition("@")
        if match in ("*", "") or output_dir.name.startswith(match):
            kinds.add(kind)
    return kinds


class InjectedCrash(RuntimeError):
    """Raised by the `crash` and `crash_once` faults."""


def _once(output_dir: Path, kind: str) -> bool:
    """True the first time `kind` fires in this output directory (a marker file remembers it)."""
    marker = output_dir / f".fault_{kind}"
    if marker.exists():
        return False
    marker.touch()
    return True


def in_step(output_dir: Path, kinds: set[str], epoch: int, step: int) -> None:
    """Called before every training step (epoch and step 0-based)."""
    if not kinds:
        return
    if "oom" in kinds and epoch == 0 and step == 0:
        import torch

        raise torch.OutOfMemoryError("injected: CUDA out of memory. Tried to allocate 20.00 GiB")
    if "kill_once" in kinds and epoch == 1 and step == 1 and _once(output_dir, "kill_once"):
        os.kill(os.getpid(), signal.SIGKILL)


def before_checkpoint(output_dir: Path, kinds: set[str], epoch: int) -> None:
    """Called before the checkpoint of `epoch` (1-based) is written."""
    if "enospc" in kinds and epoch == 2:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(output_dir / "checkpoint.pt"))


def after_epoch(output_dir: Path, kinds: set[str]) -> None:
    if "crash" in kinds:
        raise InjectedCrash("injected crash (SCALELAB_FAULTS=crash)")
    if "crash_once" in kinds and _once(output_dir, "crash_once"):
        raise InjectedCrash("injected crash (SCALELAB_FAULTS=crash_once)")
