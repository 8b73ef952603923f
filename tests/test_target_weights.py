"""`train.target_weights`: `batch` steps on the mean over a batch's targets, `uniform` on their sum
divided by the epoch's mean targets per batch (every target weighs the same in every batch)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_cpu_workers import SMALL, _params

from scalelab.config import load_config
from scalelab.data.loader import load_dataset
from scalelab.data.split import make_split
from scalelab.models import resolve
from scalelab.training.cpu_workers import Workers
from scalelab.training.tasks import make_task
from scalelab.training.trainer import Parallel, _Loop, _shard_rows, _train_step, train_run

EXACT = ["train.loss=full_softmax", "model.dropout=0.0"]  # no randomness in a step


def _loop(over: list[str]) -> _Loop:
    cfg = load_config(None, [*SMALL, *EXACT, *over])
    data = load_dataset(cfg.data)
    task = make_task(cfg, data, make_split(data, cfg.data.split, cfg.data.max_seq_len))
    torch.manual_seed(0)
    model = task.build_model(resolve(cfg.model, cfg.padded_len()))
    opt = torch.optim.SGD(model.parameters(), lr=1.0)  # the update is minus the gradient
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return _Loop(cfg, task, model, model, Parallel(), opt, sched, torch.device("cpu"))


@pytest.mark.parametrize("groups", [1, 3])
def test_uniform_weights_scale_the_batch_gradient_by_its_targets(groups: int) -> None:
    """One SGD step on the same batch: with a divisor d the update is the batch-mean update times
    n / d (n the batch's targets), whether the batch is one shard or three length groups."""
    updates = []
    for per_batch in (None, 1000.0):
        loop = _loop([])
        before = [p.detach().clone() for p in loop.model.parameters()]
        rows = torch.arange(40)
        shards = [loop.task.batch(r) for r in _shard_rows(rows, loop.task.lengths, 1, groups)]
        with Workers(1) as w:
            _, n = _train_step(loop, shards, torch.Generator().manual_seed(0), w, per_batch=per_batch)
        updates.append([p.detach() - b for p, b in zip(loop.model.parameters(), before, strict=True)])
    assert n == int((loop.task.lengths[:40] - 1).sum()) and abs(n - 1000) > 100
    for mean, uniform in zip(*updates, strict=True):
        torch.testing.assert_close(uniform, mean * (n / 1000.0), rtol=1e-4, atol=1e-6)


def test_uniform_equals_batch_when_every_batch_has_the_same_targets(tmp_path: Path) -> None:
    """Every user truncated to the same window and 300 users in batches of 50: every batch has the
    epoch's mean targets, so the two weightings train the same weights; with length buckets on users
    of different lengths they do not."""
    same = [*EXACT, "data.synthetic.min_seq_len=12", "data.max_seq_len=8", "train.batch_size=50"]
    a = train_run(load_config(None, [*SMALL, *same]), tmp_path / "a")
    b = train_run(load_config(None, [*SMALL, *same, "train.target_weights=uniform"]), tmp_path / "b")
    task = _loop(same[len(EXACT) :]).task  # the premise: equal windows, whole batches
    assert task.lengths.unique().tolist() == [9] and task.num_rows % 50 == 0
    pa, pb = _params(tmp_path / "a"), _params(tmp_path / "b")
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    bucketed = [*EXACT, "train.bucket_pool=4", "train.batch_size=16"]
    c = train_run(load_config(None, [*SMALL, *bucketed]), tmp_path / "c")
    d = train_run(load_config(None, [*SMALL, *bucketed, "train.target_weights=uniform"]), tmp_path / "d")
    pc, pd = _params(tmp_path / "c"), _params(tmp_path / "d")
    assert not all(torch.allclose(pc[k], pd[k]) for k in pc)
    assert c["history"][0]["loss"] != d["history"][0]["loss"]
