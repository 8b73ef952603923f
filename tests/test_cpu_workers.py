"""CPU worker threads (training/cpu_workers.py): a sharded step computes the full batch's gradient,
runs are reproducible for a given worker count, and dropout in a worker draws from its own
generator."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_training import SMALL as TRAINING_SMALL

from scalelab.config import load_config
from scalelab.models.blocks import Dropout, causal_mask, softmax_attention
from scalelab.models.rng import dropout_generator
from scalelab.training.cpu_workers import Workers, worker_count
from scalelab.training.trainer import _shard_rows, train_run

# test_training's small synthetic run, two blocks deep (each later setting overrides an earlier one)
SMALL = [*TRAINING_SMALL, "model.depth=2", "train.epochs=2", "tracking.mlflow_uri=null"]


def _params(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]


@pytest.mark.parametrize("family", ["hstu", "sasrec"])
def test_sharded_step_follows_the_whole_batch_gradient(tmp_path: Path, family: str) -> None:
    """Without randomness in the step (full softmax, no dropout) two worker threads, each on half of
    every batch, train the same weights as one thread on the whole batch, up to float round-off."""
    cfg = [*SMALL, f"model.family={family}", "train.loss=full_softmax", "model.dropout=0.0"]
    one = train_run(load_config(None, cfg), tmp_path / "one")
    two = train_run(load_config(None, [*cfg, "train.cpu_workers=2"]), tmp_path / "two")
    for a, b in zip(one["history"], two["history"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    pa, pb = _params(tmp_path / "one"), _params(tmp_path / "two")
    assert pa.keys() == pb.keys()
    for k in pa:
        if k.endswith("attn.k.bias"):  # softmax ignores a per-row shift of the logits: q.b_k is one, so
            continue  # this gradient is zero up to round-off, which AdamW scales up to steps of size lr
        torch.testing.assert_close(pb[k], pa[k], rtol=1e-4, atol=1e-6, msg=k)


@pytest.mark.parametrize(("family", "workers"), [("hstu", 1), ("hstu", 2), ("sasrec", 1)])
def test_length_groups_follow_the_whole_batch_gradient(tmp_path: Path, family: str, workers: int) -> None:
    """Each batch computed as three groups of similar length (each padded to its own longest row)
    trains the same weights as the whole batch padded to its longest row, up to float round-off, and
    computes fewer padding positions: the batches and their gradients are unchanged."""
    cfg = [*SMALL, f"model.family={family}", "train.loss=full_softmax", "model.dropout=0.0"]
    one = train_run(load_config(None, cfg), tmp_path / "one")
    grouped_cfg = [*cfg, "train.length_groups=3", f"train.cpu_workers={workers}"]
    grouped = train_run(load_config(None, grouped_cfg), tmp_path / "grouped")
    for a, b in zip(one["history"], grouped["history"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["padding"] < a["padding"] - 0.05  # synthetic lengths vary: groups cut the padding
    pa, pb = _params(tmp_path / "one"), _params(tmp_path / "grouped")
    for k in pa:
        if k.endswith("attn.k.bias"):  # see test_sharded_step_follows_the_whole_batch_gradient
            continue
        torch.testing.assert_close(pb[k], pa[k], rtol=1e-4, atol=1e-6, msg=k)


def test_length_groups_sort_and_cover_the_batch() -> None:
    """The groups hold every row of the batch once, in order of length, at least one per thread."""
    lengths = torch.tensor([5, 1, 9, 3, 7, 2, 8, 4, 6, 10])
    rows = torch.tensor([9, 0, 4, 2, 7, 1, 3])
    for threads, groups, want in [(1, 3, 3), (2, 3, 3), (4, 3, 4), (1, 20, 7)]:
        parts = _shard_rows(rows, lengths, threads, groups)
        assert len(parts) == want
        flat = torch.cat(parts)
        assert sorted(flat.tolist()) == sorted(rows.tolist())
        assert torch.equal(lengths[flat], lengths[rows].sort().values)
    # one group: the threads' interleaved shares, in batch order
    assert [p.tolist() for p in _shard_rows(rows, lengths, 2, 1)] == [[9, 4, 7, 3], [0, 2, 1]]


def test_worker_runs_are_reproducible(tmp_path: Path) -> None:
    """Sampled negatives and dropout in two threads: the same run twice gives the same losses and
    metrics (each shard draws from its own generators, whatever order the threads run in)."""
    cfg = load_config(None, [*SMALL, "model.dropout=0.3", "train.cpu_workers=2"])
    a = train_run(cfg, tmp_path / "a")
    b = train_run(cfg, tmp_path / "b")
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert a["final"] == b["final"]
    pa, pb = _params(tmp_path / "a"), _params(tmp_path / "b")
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_dropout_in_a_worker_draws_from_its_own_generator() -> None:
    x = torch.ones(4, 1000)
    drop = Dropout(0.25).train()
    state = torch.get_rng_state()
    with dropout_generator(torch.Generator().manual_seed(3)):
        y = drop(x)
    assert torch.equal(torch.get_rng_state(), state)  # the process-wide generator is untouched
    keep = torch.empty_like(x).bernoulli_(0.75, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(y, keep / 0.75)
    # other threads, and this one after the block, use the process-wide generator as nn.Dropout does
    seen: list[torch.Tensor] = []
    with dropout_generator(torch.Generator().manual_seed(3)):
        t = threading.Thread(target=lambda: (torch.manual_seed(5), seen.append(drop(x))))
        t.start()
        t.join()
    torch.manual_seed(5)
    torch.testing.assert_close(seen[0], F.dropout(x, 0.25, True))
    with dropout_generator(torch.Generator().manual_seed(3)):  # evaluation mode: no dropout
        assert torch.equal(drop.eval()(x), x)


def test_attention_dropout_in_a_worker_matches_the_written_out_math() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 7, 4, generator=g, dtype=torch.float64) for _ in range(3))
    bias = torch.randn(2, 7, 7, generator=g, dtype=torch.float64)
    with dropout_generator(torch.Generator().manual_seed(9)):
        out = softmax_attention(q, k, v, bias, dropout=0.4)
    s = (q @ k.transpose(-1, -2) + bias[:, None]) / 2.0  # sqrt(d) = 2
    a = torch.softmax(s.masked_fill(~causal_mask(7, q.device), float("-inf")), -1)
    keep = torch.empty_like(a).bernoulli_(0.6, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(out, (a * keep / 0.6) @ v)
    with dropout_generator(torch.Generator().manual_seed(9)):  # no dropout: SDPA, same values
        torch.testing.assert_close(softmax_attention(q, k, v, bias), a @ v)


def test_workers_keep_order_and_restore_the_thread_count() -> None:
    before = torch.get_num_threads()
    with Workers(3) as w:
        assert torch.get_num_threads() == 1
        assert w.map(lambda i: i * i, range(10)) == [i * i for i in range(10)]
    assert torch.get_num_threads() == before
    assert worker_count(torch.device("cpu"), 4) == 4
    assert worker_count(torch.device("meta"), 4) == 1


def test_workers_with_compile_are_refused() -> None:
    from scalelab.errors import ConfigError

    with pytest.raises(ConfigError, match="cpu_workers"):
        load_config(None, ["train.cpu_workers=2", "train.compile=true"])
