"""The Ray Tune function trainable: one sweep cell = one `train_run` in its own directory.

It reports every epoch with a checkpoint (a copy of the run's checkpoint file), so a retried trial
resumes from its last epoch even on another node; on the same node the run directory already has
it. A diverged or out-of-memory run is a finished trial with status `diverged` / `oom` (retrying
the same config would fail the same way); any other exception leaves its one-line reason in
`error.txt` and propagates, so Tune retries it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from scalelab.atomic import atomic_write_text
from scalelab.config import RunConfig
from scalelab.errors import OutOfMemory, TrainingDiverged
from scalelab.training.trainer import EpochRecord, train_run

CHECKPOINT_FILES = ("checkpoint.pt", "checkpoint.json")  # the tensors and their fingerprint


def run_cell(config: dict[str, Any], cells: dict[str, dict[str, Any]], out_root: str) -> None:
    cid = config["cell"]
    cell = cells[cid]
    cfg = RunConfig.model_validate(cell["config"])
    out = Path(out_root) / "trials" / cid
    out.mkdir(parents=True, exist_ok=True)
    (out / "error.txt").unlink(missing_ok=True)
    _record_attempt(out)
    torch.set_num_threads(max(1, int(cell["threads"])))

    restored = tune.get_checkpoint()
    if restored is not None and not (out / "checkpoint.pt").exists():
        with restored.as_directory() as d:
            for name in CHECKPOINT_FILES:
                if (Path(d) / name).exists():
                    shutil.copyfile(Path(d) / name, out / name)

    def on_epoch(r: EpochRecord) -> None:
        report: dict[str, Any] = {"epoch": r.epoch, "last_epoch": r.last, **r.flat()}
        if cfg.tracking.step_metrics:
            report.update(step_losses=r.step_losses, first_step=r.first_step)
        with tempfile.TemporaryDirectory() as tmp:
            for name in CHECKPOINT_FILES:
                shutil.copyfile(out / name, Path(tmp) / name)
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(tmp))

    try:
        if cell.get("workers", 1) > 1:
            summary = _data_parallel(cell, cfg, out)
            if summary["status"] in ("diverged", "oom"):
                tune.report(
                    {"status": summary["status"], "failure_reason": summary.get("failure_reason", "")}
                )
                return
        else:
            summary = train_run(cfg, out, callbacks=[on_epoch])
    except TrainingDiverged as e:
        tune.report({"status": "diverged", "failure_reason": str(e)})
        return
    except OutOfMemory as e:
        tune.report({"status": "oom", "failure_reason": str(e)})
        return
    except BaseException as e:
        with contextlib.suppress(OSError):  # a full disk: the driver still marks the cell failed
            atomic_write_text(" ".join(f"{e.__class__.__name__}: {e}".split()), out / "error.txt")
        raise
    tune.report({"status": "finished", **{f"final_{k}": v for k, v in summary["final"].items()}})


def _record_attempt(out: Path) -> None:
    """Append where this attempt runs to attempts.jsonl (node, pid, time): retries and their nodes."""
    import json
    import os
    import time

    import ray

    ctx = ray.get_runtime_context()
    with open(out / "attempts.jsonl", "a") as f:
        f.write(json.dumps({"node_id": ctx.get_node_id(), "pid": os.getpid(), "time": time.time()}) + "\n")


def _data_parallel(cell: dict[str, Any], cfg: RunConfig, out: Path) -> dict[str, Any]:
    """Run the cell on its data-parallel workers; their outcome comes back through rank 0's summary."""
    from scalelab.sweeps.ddp import train_data_parallel

    try:
        train_data_parallel(cfg.model_dump(mode="json"), out, cell["workers"], cell["per_worker"])
    except Exception as e:
        summary = _read_summary(out)
        if summary is not None and summary.get("status") in ("diverged", "oom"):
            return summary
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise RuntimeError(f"data-parallel workers failed: {lines[-1] if lines else e}") from None
    summary = _read_summary(out)
    if summary is None or summary.get("status") != "finished":
        raise RuntimeError("data-parallel workers ended without a finished summary")
    return summary


def _read_summary(out: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return None
