"""A training run with MLflow tracking around it (what `scalelab train` executes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalelab.config import RunConfig
from scalelab.errors import TrainingDiverged
from scalelab.tracking.mlflow_run import RunLogger
from scalelab.training.trainer import EpochRecord, default_output_dir, train_run


def run_with_tracking(
    cfg: RunConfig, output_dir: Path | None = None, track: bool = True, progress: bool = False
) -> dict[str, Any]:
    out = (output_dir or default_output_dir(cfg)).resolve()
    logger = None
    if track:
        run_id_file = out / "mlflow_run_id"
        run_id = run_id_file.read_text().strip() if run_id_file.exists() else None
        logger = RunLogger(
            cfg.tracking.mlflow_uri,
            cfg.tracking.experiment,
            cfg.name,
            tags={"family": cfg.model.family, "kind": "train"},
            run_id=run_id,
        )
        out.mkdir(parents=True, exist_ok=True)
        run_id_file.write_text(logger.run_id)
        logger.log_params(cfg.model_dump(mode="json"))

    def on_epoch(r: EpochRecord) -> None:
        if logger is not None:
            logger.log_metrics(r.flat(), step=r.epoch)

    try:
        summary = train_run(cfg, out, callbacks=[on_epoch], progress=progress)
    except TrainingDiverged as e:
        if logger is not None:
            logger.set_tags({"status": "diverged", "failure_reason": str(e)})
            logger.finish("FAILED")
        raise
    except BaseException:
        if logger is not None:
            logger.finish("KILLED")
        raise
    if logger is not None:
        final = {f"final_{k}": v for k, v in summary["final"].items()}
        best = {f"best_{k}": v for k, v in summary["best_test"].items()}
        size = {k: v for k, v in summary["size"].items()}
        logger.log_metrics(
            {
                **final,
                **best,
                **size,
                **{f"data_{k}": v for k, v in summary["dataset"].items() if isinstance(v, (int, float))},
            },
            step=summary["epochs_run"],
        )
        logger.set_tags(
            {
                "status": summary["status"],
                "stop_reason": summary["stop_reason"],
                "device": summary["device"],
                "git_commit": summary["git_commit"] or "",
            }
        )
        logger.log_artifact(out / "summary.json")
        logger.finish()
    return summary
