"""Sweep specs: a base run config and axes, expanded into cells (one resolved config each).

    name: hstu_depth
    base: {data: ..., model: ..., train: ..., eval: ...}
    grid: {model.depth: [1, 2, 4], model.width: [32, 64]}     # cartesian product
    zip:  {model.depth: [2, 8], model.width: [128, 64]}       # paired axes (equal lengths)
    configs: [{model.family: gpt}, {model.family: llama}]     # explicit variants
Cells = product(grid) x rows(zip) x configs, each applied on top of `base`. Every cell is validated
as a full RunConfig before anything runs, and gets a deterministic id (hash of its resolved config).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from scalelab.config import (
    RunConfig,
    StrictModel,
    TrackingConfig,
    apply_overrides,
    drop_old_defaults,
    format_validation_error,
    read_yaml,
    validate,
)
from scalelab.errors import ConfigError

MAX_CELLS = 10_000


class SizeRule(StrictModel):
    """Resources for cells whose non-embedding parameters reach `min_params`."""

    min_params: int = Field(
        ge=0, description="Applies to cells with at least this many non-embedding params."
    )
    cpu: float | None = Field(None, gt=0, description="CPUs per trial.")
    gpu: float | None = Field(None, ge=0, description="GPUs per trial (fractions pack trials on one GPU).")
    npu: float | None = Field(None, ge=0, description="Ascend NPUs per trial.")
    workers: int | None = Field(None, ge=1, description="Data-parallel workers per trial.")


class Resources(StrictModel):
    """What each trial asks Ray for; the device inside a trial follows it."""

    cpu: float = Field(1.0, gt=0, le=1024, description="CPUs per trial (also the trial's torch threads).")
    gpu: float = Field(
        0.0, ge=0, le=64, description="GPUs per trial; fractions pack several trials on one GPU."
    )
    npu: float = Field(0.0, ge=0, le=64, description="Ascend NPUs per trial (Ray resource 'NPU').")
    workers: int = Field(
        1,
        ge=1,
        le=4096,
        description="Data-parallel workers per trial (Ray Train TorchTrainer, DDP); cpu/gpu/npu are then per worker.",
    )
    by_size: list[SizeRule] = Field(default_factory=list, description="Bigger resources for bigger models.")

    @model_validator(mode="after")
    def _one_accelerator(self) -> Resources:
        if self.gpu > 0 and self.npu > 0:
            raise ValueError("a trial asks for either gpu or npu, not both")
        if self.workers > 1 and 0 < self.gpu < 1:
            raise ValueError("data-parallel workers take whole GPUs (gpu >= 1 when workers > 1)")
        return self

    def for_params(self, non_embedding_params: int) -> dict[str, float]:
        res = {"cpu": self.cpu, "gpu": self.gpu, "npu": self.npu, "workers": float(self.workers)}
        for rule in sorted(self.by_size, key=lambda r: r.min_params):
            if non_embedding_params >= rule.min_params:
                res.update(
                    {
                        k: v
                        for k, v in (
                            ("cpu", rule.cpu),
                            ("gpu", rule.gpu),
                            ("npu", rule.npu),
                            ("workers", None if rule.workers is None else float(rule.workers)),
                        )
                        if v is not None
                    }
                )
        return res


class AdaptiveSpec(StrictModel):
    """Run the grid adaptively (fitters/adaptive.py): a cheap start, then waves of the cells most likely
    to be the best configuration under the fitted law, until that decision is settled or the budget
    is spent. The grid must be model.depth x model.width (the Performance Law's variables)."""

    law: Literal["performance"] = Field("performance", description="The law whose decision is settled.")
    metric: str | None = Field(
        None, description="Metric the law is fitted to; null = the cells' eval.monitor."
    )
    which: Literal["best", "final"] = Field(
        "best", description="best = test metric at the best validation epoch; final = at the last epoch."
    )
    budget_fraction: float | None = Field(
        None, gt=0, le=1, description="Compute budget as a share of the full grid's training FLOPs."
    )
    budget_flops: float | None = Field(None, gt=0, description="Compute budget in training FLOPs.")
    budget_hours: float | None = Field(
        None,
        gt=0,
        description="Compute budget in hours of training (summed over cells), converted to FLOPs at the "
        "throughput the measured cells showed (the first wave always runs).",
    )
    curves: bool = Field(
        False,
        description="Stop a running cell once its learning curve (fitters/curves.py) predicts a final metric "
        "whose 95% interval stays below the current decision's predicted value; the law fit then uses "
        "that prediction with its uncertainty.",
    )
    initial: int = Field(
        7, ge=3, le=1000, description="Cells of the first wave (at least what determines the law)."
    )
    wave: int = Field(3, ge=1, le=1000, description="Cells per later wave.")
    stop: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Stop when P(best within one grid step of the modal decision) reaches this.",
    )
    bootstrap: int = Field(200, ge=20, le=10_000, description="Bootstrap resamples per wave's fit.")
    seed: int = Field(0, description="Seed of the bootstrap and the Thompson draws.")

    @model_validator(mode="after")
    def _one_budget(self) -> AdaptiveSpec:
        given = [
            k for k in ("budget_fraction", "budget_flops", "budget_hours") if getattr(self, k) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give one budget, not {' and '.join(given)}")
        return self


class SweepSpec(StrictModel):
    """A sweep: a base run config, axes over it, and how to run the cells."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Sweep name (results/<name>/).")
    description: str = Field("", description="What the sweep measures.")
    base: dict[str, Any] = Field(default_factory=dict, description="Run config every cell starts from.")
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="Axes by dotted path; cartesian product."
    )
    zip: dict[str, list[Any]] = Field(default_factory=dict, description="Paired axes of equal length.")
    configs: list[dict[str, Any]] = Field(
        default_factory=list, description="Explicit variants (dotted paths)."
    )
    resources: Resources = Field(default_factory=Resources, description="Per-trial resources.")
    max_concurrent: int | None = Field(None, ge=1, description="Trials at once; null = as many as fit.")
    retries: int = Field(1, ge=0, le=100, description="Retries of a crashed trial (resuming its checkpoint).")
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig, description="MLflow store and experiment."
    )
    address: str | None = Field(None, description="Ray cluster address; null = a local Ray.")
    storage_path: str | None = Field(None, description="Ray Tune storage; null = <output_dir>/ray.")
    output_dir: str | None = Field(None, description="Results directory; null = results/<name>.")
    expected_cost: dict[str, str] = Field(
        default_factory=dict, description="Documented cost, e.g. {cpu: '2 h'}."
    )
    adaptive: AdaptiveSpec | None = Field(
        None, description="Run the grid adaptively (also `scalelab sweep --adaptive`); null = every cell."
    )

    @field_validator("grid", "zip")
    @classmethod
    def _axes_not_empty(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for path, values in v.items():
            if not values:
                raise ValueError(f"axis {path!r} is empty")
        return v

    @model_validator(mode="after")
    def _zip_lengths(self) -> SweepSpec:
        lengths = {len(v) for v in self.zip.values()}
        if len(lengths) > 1:
            raise ValueError(f"zip axes must have equal lengths, got {sorted(lengths)}")
        overlap = set(self.grid) & set(self.zip)
        if overlap:
            raise ValueError(f"axis {sorted(overlap)[0]!r} is both in grid and zip")
        if self.adaptive is not None:
            check_adaptive_grid(self)
        return self

    def results_dir(self) -> Path:
        return Path(self.output_dir or Path("results") / self.name).resolve()


ADAPTIVE_AXES = {"model.depth": "depth", "model.width": "width"}


def check_adaptive_grid(spec: SweepSpec) -> None:
    """An adaptive sweep's cells must form the grid of the law's variables, nothing else varied."""
    if set(spec.grid) != set(ADAPTIVE_AXES) or spec.zip or spec.configs:
        raise ValueError(
            "an adaptive sweep varies exactly model.depth and model.width in `grid` (no zip, no configs); "
            f"this one varies {', '.join([*spec.grid, *spec.zip]) or 'nothing'}"
            + (" and lists configs" if spec.configs else "")
        )
    for path in ADAPTIVE_AXES:
        if len(set(spec.grid[path])) < 3:
            raise ValueError(
                f"an adaptive sweep needs at least 3 values of {path} (the law is not determined by fewer)"
            )


@dataclass(frozen=True)
class Cell:
    cell_id: str
    axes: dict[str, Any]  # the values this cell sets (for tables and names)
    config: RunConfig


# Settings that do not change what a cell computes (excluded from its id).
_NOT_IN_ID = {"name", "output_dir", "tracking"}


# Settings introduced after sweeps existed: left out of the cell id while they hold the value that
# reproduces the older behaviour, so the cells of an existing sweep keep their ids (and their results
# are found, not re-run). Register every new RunConfig field here with that value
# (tests/test_sweeps.py freezes the ids of shipped specs).
CELL_ID_INTRODUCED_LATER: dict[tuple[str, ...], Any] = {
    ("model", "time_buckets"): "exact",
    ("train", "length_groups"): 1,
    ("train", "target_weights"): "batch",
    ("train", "min_steps"): 0,
    ("train", "eval_every_steps"): None,
}


def cell_id(cfg: RunConfig) -> str:
    d = cfg.model_dump(mode="json", exclude=_NOT_IN_ID)
    d["train"].pop("device", None)
    d["eval"].pop("batch_size", None)
    d["data"].pop("cache", None)
    drop_old_defaults(d, CELL_ID_INTRODUCED_LATER)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def run_name(cfg: RunConfig) -> str:
    """A readable trial name from the config, e.g. hstu-L8-D64-f0.50-s0."""
    return (
        f"{cfg.model.family}-L{cfg.model.depth}-D{cfg.model.width}-f{cfg.data.fraction:.2f}-s{cfg.train.seed}"
    )


def expand(spec: SweepSpec, source: str) -> list[Cell]:
    """All cells of the spec, validated; one-line ConfigError naming the offending cell."""
    grid_keys = list(spec.grid)
    grid_rows = [dict(zip(grid_keys, vals, strict=True)) for vals in itertools.product(*spec.grid.values())]
    zip_keys = list(spec.zip)
    zip_rows = [dict(zip(zip_keys, vals, strict=True)) for vals in zip(*spec.zip.values(), strict=True)] or [
        {}
    ]
    variants = spec.configs or [{}]
    _check_base(spec.base, source)
    total = len(grid_rows) * len(zip_rows) * len(variants)
    if total > MAX_CELLS:
        raise ConfigError(
            f"{source}: the sweep expands to {total:,} cells (limit {MAX_CELLS:,}); shrink the axes"
        )
    cells: list[Cell] = []
    seen: dict[str, dict[str, Any]] = {}
    for g, z, v in itertools.product(grid_rows, zip_rows, variants):
        axes = {**g, **z, **v}
        overrides = [f"{k}={json.dumps(val)}" for k, val in axes.items()]
        try:
            raw = apply_overrides(spec.base, overrides)
        except ConfigError as e:
            raise ConfigError(f"{source}: cell {_describe(axes)}: {e}") from None
        raw.setdefault("tracking", spec.tracking.model_dump())
        try:
            cfg = RunConfig.model_validate(raw)
        except Exception as e:  # pydantic ValidationError -> one line naming the cell
            from pydantic import ValidationError

            if isinstance(e, ValidationError):
                raise ConfigError(
                    f"{source}: cell {_describe(axes)}: {format_validation_error(e, RunConfig, 'base')}"
                ) from None
            raise
        cfg = cfg.model_copy(update={"name": run_name(cfg)})
        cid = cell_id(cfg)
        if cid in seen:
            continue  # two axis combinations that resolve to the same config run once
        seen[cid] = axes
        cells.append(Cell(cid, axes, cfg))
    if not cells:
        raise ConfigError(f"{source}: the sweep has no cells")
    return cells


def _check_base(base: dict[str, Any], source: str) -> None:
    """The base must be a valid run config by itself: a bad value hidden under an axis that
    overrides it in every cell is still a mistake in the file."""
    from pydantic import ValidationError

    try:
        RunConfig.model_validate(base)
    except ValidationError as e:
        raise ConfigError(f"{source}: {format_validation_error(e, RunConfig, 'base')}") from None


def _describe(axes: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in axes.items()) + "}" if axes else "{base}"


def load_sweep(
    path: str | os.PathLike[str], overrides: list[str] | None = None, name: str | None = None
) -> tuple[SweepSpec, list[Cell]]:
    """Read, validate and expand a sweep file; `overrides` apply to every cell's base (data.path=...);
    `name` renames the sweep (its results directory and MLflow parent run)."""
    raw = read_yaml(path)
    for o in overrides or []:
        if o.split("=", 1)[0].strip() in ("name", "output_dir"):
            key = o.split("=", 1)[0].strip()
            raise ConfigError(
                f"--set {o!r}: {key} is a sweep setting, not a run setting; "
                + ("use --name" if key == "name" else "set output_dir in the spec")
            )
    if name is not None:
        raw["name"] = name
    spec = validate(SweepSpec, raw, str(path))
    if overrides:
        base = apply_overrides({"base": spec.base}, [f"base.{o}" for o in overrides])["base"]
        spec = spec.model_copy(update={"base": base})
    return spec, expand(spec, str(path))
