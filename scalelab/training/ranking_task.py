"""The ranking task: score (history, candidate) pairs with BCE, evaluate AUC / GAUC / LogLoss.

Training rows are the retrieval windows (each user's last max_seq_len + 1 training items). Every
event after a window's first is a positive example whose history is the window before it (label 1,
or the label rule's verdict on its rating); each positive gets `negative_rate` sampled negatives
(the integer part always, the fraction with that probability) drawn afresh every step, uniformly
from the positive's domain, redrawn once when the item is in the example's history or is the
positive (a second hit is dropped). A causal encoder scores all of a window's examples from one
forward pass. With `target_behaviours`, only events of those behaviours are examples; the others
stay in the histories. Evaluation: the held-out event of every user (of a target behaviour) with
`eval_negative_rate` negatives of its domain that the user had not interacted with before it,
fixed by the seed; metrics overall and per domain (`auc_<domain>`, ...) when there are several.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from scalelab.config import RunConfig
from scalelab.data.sequences import SequenceData
from scalelab.data.split import Split
from scalelab.errors import DataError
from scalelab.models import build_from_spec
from scalelab.models.accounting import run_size
from scalelab.models.ranking import EncoderRanker
from scalelab.models.registry import family
from scalelab.models.spec import ModelSpec
from scalelab.training.batches import pad_windows
from scalelab.training.device import autocast
from scalelab.training.ranking_data import DomainPools, build_examples
from scalelab.training.ranking_metrics import ranking_metrics
from scalelab.training.tasks import HasSide, item_domains, side_inputs


class RankingTask:
    def __init__(self, cfg: RunConfig, data: SequenceData, split: Split) -> None:
        self.cfg, self.data, t = cfg, data, cfg.task
        self.rate = t.negative_rate
        self.targets = self._target_codes()
        n = split.max_seq_len + 1
        starts = np.maximum(data.ptr[:-1], split.train_end - n)
        label = self._labels(np.arange(data.num_interactions))
        beh = data.behaviours if data.behaviours is not None else np.zeros(data.num_interactions, np.int32)
        (items, ts, b, y), lengths = pad_windows(
            [data.items, data.timestamps, beh, label], starts, split.train_end, n
        )
        keep = lengths >= 2
        col = np.arange(n)[None, :]
        example = (col >= 1) & (col < lengths[:, None])
        if self.targets is not None:
            example &= np.isin(b, self.targets)
        keep &= example.any(1)
        self.items, self.ts = torch.from_numpy(items[keep]), torch.from_numpy(ts[keep])
        self.behaviours = torch.from_numpy(b[keep]) if data.behaviours is not None else None
        self.example, self.label = (
            torch.from_numpy(example[keep]),
            torch.from_numpy(y[keep].astype(np.float32)),
        )
        self.lengths = torch.from_numpy(lengths[keep])
        self.num_rows = int(keep.sum())
        self.num_targets = int(self.example.sum())  # positives per epoch
        if self.num_rows == 0:
            raise DataError("the ranking task has no training examples (check task.target_behaviours)")
        self.mean_history = float((np.nonzero(example[keep])[1]).mean())  # items before an example
        domain = item_domains(data)
        self.item_domain = np.zeros(data.num_items + 1, np.int64) if domain is None else domain
        pools = DomainPools(self.item_domain)
        self._pools_np = (pools.order, pools.start, pools.count)
        self._pools: tuple[torch.Tensor, ...] | None = None
        self.names = data.meta.get("domain_names") or []
        rate = t.eval_negative_rate or t.negative_rate
        self.sets = {
            which: self._eval_set(split, which, rate)
            for which in ("valid", "test")
            if (split.valid_pos if which == "valid" else split.test_pos) is not None
        }
        self.has_valid = "valid" in self.sets
        self.info: dict[str, Any] = {}

    # ------------------------------------------------------------------------------ data

    def _target_codes(self) -> np.ndarray | None:
        wanted = self.cfg.task.target_behaviours
        if wanted is None:
            return None
        names = self.data.meta.get("behaviour_names")
        if self.data.behaviours is None or not names:
            raise DataError("task.target_behaviours is set but the data has no behaviour types")
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise DataError(f"task.target_behaviours: unknown behaviour(s) {unknown}; the data has {names}")
        return np.array([names.index(w) + 1 for w in wanted])

    def _labels(self, pos: np.ndarray) -> np.ndarray:
        thr = self.cfg.task.label_threshold
        if thr is None:
            return np.ones(len(pos), np.float32)
        if self.data.ratings is None:
            raise DataError("task.label_threshold is set but the data has no ratings")
        return (self.data.ratings[pos] >= thr).astype(np.float32)

    def _eval_set(self, split: Split, which: str, rate: float) -> dict[str, Any]:
        d = self.data
        ex = build_examples(
            split, which, rate, seed=self.cfg.train.seed, label_threshold=self.cfg.task.label_threshold,
            item_domain=self.item_domain if d.domains is not None else None,
        )  # fmt: skip
        if self.targets is not None:
            assert d.behaviours is not None  # target behaviours need behaviour data (checked on load)
            ok = np.isin(d.behaviours[ex.pos], self.targets)
            ex.user, ex.pos, ex.candidate, ex.label = ex.user[ok], ex.pos[ok], ex.candidate[ok], ex.label[ok]
        pos = split.test_pos if which == "test" else split.valid_pos
        assert pos is not None, f"the split has no {which} events"
        starts = np.maximum(d.ptr[:-1], pos - split.max_seq_len)
        beh = d.behaviours if d.behaviours is not None else np.zeros(d.num_interactions, np.int32)
        (items, ts, b), lengths = pad_windows([d.items, d.timestamps, beh], starts, pos, split.max_seq_len)
        order = np.argsort(ex.user, kind="stable")
        users = ex.user[order]
        return {
            "items": torch.from_numpy(items), "ts": torch.from_numpy(ts), "beh": torch.from_numpy(b),
            "lengths": torch.from_numpy(lengths), "qt": torch.from_numpy(d.timestamps[pos].astype(np.int64)),
            "ex_user": users, "ex_ptr": np.searchsorted(users, np.arange(d.num_users + 1)),
            "cand": ex.candidate[order], "label": ex.label[order],
            "domain": (d.domains[ex.pos[order]] if d.domains is not None else np.zeros(len(order), np.int64)),
        }  # fmt: skip

    # ------------------------------------------------------------------------------ model

    def build_model(self, spec: ModelSpec) -> torch.nn.Module:
        built = build_from_spec(spec, self.data.num_items)
        # a sequence encoder gets a scoring head; a ranking-only family (DIN) is a ranker already
        model = EncoderRanker(built, self.cfg.task.scorer) if family(spec.family).is_encoder else built
        self._side_holder(model, spec).side, self.info = side_inputs(self.cfg, self.data, spec.width)
        return model

    @staticmethod
    def _side_holder(model: torch.nn.Module, spec: ModelSpec) -> HasSide:
        """Where the side inputs live: the wrapped encoder, or the ranking model itself."""
        return cast(EncoderRanker, model).encoder if family(spec.family).is_encoder else cast(HasSide, model)

    def size(self, model: torch.nn.Module, spec: ModelSpec) -> tuple[dict[str, float], float]:
        size = run_size(self.cfg, spec, self.data.num_items, self.mean_history)
        side = self._side_holder(model, spec).side
        if side is not None:
            size = replace(
                size, embedding_params=size.embedding_params + sum(p.numel() for p in side.parameters())
            )
        return size.as_dict(), size.flops_per_epoch(self.num_targets)

    # ------------------------------------------------------------------------------ training

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        n = int(self.lengths[rows].max())
        beh = None if self.behaviours is None else self.behaviours[rows, :n]
        return self.items[rows, :n], self.ts[rows, :n], beh, self.example[rows, :n], self.label[rows, :n]

    def _draw(self, domain: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        order, start, count = self._pools  # type: ignore[misc]
        u = torch.rand(len(domain), generator=gen, device=domain.device)
        return order[start[domain] + (u * count[domain]).long().clamp(max=count[domain] - 1)]

    def loss(
        self, net: torch.nn.Module, model: torch.nn.Module, batch: tuple[torch.Tensor | None, ...],
        gen: torch.Generator, device: torch.device, precision: str,
    ) -> tuple[torch.Tensor, int]:  # fmt: skip
        items, ts, beh, example, label = (None if x is None else x.to(device) for x in batch)
        assert items is not None and example is not None and label is not None
        if self._pools is None or self._pools[0].device != device:
            self._pools = tuple(torch.from_numpy(a).to(device) for a in self._pools_np)
            self._item_domain = torch.from_numpy(self.item_domain).to(device)
        b, j = example.nonzero(as_tuple=True)  # positives: row b, column j (history = columns < j)
        pos = items[b, j]
        whole, frac = math.floor(self.rate), self.rate - math.floor(self.rate)
        k = whole + (torch.rand(len(b), generator=gen, device=device) < frac).long()
        src = torch.repeat_interleave(torch.arange(len(b), device=device), k)
        neg = self._draw(self._item_domain[pos[src]], gen)
        upto = torch.arange(items.shape[1], device=device)[None] <= j[src][:, None]  # history + the positive
        hist = items[b[src]]
        hit = ((hist == neg[:, None]) & upto).any(1)
        neg = torch.where(hit, self._draw(self._item_domain[pos[src]], gen), neg)
        ok = ~((hist == neg[:, None]) & upto).any(1)
        src, neg = src[ok], neg[ok]
        row, col = torch.cat([b, b[src]]), torch.cat([j, j[src]]) - 1
        cand = torch.cat([pos, neg])
        y = torch.cat([label[b, j], torch.zeros(len(neg), device=device)])
        with autocast(device, precision):
            logits = net(items, ts, beh, None, row, col, cand)
        return F.binary_cross_entropy_with_logits(logits.float(), y), len(y)

    # ------------------------------------------------------------------------------ evaluation

    @torch.inference_mode()
    def evaluate(
        self, model: torch.nn.Module, which: str, device: torch.device, precision: str, seed: int,
        shard: tuple[int, int] | None,
    ) -> dict[str, float]:  # fmt: skip
        s = self.sets[which]
        was = model.training
        model.eval()
        users = np.flatnonzero(np.diff(s["ex_ptr"]) > 0)
        users = users[np.argsort(s["lengths"].numpy()[users], kind="stable")]  # similar lengths together
        batches = np.array_split(users, max(1, math.ceil(len(users) / self.cfg.eval.batch_size)))
        if shard is not None:
            batches = batches[shard[0] :: shard[1]]
        parts = []
        for rows in batches:
            if not len(rows):
                continue
            ex = np.concatenate([np.arange(s["ex_ptr"][u], s["ex_ptr"][u + 1]) for u in rows])
            sorter = np.argsort(rows)
            local = sorter[np.searchsorted(rows, s["ex_user"][ex], sorter=sorter)]  # row of each example
            n = max(1, int(s["lengths"][rows].max()))
            r = torch.from_numpy(rows)
            beh = s["beh"][r, :n].to(device) if self.data.behaviours is not None else None
            row_t = torch.from_numpy(local).to(device)
            with autocast(device, precision):
                logits = model(
                    s["items"][r, :n].to(device), s["ts"][r, :n].to(device), beh, s["qt"][r].to(device),
                    row_t, (s["lengths"][r].to(device) - 1)[row_t], torch.from_numpy(s["cand"][ex]).to(device),
                )  # fmt: skip
            parts.append(
                np.stack([s["ex_user"][ex], s["label"][ex], logits.float().cpu().numpy(), s["domain"][ex]], 1)
            )
        model.train(was)
        out = np.concatenate(parts) if parts else np.zeros((0, 4))
        if shard is not None:
            import torch.distributed as dist

            gathered: list[Any] = [None] * shard[1]
            dist.all_gather_object(gathered, out)
            out = np.concatenate(gathered)
        metrics = ranking_metrics(out[:, 0], out[:, 1], out[:, 2])
        if len(self.names) > 1:
            for code, name in enumerate(self.names, start=1):
                sel = out[:, 3] == code
                if sel.any():
                    metrics.update({f"{k}_{name}": v for k, v in ranking_metrics(*out[sel, :3].T).items()})
        return metrics
