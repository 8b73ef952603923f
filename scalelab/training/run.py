"""A training run with MLflow tracking around it (what `scalelab train` executes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalelab.config import RunConfig
from scalelab.errors import RunFailed, UserError
from scalelab.run_record import RunRecord
from scalelab.tracking.mlflow_run import Outbox, RunLogger
from scalelab.training.trainer import EpochRecord, default_output_dir, train_run


def run_with_tracking(
    cfg: RunConfig, output_dir: Path | None = None, track: bool = True, progress: bool = False
) -> dict[str, Any]:
    out = (output_dir or default_output_dir(cfg)).resolve()
    logger = outbox = None
    if track:
        from scalelab.tracking.mlflow_run import default_tracking_uri

        out.mkdir(parents=True, exist_ok=True)
        run_id_file = out / "mlflow_run_id"
        run_id = run_id_file.read_text().strip() if run_id_file.exists() else None
        outbox = Outbox(cfg.tracking.mlflow_uri or default_tracking_uri(), spool=out / "tracking_spool.jsonl")
        logger = RunLogger(
            outbox.uri,
            cfg.tracking.experiment,
            cfg.name,
            tags={"family": cfg.model.family, "kind": "train"},
            run_id=run_id,
            outbox=outbox,
        )
        outbox.flush(force=True)
        run_id_file.write_text(logger.run_id)
        logger.log_params(cfg.model_dump(mode="json"))

    def on_epoch(r: EpochRecord) -> None:
        if logger is not None:
            logger.log_metrics(r.flat(), step=r.epoch)
            if cfg.tracking.step_metrics:
                logger.log_series("step_loss", r.step_losses, r.first_step)

    try:
        summary = train_run(cfg, out, callbacks=[on_epoch], progress=progress)
    except RunFailed as e:  # diverged or out of memory
        if logger is not None and outbox is not None:
            status = "oom" if e.__class__.__name__ == "OutOfMemory" else "diverged"
            logger.set_tags({"status": status, "failure_reason": str(e)})
            logger.finish("FAILED")
            outbox.drain(cfg.tracking.drain_timeout_s)
        raise
    except BaseException:
        if logger is not None:
            logger.finish("KILLED")
        raise
    if logger is not None and outbox is not None:
        rec = RunRecord.from_json(summary)
        logger.log_metrics(
            {
                **{f"final_{k}": v for k, v in rec.final.items()},
                **{f"best_{k}": v for k, v in rec.best_test.items()},
                **rec.size,
                **{f"data_{k}": v for k, v in rec.dataset.items() if isinstance(v, (int, float))},
            },
            step=rec.epochs_run or 0,
        )
        logger.set_tags(
            {
                "status": rec.status,
                "stop_reason": rec.stop_reason or "",
                "device": rec.device,
                "git_commit": rec.git_commit or "",
            }
        )
        logger.log_artifact(out / "summary.json")
        logger.finish()
        if not outbox.drain(cfg.tracking.drain_timeout_s):
            raise UserError(
                f"the run finished but the tracking store {outbox.uri} did not take {len(outbox.pending)} writes "
                f"({getattr(outbox, 'last_error', '')}); they are kept in {outbox.spool}: re-run the same command "
                "to deliver them"
            )
    return summary
