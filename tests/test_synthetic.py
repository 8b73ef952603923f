from __future__ import annotations

import numpy as np

from scalelab.config import SyntheticConfig
from scalelab.data.synthetic import generate_interactions, zipf_probabilities


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    a = generate_interactions(SyntheticConfig(num_users=50, seed=1))
    b = generate_interactions(SyntheticConfig(num_users=50, seed=1))
    c = generate_interactions(SyntheticConfig(num_users=50, seed=2))
    assert a.equals(b) and not a.equals(c)


def test_shape_lengths_time_order_and_catalogue() -> None:
    cfg = SyntheticConfig(num_users=500, num_items=80, mean_seq_len=30, min_seq_len=7)
    df = generate_interactions(cfg)
    lengths = df.groupby("user").size()
    assert len(lengths) == 500 and lengths.min() >= 7
    assert abs(lengths.mean() - 30) < 3
    assert df["item"].between(1, 80).all()
    assert (df.groupby("user")["timestamp"].diff().dropna() > 0).all()


def test_popularity_follows_zipf_when_fully_random() -> None:
    cfg = SyntheticConfig(num_users=3000, num_items=50, randomness=1.0, zipf_exponent=1.0)
    counts = np.bincount(generate_interactions(cfg)["item"], minlength=51)[1:]
    freq = counts / counts.sum()
    assert np.abs(freq - zipf_probabilities(50, 1.0)).max() < 0.01


def test_zero_randomness_follows_the_successor_table() -> None:
    cfg = SyntheticConfig(num_users=200, num_items=30, randomness=0.0, branching=1)
    df = generate_interactions(cfg)
    nxt = df.groupby("user")["item"].shift(-1)
    pairs = df.assign(nxt=nxt).dropna().groupby("item")["nxt"].nunique()
    assert (pairs == 1).all()  # one successor per item
