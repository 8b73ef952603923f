"""A trial that trains on several devices: Ray Train's TorchTrainer inside the Tune trial.

The Tune trial is a light driver; the TorchTrainer it starts places `workers` training processes
(each with the cell's per-worker resources) and creates their process group: nccl on CUDA, hccl on
Ascend, gloo on CPU. Every worker runs the ordinary `train_run`, which sees the process group and
trains with DistributedDataParallel on its slice of every global batch (see `trainer.Parallel`).
Rank 0 writes the checkpoint and the summary into the trial's directory, which must be shared
storage when workers sit on several nodes; a retried trial starts a new worker group that resumes
from that checkpoint. Epoch reports reach Tune through `TuneReportCallback`, so the sweep driver
logs them exactly as for a single-process trial: one MLflow run per cell whatever the worker count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BACKENDS = {"cpu": "gloo", "gpu": "nccl", "npu": "hccl"}


def _worker(config: dict[str, Any]) -> None:
    """Runs in every training worker."""
    import ray.train
    import torch

    from scalelab.config import RunConfig
    from scalelab.training.trainer import EpochRecord, train_run

    torch.set_num_threads(max(1, int(config["threads"])))
    cfg = RunConfig.model_validate(config["config"])
    kind = config["kind"]
    if (
        kind != "cpu"
    ):  # Ray Train chose this worker's device (CUDA_VISIBLE_DEVICES / ASCEND_RT_VISIBLE_DEVICES)
        device = str(ray.train.torch.get_device())
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"device": device})})

    def on_epoch(r: EpochRecord) -> None:
        report: dict[str, Any] = {"epoch": r.epoch, **r.flat()}
        if cfg.tracking.step_metrics:
            report.update(step_losses=r.step_losses, first_step=r.first_step)
        ray.train.report(report)  # every worker reports (a collective); rank 0's reaches Tune

    train_run(cfg, Path(config["out"]), callbacks=[on_epoch])


def train_data_parallel(
    cfg_json: dict[str, Any], out: Path, workers: int, per_worker: dict[str, float]
) -> None:
    """Train one cell on `workers` data-parallel workers; raises if the worker group fails."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    kind = "gpu" if per_worker.get("gpu") else ("npu" if per_worker.get("npu") else "cpu")
    resources = {"CPU": per_worker["cpu"]}
    if kind == "npu":
        resources["NPU"] = per_worker["npu"]
    elif kind == "gpu":
        resources["GPU"] = per_worker["gpu"]
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"config": cfg_json, "out": str(out), "kind": kind, "threads": per_worker["cpu"]},
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=kind == "gpu", resources_per_worker=resources
        ),
        torch_config=TorchConfig(backend=BACKENDS[kind]),
        run_config=RunConfig(
            name="ddp",
            storage_path=str(out / "ray_train"),
            failure_config=FailureConfig(max_failures=0),  # Tune's retries restart the whole trial
            callbacks=[TuneReportCallback()],  # type: ignore[list-item]  # Ray's own bridge to Tune
        ),
    )
    trainer.fit()
