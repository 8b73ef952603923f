"""Full-ranking evaluation against a per-user brute-force loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scalelab.config import DataConfig, EvalConfig, ModelConfig, SyntheticConfig
from scalelab.data.loader import load_dataset
from scalelab.data.split import make_split
from scalelab.models import build_model
from scalelab.training.batches import eval_set, train_set
from scalelab.training.evaluate import evaluate


@pytest.fixture(scope="module")
def setup():
    data = load_dataset(
        DataConfig(synthetic=SyntheticConfig(num_users=60, num_items=40, mean_seq_len=12), max_seq_len=12)
    )
    split = make_split(data, "leave_two_out", 12)
    return data, split


def brute_force(model, data, split, which: str, ks: list[int], filter_history: bool) -> dict[str, float]:
    pos = split.test_pos if which == "test" else split.valid_pos
    table = model.item_embeddings().detach().numpy()
    ranks = []
    for u in range(data.num_users):
        start = max(data.ptr[u], pos[u] - split.max_seq_len)
        hist = data.items[start : pos[u]]
        items = torch.tensor(hist, dtype=torch.long)[None]
        ts = torch.tensor(data.timestamps[start : pos[u]])[None]
        qt = torch.tensor([data.timestamps[pos[u]]])
        with torch.no_grad():
            user = model.normalize(model(items, ts, qt)[0, -1]).numpy()
        scores = table @ user
        target = int(data.items[pos[u]])
        if filter_history and target in set(hist.tolist()):
            ranks.append(math.inf)
            continue
        allowed = np.ones(len(scores), dtype=bool)
        if filter_history:
            allowed[hist - 1] = False
        others = [s for i, s in enumerate(scores) if allowed[i] and i != target - 1]
        ranks.append(1 + sum(s >= scores[target - 1] for s in others))
    r = np.array(ranks, dtype=float)
    out = {}
    for k in ks:
        out[f"hr@{k}"] = float(np.mean(r <= k))
        out[f"ndcg@{k}"] = float(np.mean(np.where(r <= k, 1 / np.log2(r + 1), 0)))
    out["mrr"] = float(np.mean(1 / r))
    return out


@pytest.mark.parametrize("family", ["hstu", "sasrec", "llama"])
@pytest.mark.parametrize("filter_history", [True, False])
@pytest.mark.parametrize("item_chunk", [262_144, 7])  # one score matrix; the catalogue in chunks of 7
def test_full_ranking_matches_brute_force(setup, family: str, filter_history: bool, item_chunk: int) -> None:
    data, split = setup
    torch.manual_seed(0)
    model = build_model(ModelConfig(family=family, width=16, depth=2, heads=2), data.num_items, 13).eval()
    cfg = EvalConfig(ks=[1, 5, 10, 100], filter_history=filter_history, batch_size=7, item_chunk=item_chunk)
    for which in ("valid", "test"):
        got = evaluate(model, eval_set(split, which), cfg, torch.device("cpu"))
        expect = brute_force(model, data, split, which, cfg.ks, filter_history)
        assert got == pytest.approx(expect, abs=1e-9)


def test_sampled_mode_is_labelled_and_higher(setup) -> None:
    data, split = setup
    torch.manual_seed(0)
    model = build_model(ModelConfig(family="hstu", width=16), data.num_items, 13).eval()
    es = eval_set(split, "test")
    full = evaluate(model, es, EvalConfig(ks=[10]), torch.device("cpu"))
    sampled = evaluate(model, es, EvalConfig(ks=[10], mode="sampled", num_candidates=20), torch.device("cpu"))
    assert set(sampled) == {"sampled_hr@10", "sampled_ndcg@10", "sampled_mrr"}
    assert sampled["sampled_hr@10"] >= full["hr@10"]


def test_train_set_targets_and_truncation(setup) -> None:
    data, split = setup
    ts = train_set(split)
    n = np.minimum(split.train_lengths(), split.max_seq_len + 1)
    assert ts.num_targets == int(np.maximum(n - 1, 0).sum()) == split.train_targets()
    u = int(np.argmax(split.train_lengths()))
    row = ts.items[u, : ts.lengths[u]].numpy()
    assert (row == data.items[split.train_end[u] - len(row) : split.train_end[u]]).all()  # most recent part
