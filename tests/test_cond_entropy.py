"""The bias-corrected conditional entropy (the data-quality term) against known truth: Markov
chains of known order and entropy rate, brute-force counting, hand-made repeat examples, and the
shared datasets (non-negative everywhere)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from conftest import shared_file

from scalelab.data.cond_entropy import MIN_COVERAGE, choose_m, conditional_entropy


def markov_users(
    k: int, order: int, alpha: float, users: int, mean_len: float, seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Sequences of a random order-`order` chain on k items (rows ~ Dirichlet(alpha)), started from
    its stationary law (burn-in), with geometric lengths; returns (ptr, items, entropy rate)."""
    rng = np.random.default_rng(seed)
    rows = rng.dirichlet(np.full(k, alpha), size=k**order)
    h_row = -(rows * np.log(np.where(rows > 0, rows, 1))).sum(1)
    # stationary law of the chain on contexts (k^order states)
    states = k**order
    trans = np.zeros((states, states))
    for s in range(states):
        nxt_ctx = (s * k) % states + np.arange(k)  # drop the oldest item, append the new one
        trans[s, nxt_ctx] = rows[s]
    w, v = np.linalg.eig(trans.T)
    pi = np.real(v[:, np.argmin(abs(w - 1))])
    pi /= pi.sum()
    rate = float(pi @ h_row)
    cum = rows.cumsum(1)
    lens = np.maximum(order + 1, rng.geometric(1 / mean_len, size=users))
    seqs = []
    for n in lens:
        ctx = int(rng.choice(states, p=pi))
        out = []
        for _ in range(n):
            item = int(np.searchsorted(cum[ctx], rng.random()))
            out.append(item)
            ctx = (ctx * k) % states + item
        seqs.append(out)
    ptr = np.concatenate([[0], np.cumsum([len(s) for s in seqs])])
    return ptr, np.concatenate(seqs), rate


# (items, order, alpha, users, mean length): well covered and undersampled cases
CASES = [
    (20, 1, 0.5, 1500, 20),
    (100, 1, 0.3, 2000, 30),
    (10, 2, 0.5, 2000, 20),
    (500, 1, 0.02, 4000, 8),
    (100, 1, 0.3, 300, 8),  # ~7 pairs per context over ~60 likely next items: undersampled
    (1000, 1, 0.05, 1500, 6),  # Amazon-like: short sequences, large catalogue
]


@pytest.mark.parametrize("k, order, alpha, users, mean_len", CASES)
def test_markov_truth_within_5_percent_where_covered_else_flagged(
    k: int, order: int, alpha: float, users: int, mean_len: float
) -> None:
    ptr, items, rate = markov_users(k, order, alpha, users, mean_len, seed=k + order)
    e = conditional_entropy(ptr, items, m=order)
    assert e.value >= 0 and e.plug_in <= e.miller_madow
    if e.coverage >= MIN_COVERAGE:
        assert e.reliable and e.warning() is None
        assert e.value == pytest.approx(rate, rel=0.05), (e, rate)
        assert abs(e.value - rate) <= abs(e.plug_in - rate) + 1e-9  # the correction helps
    else:
        assert not e.reliable and "sparsity" in (e.warning() or "")
    # a longer context than the chain's order carries no more information: same truth
    longer = conditional_entropy(ptr, items, m=order + 1)
    if longer.reliable:
        assert longer.value == pytest.approx(rate, rel=0.05)


def test_both_regimes_occur_in_the_cases() -> None:
    """The parametrised cases above exercise both branches (covered and flagged)."""
    covered = [
        conditional_entropy(*markov_users(k, o, a, u, n, seed=k + o)[:2], m=o).reliable
        for k, o, a, u, n in CASES
    ]
    assert any(covered) and not all(covered)


