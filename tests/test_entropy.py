from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import shared_file
from reference_impls import pincus_apen, pooled_apen

from scalelab.config import DataConfig, SyntheticConfig
from scalelab.data.entropy import apen_per_user, apen_pooled, apen_sequence, apen_summary
from scalelab.data.preprocess import build_sequences
from scalelab.data.readers import read_interactions
from scalelab.data.synthetic import generate_interactions


def test_matches_brute_force_pincus_on_many_random_series() -> None:
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        n_users = int(rng.integers(1, 6))
        lengths = rng.integers(1, 40, n_users)
        ptr = np.concatenate([[0], np.cumsum(lengths)])
        items = rng.integers(1, int(rng.integers(2, 9)), ptr[-1])  # small alphabets: many repeats
        m = int(rng.integers(1, 5))
        last = None if rng.random() < 0.5 else int(rng.integers(1, 30))
        got = apen_per_user(ptr, items, m, last)
        seqs = []
        for u in range(n_users):
            s = items[ptr[u] : ptr[u + 1]]
            s = s[-last:] if last else s
            seqs.append(s)
            if len(s) <= m:
                assert math.isnan(got[u])
            else:
                assert abs(got[u] - pincus_apen(s, m)) < 1e-9
                checked += 1
        if sum(max(len(s) - m, 0) for s in seqs):
            assert abs(apen_pooled(ptr, items, m, last) - pooled_apen(seqs, m)) < 1e-9
    assert checked > 500


def test_hand_computed_examples() -> None:
    # alternating series: every 2-gram predicts the next item exactly -> ApEn(1) = ln(n-1) terms
    # Phi^1 over [1,2,1,2]: templates 1,2,1,2 each matched twice of 4 -> ln(1/2)
    # Phi^2 over 12,21,12: 12 matched 2/3 (x2), 21 matched 1/3 -> (2 ln(2/3) + ln(1/3)) / 3
    expect = math.log(0.5) - (2 * math.log(2 / 3) + math.log(1 / 3)) / 3
    assert apen_sequence(np.array([1, 2, 1, 2]), 1) == pytest.approx(expect, abs=1e-12)
    # no repeats: ApEn collapses to ln((n-m)/(n-m+1)) (laws.md)
    assert apen_sequence(np.arange(1, 51), 2) == pytest.approx(math.log(48 / 49), abs=1e-12)
    assert math.isnan(apen_sequence(np.array([3, 4]), 2))


def test_ml1m_published_value_and_brute_force_sample() -> None:
    df = read_interactions(shared_file("ml-1m/interactions.tsv.gz"))
    data = build_sequences(df, DataConfig(), "ml1m")
    s = apen_summary(data.ptr, data.items, m=2, last=50)
    assert s.users_used == 6040
    assert round(s.per_user_mean, 4) == -0.0248  # laws.md: every implementation gives -0.0248
    per_user = apen_per_user(data.ptr, data.items, 2, 50)
    for u in np.random.default_rng(1).choice(data.num_users, 15, replace=False):
        seq = data.user_sequence(u)[-50:]
        assert abs(per_user[u] - pincus_apen(seq, 2)) < 1e-9
    assert 0 < s.pooled < math.log(data.num_items)


def test_synthetic_knob_moves_apen_the_way_it_says() -> None:
    pooled = []
    for r in (0.0, 0.1, 0.3, 0.6, 1.0):
        syn = SyntheticConfig(num_users=1000, num_items=100, mean_seq_len=40, randomness=r, branching=2)
        data = build_sequences(generate_interactions(syn), DataConfig(), "syn")
        pooled.append(apen_pooled(data.ptr, data.items, 2))
    assert all(a < b for a, b in itertools.pairwise(pooled)), pooled
    # randomness 0: next item uniform over 2 successors of the current one -> H(next | prev 2) = ln 2
    # (slightly less where an item's two successors coincide)
    assert math.log(2) - 0.12 < pooled[0] <= math.log(2) + 1e-9
    by_branching = []
    for b in (1, 4, 16):
        syn = SyntheticConfig(num_users=1000, num_items=100, mean_seq_len=40, randomness=0.0, branching=b)
        data = build_sequences(generate_interactions(syn), DataConfig(), "syn")
        by_branching.append(apen_pooled(data.ptr, data.items, 1))
    # deterministic chain: ~0 (not exactly: H_1 also counts each user's last item, H_2 cannot)
    assert by_branching[0] < 0.01 and by_branching[0] < by_branching[1] < by_branching[2], by_branching
