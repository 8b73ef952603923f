"""Ranking examples: histories end before the event, negatives are unseen items, rates hold."""

from __future__ import annotations

import numpy as np
import pytest

from scalelab.config import load_config
from scalelab.data.loader import load_dataset
from scalelab.data.split import make_split
from scalelab.training.ranking_data import batch, build_examples


@pytest.fixture(scope="module")
def split():
    cfg = load_config(
        None, ["data.synthetic.num_users=300", "data.synthetic.num_items=80", "data.max_seq_len=20"]
    )
    data = load_dataset(cfg.data)
    return make_split(data, cfg.data.split, cfg.data.max_seq_len)


@pytest.mark.parametrize("rate", [0.2, 0.5, 1.0, 3.0])
def test_negative_rate_and_labels(split, rate: float) -> None:
    ex = build_examples(split, "train", rate, seed=1)
    pos = int(ex.label.sum())
    assert pos == int((split.train_end - split.data.ptr[:-1] - 1).clip(min=0).sum())  # one per training event
    assert (len(ex) - pos) / pos == pytest.approx(rate, rel=0.1)


def test_negatives_are_unseen_and_histories_precede_the_event(split) -> None:
    d = split.data
    ex = build_examples(split, "train", 1.0, seed=2)
    for i in np.random.default_rng(0).choice(len(ex), 300, replace=False):
        u, p = ex.user[i], ex.pos[i]
        assert d.ptr[u] < p < split.train_end[u]  # a training event, with at least one item before it
        if ex.label[i] == 0:
            assert ex.candidate[i] not in d.items[d.ptr[u] : p + 1]
        else:
            assert ex.candidate[i] == d.items[p]
    items, ts, _cand, qt, _label = batch(split, ex, np.arange(64), max_len=5)
    for r in range(64):
        u, p = ex.user[r], ex.pos[r]
        n = int((items[r] != 0).sum())
        hist = d.items[max(d.ptr[u], p - 5) : p]
        assert n == len(hist) and (items[r, :n].numpy() == hist).all()  # the most recent <= 5 items
        assert qt[r] == d.timestamps[p] and (ts[r, :n].numpy() <= d.timestamps[p]).all()


def test_test_examples_are_the_last_events(split) -> None:
    ex = build_examples(split, "test", 4.0, seed=3)
    positives = ex.label == 1
    assert (ex.pos[positives] == split.test_pos).all()
    assert (ex.label == 0).sum() == 4 * split.data.num_users


def test_label_rule_needs_ratings(split) -> None:
    with pytest.raises(ValueError, match="needs ratings"):
        build_examples(split, "train", 0.5, seed=0, label_threshold=4)


def test_label_rule_on_ml100k_ratings() -> None:
    from conftest import shared_file

    cfg = load_config(None, [f"data.path={shared_file('ml-100k/u.data')}", "data.max_seq_len=50"])
    data = load_dataset(cfg.data)
    sp = make_split(data, cfg.data.split, cfg.data.max_seq_len)
    ex = build_examples(sp, "train", 0.0, seed=0, label_threshold=4)
    assert len(ex) == int((sp.train_end - data.ptr[:-1] - 1).sum())  # rate 0: events only
    assert (ex.label == (data.ratings[ex.pos] >= 4)).all()
    assert 0.5 < ex.label.mean() < 0.6  # ML-100K: 55% of ratings are 4 or 5
