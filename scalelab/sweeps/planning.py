"""Planning a sweep before anything runs: sizes, compute, memory and disk of every cell, and the
preflight that refuses a cell the cluster or the disk cannot hold."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.config import DataConfig
from scalelab.data.loader import load_dataset, resolve_source
from scalelab.data.split import make_split
from scalelab.errors import UserError
from scalelab.models.accounting import run_size, scored_negatives
from scalelab.models.registry import resolve
from scalelab.sweeps.spec import Cell, SweepSpec

TRIAL_FIXED_BYTES = 48 << 10  # zip records of three checkpoints, summary, attempts, Tune's trial state


EPOCH_BYTES = 3 << 10  # one epoch's history, in the checkpoint, its copy and the summary


@dataclass
class PlannedCell:
    cell: Cell
    resources: dict[str, float]
    embedding_params: int
    non_embedding_params: int
    flops_per_epoch: float
    memory_mb: float  # rough: parameters, Adam state, activations of one batch
    total_params: int = 0
    targets_per_epoch: int = 0  # supervised positions of one epoch

    @property
    def disk_bytes(self) -> int:
        """What the trial writes (measured within 2x, tests/test_security.py): the checkpoint (fp32
        weights and two Adam moments), Tune's copy of it, the best weights; plus per-file records,
        the summary and Tune's state (a fixed part and a part per epoch)."""
        epochs = self.cell.config.train.epochs
        return self.total_params * 4 * (3 + 3 + 1) + TRIAL_FIXED_BYTES + epochs * EPOCH_BYTES

    def row(self) -> dict[str, Any]:
        c = self.cell.config
        return {
            "cell": self.cell.cell_id,
            "name": c.name,
            "family": c.model.family,
            "depth": c.model.depth,
            "width": c.model.width,
            "fraction": c.data.fraction,
            "emb_params": self.embedding_params,
            "non_emb_params": self.non_embedding_params,
            "flops_per_epoch": self.flops_per_epoch,
            "mem_mb": self.memory_mb,
            **{f"res_{k}": v for k, v in self.resources.items() if v},
        }


def absolute_data_paths(cells: list[Cell]) -> list[Cell]:
    """Trials run in their own working directory: resolve every data path in the driver."""
    out = []
    for c in cells:
        data = c.config.data
        update: dict[str, Any] = {}
        if data.path is not None:
            update["path"] = str(resolve_source(data.path))
        for name in ("catalogue", "item_features"):
            value = getattr(data, name)
            if value is not None:
                update[name] = str(Path(value).expanduser().resolve())
        if data.domains is not None:
            update["domains"] = {
                n: d.model_copy(
                    update={
                        "path": str(resolve_source(d.path)),
                        "item_features": d.item_features
                        and str(Path(d.item_features).expanduser().resolve()),
                    }
                )
                for n, d in data.domains.items()
            }
        cfg = c.config.model_copy(update={"data": data.model_copy(update=update)})
        out.append(Cell(c.cell_id, c.axes, cfg))
    return out


def plan(spec: SweepSpec, cells: list[Cell]) -> list[PlannedCell]:
    """Sizes, compute and resources of every cell (loads each distinct dataset once, from the cache)."""
    datasets: dict[str, tuple[int, int]] = {}
    planned = []
    for c in cells:
        cfg = c.config
        key = cfg.data.model_dump_json()
        if key not in datasets:
            data = load_dataset(DataConfig.model_validate(cfg.data.model_dump()))
            sp = make_split(data, cfg.data.split, cfg.data.max_seq_len)
            datasets[key] = (data.num_items, sp.train_targets())
        num_items, targets = datasets[key]
        mspec = resolve(cfg.model, cfg.padded_len())
        negs = scored_negatives(cfg, num_items)
        size = run_size(cfg, mspec, num_items)
        n, d, b = cfg.padded_len(), cfg.model.width, cfg.train.batch_size
        params = size.total_params
        act = (
            b * n * d * 4 * (8 * cfg.model.depth + 4) + b * n * n * 4 * 4 * cfg.model.depth * cfg.model.heads
        )
        neg = b * n * (negs if negs < 4096 else 0) * d * 4 * 2
        memory = (params * 4 * 4 + act + neg) / 2**20
        planned.append(
            PlannedCell(
                c,
                spec.resources.for_params(size.non_embedding_params),
                size.embedding_params,
                size.non_embedding_params,
                size.flops_per_epoch(targets),
                memory,
                size.total_params,
                targets,
            )
        )
    return planned