def test_plug_in_and_counts_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        lengths = rng.integers(1, 15, int(rng.integers(1, 8)))
        ptr = np.concatenate([[0], np.cumsum(lengths)])
        items = rng.integers(0, int(rng.integers(2, 6)), ptr[-1])
        m = int(rng.integers(0, 3))
        last = None if rng.random() < 0.5 else int(rng.integers(2, 10))
        pairs: Counter = Counter()
        for u in range(len(lengths)):
            seq = list(items[ptr[u] : ptr[u + 1]])
            if last is not None:
                seq = seq[-last:]
            for t in range(m, len(seq)):
                pairs[(tuple(seq[t - m : t]), seq[t])] += 1
        e = conditional_entropy(ptr, items, m, last)
        n = sum(pairs.values())
        assert e.pairs == n
        if n == 0:
            assert math.isnan(e.value)
            continue
        ctx: Counter = Counter()
        for (c, _), v in pairs.items():
            ctx[c] += v
        plug = -sum(v / n * math.log(v / ctx[c]) for (c, _), v in pairs.items())
        assert e.plug_in == pytest.approx(plug, abs=1e-12)
        assert e.contexts == len(ctx)
        assert e.coverage == pytest.approx(1 - sum(1 for v in pairs.values() if v == 1) / n)
        assert e.value >= 0


def test_chao_shen_hand_example() -> None:
    """One context (m=0), counts {a: 2, b: 1, c: 1}: n=4, f1=2, C=1/2, p~ = (1/4, 1/8, 1/8)."""
    e = conditional_entropy(np.array([0, 4]), np.array([1, 1, 2, 3]), m=0)
    pa = np.array([0.25, 0.125, 0.125])
    expect = float((-pa * np.log(pa) / (1 - (1 - pa) ** 4)).sum())
    assert e.value == pytest.approx(expect, abs=1e-12)
    assert e.plug_in == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))


def test_choose_m_picks_the_largest_covered_context() -> None:
    ptr, items, _ = markov_users(20, 1, 0.5, 1500, 20, seed=21)
    chosen, tried = choose_m(ptr, items, m_max=3)
    assert [e.m for e in tried] == [0, 1, 2, 3]
    assert chosen.m == max(e.m for e in tried if e.reliable)
    assert chosen.m >= 1


@pytest.mark.parametrize(
    "rel", ["ml-100k/u.data", "ml-1m/interactions.tsv.gz", "amazon-beauty/interactions.tsv.gz",
            "amazon-games/interactions.tsv.gz"],
)  # fmt: skip
def test_non_negative_on_the_shared_datasets(rel: str) -> None:
    from scalelab.config import DataConfig
    from scalelab.data.loader import load_dataset

    data = load_dataset(DataConfig(path=str(shared_file(rel))))
    chosen, tried = choose_m(data.ptr, data.items, m_max=2, last=50)
    for e in tried:
        assert e.value >= 0 and e.plug_in >= 0 and e.value >= e.plug_in - 1e-12, e
    assert chosen.reliable


def test_repeat_statistics_on_a_hand_made_table() -> None:
    """User 0 re-consumes item 1 (its test target, inside a 2-item window); user 1 re-consumes item 5
    early (its test target is new); user 2 never repeats; user 3's test target was seen, but outside
    a 2-item input window."""
    from scalelab.data.split import make_split
    from scalelab.data.stats import repeat_stats

    seqs = [[1, 2, 1], [5, 5, 6, 7], [8, 9, 10], [3, 4, 11, 3]]
    ptr = np.concatenate([[0], np.cumsum([len(s) for s in seqs])])

    class Data:  # the fields repeat_stats reads
        def __init__(self) -> None:
            self.ptr = ptr
            self.items = np.concatenate(seqs)
            self.num_users = len(seqs)
            self.num_interactions = int(ptr[-1])

    sp = make_split(Data(), "leave_one_out", max_seq_len=2)  # type: ignore[arg-type]
    r = repeat_stats(sp)
    assert r["events"] == 3 and r["events_share"] == pytest.approx(3 / 14)  # 1 (u0), 5 (u1), 3 (u3)
    assert r["users_with_repeats"] == 3
    assert r["test"]["in_history"] == 2 and r["test"]["in_input_window"] == 1  # u0 inside, u3 outside
    frame = pd.DataFrame({"u": np.repeat(np.arange(4), np.diff(ptr)), "i": np.concatenate(seqs)})
    assert r["events"] == int(frame.duplicated().sum())  # an independent count
