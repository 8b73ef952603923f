"""The Ray Tune function trainable: one sweep cell = one `train_run` in its own directory.

It reports every epoch with a checkpoint (a copy of the run's checkpoint file), so a retried trial
resumes from its last epoch even on another node; on the same node the run directory already has
it. A diverged or out-of-memory run is a finished trial with status `diverged` / `oom` (retrying
the same config would fail the same way); any other exception leaves its one-line reason in
`error.txt` and propagates, so Tune retries it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from scalelab.config import RunConfig
from scalelab.errors import OutOfMemory, TrainingDiverged
from scalelab.training.trainer import EpochRecord, train_run


def run_cell(config: dict[str, Any], cells: dict[str, dict[str, Any]], out_root: str) -> None:
    cid = config["cell"]
    cell = cells[cid]
    cfg = RunConfig.model_validate(cell["config"])
    out = Path(out_root) / "trials" / cid
    out.mkdir(parents=True, exist_ok=True)
    (out / "error.txt").unlink(missing_ok=True)
    torch.set_num_threads(max(1, int(cell["threads"])))

    restored = tune.get_checkpoint()
    if restored is not None and not (out / "checkpoint.pt").exists():
        with restored.as_directory() as d:
            shutil.copyfile(Path(d) / "checkpoint.pt", out / "checkpoint.pt")

    def on_epoch(r: EpochRecord) -> None:
        report: dict[str, Any] = {"epoch": r.epoch, **r.flat()}
        if cfg.tracking.step_metrics:
            report.update(step_losses=r.step_losses, first_step=r.first_step)
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copyfile(out / "checkpoint.pt", Path(tmp) / "checkpoint.pt")
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(tmp))

    try:
        summary = train_run(cfg, out, callbacks=[on_epoch])
    except TrainingDiverged as e:
        tune.report({"status": "diverged", "failure_reason": str(e)})
        return
    except OutOfMemory as e:
        tune.report({"status": "oom", "failure_reason": str(e)})
        return
    except BaseException as e:
        (out / "error.txt").write_text(" ".join(f"{e.__class__.__name__}: {e}".split()))
        raise
    tune.report({"status": "finished", **{f"final_{k}": v for k, v in summary["final"].items()}})
