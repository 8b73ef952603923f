"""Next-item retrieval: the autoregressive loss at every position, full-ranking evaluation."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import torch

from scalelab.config import RunConfig
from scalelab.data.sequences import SequenceData
from scalelab.data.split import Split
from scalelab.models import build_from_spec
from scalelab.models.accounting import run_size
from scalelab.models.base import RetrievalModel
from scalelab.models.spec import ModelSpec
from scalelab.training.batches import eval_set, train_set
from scalelab.training.device import autocast
from scalelab.training.evaluate import evaluate
from scalelab.training.losses import bce_one_negative, full_softmax, sampled_softmax
from scalelab.training.tasks import side_inputs


class RetrievalTask:
    def __init__(self, cfg: RunConfig, data: SequenceData, split: Split) -> None:
        self.cfg, self.data = cfg, data
        self.tset = train_set(split)
        self.sets = {
            "valid": eval_set(split, "valid") if split.valid_pos is not None else None,
            "test": eval_set(split, "test"),
        }
        self.lengths = self.tset.lengths  # (rows,) window lengths, for length bucketing
        self.num_rows = len(self.tset.lengths)
        self.num_targets = self.tset.num_targets
        self.has_valid = self.sets["valid"] is not None
        self.info: dict[str, Any] = {}

    def build_model(self, spec: ModelSpec) -> torch.nn.Module:
        model = build_from_spec(spec, self.data.num_items)
        model.side, self.info = side_inputs(self.cfg, self.data, spec.width)
        return model

    def size(self, model: torch.nn.Module, spec: ModelSpec) -> tuple[dict[str, float], float]:
        size = run_size(self.cfg, spec, self.data.num_items)
        side = cast(RetrievalModel, model).side
        if side is not None:
            size = replace(
                size, embedding_params=size.embedding_params + sum(p.numel() for p in side.parameters())
            )
        return size.as_dict(), size.flops_per_epoch(self.num_targets)

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tset.batch(rows)

    def loss(
        self, net: torch.nn.Module, model: torch.nn.Module, batch: tuple[torch.Tensor, ...],
        gen: torch.Generator, device: torch.device, precision: str,
    ) -> tuple[torch.Tensor, int]:  # fmt: skip
        t = self.cfg.train
        items, ts = (x.to(device, non_blocking=True) for x in batch)
        with autocast(device, precision):
            h = net(items, ts)  # (B, n, D)
        targets = items[:, 1:]
        mask = targets != 0
        users = h[:, :-1][mask].float()
        tgt = targets[mask]
        table = cast(RetrievalModel, model).item_table()
        if t.loss == "sampled_softmax":
            groups = None
            if t.negatives_per == "sequence":  # the row (sequence) of every supervised position
                groups = torch.arange(mask.shape[0], device=device)[:, None].expand_as(mask)[mask]
            loss = sampled_softmax(users, tgt, table, t.num_negatives, t.temperature, gen, groups=groups)
        elif t.loss == "full_softmax":
            loss = full_softmax(users, tgt, table, t.temperature)
        else:
            loss = bce_one_negative(users, tgt, table, gen)
        return loss, int(mask.sum())

    def evaluate(
        self, model: torch.nn.Module, which: str, device: torch.device, precision: str, seed: int,
        shard: tuple[int, int] | None,
    ) -> dict[str, float]:  # fmt: skip
        data = self.sets[which]
        assert data is not None, f"the split has no {which} events"
        return evaluate(
            cast(RetrievalModel, model), data, self.cfg.eval, device, precision, seed=seed, shard=shard
        )
