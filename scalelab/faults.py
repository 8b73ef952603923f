"""Fault injection for reliability tests (off unless SCALELAB_FAULTS is set).

SCALELAB_FAULTS is a comma-separated list of KIND@MATCH entries; MATCH is compared with the
run's output directory name (a sweep trial's cell id), `*` matches every run. Kinds:
- `nan`: the loss of the first step becomes NaN (exercises the real divergence path);
- `crash_once`: the run raises after its first epoch's checkpoint, once (a marker file in the
  output directory remembers it), so a retry must resume;
- `crash`: the run raises after its first epoch every time.
"""

from __future__ import annotations

import os
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


def after_epoch(output_dir: Path, kinds: set[str]) -> None:
    if "crash" in kinds:
        raise InjectedCrash("injected crash (SCALELAB_FAULTS=crash)")
    marker = output_dir / ".crashed_once"
    if "crash_once" in kinds and not marker.exists():
        marker.touch()
        raise InjectedCrash("injected crash (SCALELAB_FAULTS=crash_once)")
