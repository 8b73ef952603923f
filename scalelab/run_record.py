"""The record of one run: what the trainer writes (summary.json) and what the sweep's runs table,
MLflow logging and the fitters read. Torch-free.

`RunRecord.to_json` is the summary.json format (unchanged from the dict the trainer wrote before
this type: the result fields appear once a run has ended). `table_fields` is the run's part of a
runs-table row, in the column schema documented in `fitters/table.py`; `tracking_metrics` is what a
sweep logs to MLflow for it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# fields a run has only once it ended (finished; `history` and `failure_reason` also when it failed)
_RESULT_FIELDS = (
    "stop_reason",
    "epochs_run",
    "targets_seen",
    "final",
    "best_epoch",
    "best_valid",
    "best_test",
    "monitor",
    "selection",
    "mean_epoch_time_s",
    "final_monitor",
    "run_time_s",
    "workers",
)
ENDED = ("finished", "diverged", "oom")
# table_fields columns that are not part of a size report (from_table_fields reads them by name)
_ROW_ONLY = {"epochs_run", "best_epoch", "device", "flops_per_epoch", "final_loss", "mean_epoch_time_s"}


@dataclass
class RunRecord:
    name: str = ""
    status: str = "running"  # running, then finished | diverged | oom
    config: dict[str, Any] = field(default_factory=dict)  # the resolved run config (YAML form)
    fingerprint: str = ""  # checkpoint fingerprint of the config
    output_dir: str = ""
    device: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    dataset: dict[str, Any] = field(default_factory=dict)  # sizes and data-quality terms
    task: str = "retrieval"
    size: dict[str, float] = field(default_factory=dict)  # models.sizes.SizeReport.as_dict()
    flops_per_epoch: float | None = None
    side_inputs: dict[str, Any] | None = None  # facts about the side inputs, when used
    resumed_from_epoch: int | None = None
    failure_reason: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per epoch
    # results (once finished)
    stop_reason: str | None = None  # epochs | early_stopping | token_budget
    epochs_run: int | None = None
    targets_seen: int | None = None
    final: dict[str, float] = field(default_factory=dict)  # test metrics of the last evaluation
    best_epoch: int | None = None  # the epoch selected on the monitored metric
    best_valid: dict[str, float] = field(default_factory=dict)
    best_test: dict[str, float] = field(default_factory=dict)  # test metrics at best_epoch
    monitor: str | None = None
    selection: str | None = None
    mean_epoch_time_s: float | None = None
    final_monitor: float | None = None
    run_time_s: float | None = None  # this invocation's time
    workers: int | None = None

    # ------------------------------------------------------------------------------- JSON

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if d["side_inputs"] is None:
            d.pop("side_inputs")
        if self.failure_reason is None:
            d.pop("failure_reason")
        if self.status not in ENDED:
            d.pop("history")
        if self.status != "finished":
            for k in _RESULT_FIELDS:
                d.pop(k)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunRecord:
        """A record from summary.json (missing fields take their defaults; unknown ones are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names and v is not None})

    # ------------------------------------------------------------------------------ views

    @property
    def selected_test(self) -> dict[str, float]:
        """Test metrics at the selected epoch (best validation epoch, else the last evaluation)."""
        return self.best_test or self.final

    def table_fields(self) -> dict[str, Any]:
        """The run's columns of a runs-table row (fitters/table.py documents the schema)."""
        row: dict[str, Any] = {
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "device": self.device or None,
        }
        row.update(flat("", self.size))
        row["flops_per_epoch"] = self.flops_per_epoch
        row.update(flat("data_", {k: v for k, v in self.dataset.items() if k != "cache_key"}))
        row.update(flat("final_", self.final))
        row.update(flat("best_", self.best_test))
        row.update(flat("valid_best_", self.best_valid))
        if self.history:
            row["final_loss"] = self.history[-1].get("loss")
            row["mean_epoch_time_s"] = self.mean_epoch_time_s
        return row

    @classmethod
    def from_table_fields(cls, row: dict[str, Any], status: str = "finished") -> RunRecord:
        """The record's results back from its `table_fields` columns (a row of a runs table kept
        elsewhere): metrics, sizes, dataset statistics, FLOPs and epochs; no history or config. Empty
        cells (NaN, None) are left out."""

        def present(v: Any) -> bool:
            return v is not None and not (isinstance(v, float) and v != v)

        groups: dict[str, dict[str, Any]] = {"final_": {}, "best_": {}, "valid_best_": {}, "data_": {}}
        size: dict[str, Any] = {}
        for col, v in row.items():
            if not present(v) or col in _ROW_ONLY:
                continue
            prefix = next((p for p in ("valid_best_", "best_", "final_", "data_") if col.startswith(p)), None)
            if prefix is None:
                size[col] = v
            else:
                groups[prefix][col[len(prefix) :]] = v

        def number(col: str, kind: type) -> Any:
            v = row.get(col)
            return kind(v) if present(v) else None

        return cls(
            status=status,
            device=str(row.get("device") or ""),
            size=size,
            dataset=groups["data_"],
            flops_per_epoch=number("flops_per_epoch", float),
            epochs_run=number("epochs_run", int),
            best_epoch=number("best_epoch", int),
            final=groups["final_"],
            best_test=groups["best_"],
            best_valid=groups["valid_best_"],
        )

    def tracking_metrics(self) -> dict[str, float]:
        """One value per name for MLflow: every test metric at the selected epoch under its plain
        name (hr@10, ...), sizes, numeric dataset statistics (data_*), FLOPs per epoch, epochs."""
        metrics: dict[str, float] = dict(self.selected_test)
        metrics.update({k: v for k, v in self.size.items() if isinstance(v, (int, float))})
        metrics.update({f"data_{k}": v for k, v in self.dataset.items() if isinstance(v, (int, float))})
        if self.flops_per_epoch is not None:
            metrics["flops_per_epoch"] = self.flops_per_epoch
        if self.epochs_run is not None:
            metrics["epochs_run"] = self.epochs_run
        if self.best_epoch is not None:
            metrics["best_epoch"] = self.best_epoch
        return metrics


def flat(prefix: str, d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(f"{prefix}{k}.", v))
        elif isinstance(v, list):
            out[f"{prefix}{k}"] = json.dumps(v)
        else:
            out[f"{prefix}{k}"] = v
    return out