def local_resources() -> dict[str, float]:
    import torch

    from scalelab.training.device import npu_available

    npus = 0
    if npu_available():
        npus = torch.npu.device_count()  # type: ignore[attr-defined]
    return {"cpu": float(os.cpu_count() or 1), "gpu": float(torch.cuda.device_count()), "npu": float(npus)}


def totals(nodes: list[dict[str, float]]) -> dict[str, float]:
    """The cluster's total cpu, gpu and npu."""
    return {k: sum(n[k] for n in nodes) for k in ("cpu", "gpu", "npu")}


def trials_that_fit(resources: dict[str, float], nodes: list[dict[str, float]]) -> int:
    """How many copies of a trial the nodes hold at once: its `workers` bundles (cpu/gpu/npu each)
    placed first-fit, a bundle never split across nodes (as Ray's placement groups do)."""
    free = [dict(n) for n in nodes]
    bundle = {k: v for k, v in resources.items() if k != "workers" and v}
    workers = int(resources.get("workers", 1))
    count = 0
    while count < 10_000:
        for _ in range(workers):
            node = next((n for n in free if all(n.get(k, 0) + 1e-9 >= v for k, v in bundle.items())), None)
            if node is None:
                return count
            for k, v in bundle.items():
                node[k] -= v
        count += 1
    return count


Shape = tuple[tuple[str, float], ...]  # a trial's resources, hashable


def preflight(planned: list[PlannedCell], nodes: list[dict[str, float]], source: str) -> dict[Shape, int]:
    """Refuse a cell the cluster cannot run: more than its totals, or workers no set of nodes can
    hold. Returns, per resource shape, how many trials of it fit at once."""
    available = totals(nodes)
    fits: dict[Shape, int] = {}
    for p in planned:
        workers = int(p.resources.get("workers", 1))
        for k, per in p.resources.items():
            if k == "workers":
                continue
            need = per * workers
            if need > available.get(k, 0.0):
                raise UserError(
                    f"{source}: cell {p.cell.cell_id} ({p.cell.config.name}) asks for {k}={need:g} per trial"
                    f"{f' ({workers} workers x {per:g})' if workers > 1 else ''} but the cluster has "
                    f"{available.get(k, 0.0):g} {k.upper()}"
                )
        shape = tuple(sorted(p.resources.items()))
        if shape not in fits:
            fits[shape] = trials_that_fit(p.resources, nodes)
        if fits[shape] == 0:
            largest = max(nodes, key=lambda n: n["cpu"])
            raise UserError(
                f"{source}: cell {p.cell.cell_id} ({p.cell.config.name}) cannot be placed: {describe_shape(shape)} "
                f"do not fit on the {len(nodes)} node(s) (largest: {', '.join(f'{v:g} {k}' for k, v in largest.items())})"
            )
    return fits


def describe_shape(shape: Shape) -> str:
    r = dict(shape)
    return f"{int(r.get('workers', 1))} worker(s) x " + ", ".join(
        f"{v:g} {k}" for k, v in r.items() if k != "workers" and v
    )


def check_writable(root: Path) -> None:
    """Refuse a results directory that cannot be created or written (a probe file, not os.access,
    which says yes to root on a read-only file system)."""
    import tempfile

    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe"):
            pass
    except OSError as e:
        raise UserError(f"{root}: results directory is not writable ({e.strerror or e})") from None


MIN_FREE_BYTES = 64 << 20  # kept free beyond the trials' own files: tables, MLflow, other writers


def check_free_space(root: Path, need: int) -> None:
    import shutil

    free = shutil.disk_usage(root).free
    if free < need + MIN_FREE_BYTES:
        raise UserError(
            f"{root}: {free / 2**20:,.0f} MiB free, the pending trials need about {need / 2**20:,.1f} MiB "
            f"(checkpoints, summaries) plus {MIN_FREE_BYTES >> 20} MiB kept free; free space or set output_dir"
        )


def written_bytes(root: Path) -> int:
    """What the trials of a results directory wrote: their run directories and Tune's copies."""
    return sum(f.stat().st_size for d in ("trials", "ray") for f in (root / d).rglob("*") if f.is_file())
