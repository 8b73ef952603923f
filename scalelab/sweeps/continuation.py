"""Cells whose settings changed only in what a run may change when it resumes continue from the
trial that trained them, instead of starting over.

A cell id hashes the whole configuration, so raising a sweep's epoch limit or patience (or setting
train.min_steps, or changing the evaluation schedule) gives every cell a new id and a new trial
directory. Training is the same up to where the old trial stopped: its checkpoint fingerprint
(`scalelab.training.checkpoint.fingerprint`) leaves those settings out. A cell to run that has no
checkpoint of its own starts from the newest checkpoint of a trial directory that is no longer one
of the sweep's cells and has the cell's fingerprint; the old directory stays as it was.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from scalelab.sweeps.spec import Cell

# what a trial needs to continue: the tensors, their fingerprint, the best epoch's weights
FILES = ("checkpoint.pt", "checkpoint.json", "best.pt")


def continue_from_stale(root: Path, cells: list[Cell], todo: list[Cell]) -> dict[str, str]:
    """Seed each cell of `todo` without a checkpoint from a stale trial of `root` with its fingerprint;
    returns {cell id: the trial id it continues}."""
    from scalelab.training.checkpoint import fingerprint, stored_fingerprint

    trials = root / "trials"
    current = {c.cell_id for c in cells}
    stale: dict[str, list[Path]] = {}
    for d in trials.iterdir() if trials.is_dir() else ():
        ckpt = d / "checkpoint.pt"
        if d.name not in current and ckpt.is_file() and (fp := stored_fingerprint(ckpt)) is not None:
            stale.setdefault(fp, []).append(d)
    out: dict[str, str] = {}
    for cell in todo:
        own = trials / cell.cell_id
        donors = stale.get(fingerprint(cell.config), [])
        if (own / "checkpoint.pt").exists() or not donors:
            continue
        donor = max(donors, key=lambda d: (d / "checkpoint.pt").stat().st_mtime)
        own.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            if (donor / name).is_file():
                shutil.copyfile(donor / name, own / name)
        out[cell.cell_id] = donor.name
    return out
