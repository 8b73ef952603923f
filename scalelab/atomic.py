"""Atomic file writes: a unique temporary beside the target, fsync, rename.

Two writers never share a temporary name, a reader never sees half a file, and a failed write
(disk full, read-only) leaves the previous file intact and raises an OSError that names the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write `path` by calling `write(binary file)` on a unique temporary, then renaming it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _naming(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _naming(e, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(text: str, path: Path) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_json(obj: Any, path: Path) -> None:
    atomic_write_text(json.dumps(obj, indent=2, default=str), path)


def _naming(e: OSError, path: Path) -> OSError:
    """The same error with the target's name: a write through a descriptor reports none."""
    if e.filename:
        return e
    return type(e)(e.errno, e.strerror or str(e), str(path))
