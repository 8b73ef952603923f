"""What a run trains for. A task owns the training rows, the loss and the evaluation; the loop in
`trainer.py` is shared. Adding a task is one new module with a class that satisfies `Task` and one
line in `TASKS`.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import numpy as np
import torch

from scalelab.config import RunConfig
from scalelab.data.features import item_token_matrix
from scalelab.data.sequences import SequenceData
from scalelab.data.split import Split
from scalelab.errors import DataError
from scalelab.models.side import SideInputs
from scalelab.models.spec import ModelSpec

TASKS = {
    "retrieval": "scalelab.training.retrieval_task:RetrievalTask",
    "ranking": "scalelab.training.ranking_task:RankingTask",
}


class HasSide(Protocol):
    """A model that takes side inputs (RetrievalModel, DIN)."""

    side: SideInputs | None


class Task(Protocol):
    """The interface the training loop uses."""

    num_rows: int  # training rows (user windows) per epoch
    num_targets: int  # supervised targets per epoch
    has_valid: bool  # whether the split holds validation events
    lengths: torch.Tensor  # (rows,) window lengths, for length bucketing
    info: dict[str, Any]  # facts about the side inputs, for the run summary

    def build_model(self, spec: ModelSpec) -> torch.nn.Module:
        """The model, with its side inputs attached."""
        ...

    def size(self, model: torch.nn.Module, spec: ModelSpec) -> tuple[dict[str, float], float]:
        """Parameter counts and training FLOPs per target (a dict), and FLOPs per epoch."""
        ...

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """The tensors of some training rows (CPU)."""
        ...

    def loss(
        self, net: torch.nn.Module, model: torch.nn.Module, batch: tuple[torch.Tensor | None, ...],
        gen: torch.Generator, device: torch.device, precision: str,
    ) -> tuple[torch.Tensor, int]:  # fmt: skip
        """Mean loss of a batch and its number of targets."""
        ...

    def evaluate(
        self, model: torch.nn.Module, which: str, device: torch.device, precision: str, seed: int,
        shard: tuple[int, int] | None,
    ) -> dict[str, float]:  # fmt: skip
        """Metrics on 'valid' or 'test'."""
        ...


def make_task(cfg: RunConfig, data: SequenceData, split: Split) -> Task:
    module, _, name = TASKS[cfg.task.kind].partition(":")
    task: Task = getattr(importlib.import_module(module), name)(cfg, data, split)
    return task


def item_domains(data: SequenceData) -> np.ndarray | None:
    """(num_items + 1,) domain code of every item (from its events; 0 = none), or None."""
    if data.domains is None:
        return None
    out = np.zeros(data.num_items + 1, dtype=np.int64)
    out[data.items] = data.domains
    return out


def side_inputs(cfg: RunConfig, data: SequenceData, width: int) -> tuple[SideInputs | None, dict[str, Any]]:
    """The side inputs `cfg.features` asks for, and facts about them for the run summary."""
    f = cfg.features
    info: dict[str, Any] = {}
    if not (f.domain or f.behaviour or f.item_features):
        return None, info
    domain = tokens = None
    vocab = behaviours = 0
    if f.domain:
        domain = item_domains(data)
        if domain is None:
            raise DataError(
                "features.domain is set but the data has no domains (data.domains or a domain column)"
            )
        info["domains"] = data.meta.get("domain_names")
    if f.behaviour:
        if data.behaviours is None:
            raise DataError(
                "features.behaviour is set but the data has no behaviour types (columns.behaviour or "
                "data.behaviour_from_rating)"
            )
        behaviours = int(data.behaviours.max())
        info["behaviours"] = data.meta.get("behaviour_names")
    if f.item_features:
        sources = [(cfg.data.item_features, "")] if cfg.data.item_features else []
        sources += [
            (d.item_features, f"{n}:") for n, d in (cfg.data.domains or {}).items() if d.item_features
        ]
        matrix, coverage = item_token_matrix(sources, data.item_ids, f.feature_buckets)
        tokens, vocab = torch.from_numpy(matrix), f.feature_buckets
        info.update(coverage)
    side = SideInputs(width, None if domain is None else torch.from_numpy(domain), tokens, vocab, behaviours)
    return side, info
