"""One writer per results directory: an advisory lock held by the sweep driver for its whole run.

The lock is `filelock` (flock on POSIX), so the kernel releases it when the holder dies, even by
SIGKILL: a stale lock never blocks a re-run. Beside it, `.sweep.owner.json` names the holder (PID,
host, start time) so a refused driver can say who holds the directory.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from scalelab.atomic import atomic_write_json
from scalelab.errors import UserError

LOCK_FILE = ".sweep.lock"
OWNER_FILE = ".sweep.owner.json"


class ResultsLock:
    """`with ResultsLock(root):` holds `root` for this process, or raises a one-line UserError."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = FileLock(str(root / LOCK_FILE), timeout=0)

    def __enter__(self) -> ResultsLock:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise UserError(
                f"{self.root}: {holder(self.root)}; wait for it to end or set another output_dir"
            ) from None
        atomic_write_json(
            {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")},
            self.root / OWNER_FILE,
        )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        (self.root / OWNER_FILE).unlink(missing_ok=True)
        self._lock.release()


def holder(root: Path) -> str:
    """Who holds the results directory, in words (as recorded by the holder)."""
    try:
        o = json.loads((root / OWNER_FILE).read_text())
        return f"another sweep is writing here (PID {o['pid']} on {o['host']}, since {o['since']})"
    except (OSError, ValueError, KeyError):  # the holder is between acquiring and writing its name
        return "another sweep is writing here"
