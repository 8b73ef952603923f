from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_file
from hypothesis import given, settings
from hypothesis import strategies as st

from scalelab.config import DataConfig
from scalelab.data.preprocess import build_sequences, nested_user_subset
from scalelab.data.readers import read_interactions
from scalelab.data.split import make_split
from scalelab.errors import DataError


def table(rows: list[tuple], rating: bool = False) -> pd.DataFrame:
    cols = ["user", "item", "timestamp"] + (["rating"] if rating else [])
    df = pd.DataFrame(rows, columns=cols)
    df["line"] = np.arange(1, len(df) + 1)
    return df


def cfg(**kw: object) -> DataConfig:
    kw.setdefault("min_seq_len", 2)
    kw.setdefault("split", "leave_one_out")
    return DataConfig(**kw)


def seqs(data) -> dict:  # raw user id -> list of raw item ids in sequence order
    return {
        data.user_ids[u].item(): [data.item_ids[i].item() for i in data.user_sequence(u)]
        for u in range(data.num_users)
    }


def test_stable_time_sort_keeps_file_order_on_ties() -> None:
    df = table([(1, 30, 5), (1, 10, 2), (1, 20, 5), (1, 40, 2), (2, 1, 9), (2, 2, 1)])
    data = build_sequences(df, cfg(), "t")
    assert seqs(data) == {1: [10, 40, 30, 20], 2: [2, 1]}
    assert data.timestamps.tolist() == [2, 2, 5, 5, 1, 9]


def test_shuffled_ties_permute_only_within_equal_timestamps() -> None:
    # one user, three tie groups of 12 events each: a shuffle keeps every group's time slot and
    # members, reorders inside groups, and is a function of the seed
    rows = [(1, 100 * t + k, t) for t in (3, 1, 2) for k in range(12)]
    df = table(rows)
    stable = seqs(build_sequences(df, cfg(), "t"))[1]
    assert stable == [100 + k for k in range(12)] + [200 + k for k in range(12)] + [
        300 + k for k in range(12)
    ]
    runs = {s: seqs(build_sequences(df, cfg(ties="shuffle", tie_seed=s), "t"))[1] for s in (0, 1)}
    for seq in runs.values():
        assert [i // 100 for i in seq] == [i // 100 for i in stable]  # time order kept
        assert sorted(seq) == stable and seq != stable
    assert seqs(build_sequences(df, cfg(ties="shuffle", tie_seed=0), "t"))[1] == runs[0]
    assert runs[0] != runs[1]


def test_contiguous_ids_with_padding_zero() -> None:
    df = table([(7, 300, 1), (7, 100, 2), (9, 200, 1), (9, 300, 2)])
    data = build_sequences(df, cfg(), "t")
    assert data.num_items == 3 and sorted(set(data.items.tolist())) == [1, 2, 3]
    assert data.item_ids[1:].tolist() == [100, 200, 300]
    assert data.ptr.tolist() == [0, 2, 4]


def test_rating_threshold_and_missing_rating_column() -> None:
    df = table([(1, 1, 1, 5.0), (1, 2, 2, 2.0), (1, 3, 3, 4.0), (2, 1, 1, 4.0), (2, 2, 2, 4.5)], rating=True)
    data = build_sequences(df, cfg(rating_threshold=4), "t")
    assert seqs(data) == {1: [1, 3], 2: [1, 2]}
    with pytest.raises(DataError, match="no rating column"):
        build_sequences(table([(1, 1, 1), (1, 2, 2)]), cfg(rating_threshold=4), "t")


def test_dedup_modes() -> None:
    rows = [(1, 1, 1), (1, 1, 1), (1, 2, 2), (1, 1, 3), (1, 3, 4)]
    assert seqs(build_sequences(table(rows), cfg(dedup="none"), "t"))[1] == [1, 1, 2, 1, 3]
    assert seqs(build_sequences(table(rows), cfg(dedup="exact"), "t"))[1] == [1, 2, 1, 3]
    assert seqs(build_sequences(table(rows), cfg(dedup="first"), "t"))[1] == [1, 2, 3]
    assert seqs(build_sequences(table(rows), cfg(dedup="last"), "t"))[1] == [2, 1, 3]


def brute_kcore(rows: list[tuple], ku: int, ki: int) -> set[tuple]:
    """Reference: drop rows of rare users/items one pass at a time until nothing changes."""
    rows = list(rows)
    while True:
        uc = pd.Series([r[0] for r in rows]).value_counts()
        ic = pd.Series([r[1] for r in rows]).value_counts()
        kept = [r for r in rows if uc[r[0]] >= ku and ic[r[1]] >= ki]
        if len(kept) == len(rows):
            return set(kept)
        rows = kept


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 12), st.integers(0, 15)), min_size=1, max_size=120),
    st.integers(1, 4),
    st.integers(1, 4),
)
def test_iterative_kcore_matches_brute_force(pairs: list[tuple[int, int]], ku: int, ki: int) -> None:
    rows = [(u, i, t) for t, (u, i) in enumerate(pairs)]
    expect = brute_kcore(rows, ku, ki)
    expect_users = {r[0] for r in expect if sum(1 for x in expect if x[0] == r[0]) >= 2}
    c = cfg(min_user_count=ku, min_item_count=ki, dedup="none")
    if not expect_users:
        with pytest.raises(DataError, match="empty after"):
            build_sequences(table(rows), c, "t")
        return
    data = build_sequences(table(rows), c, "t")
    got = set()
    for u in range(data.num_users):
        for p in range(data.ptr[u], data.ptr[u + 1]):
            got.add((data.user_ids[u].item(), data.item_ids[data.items[p]].item(), int(data.timestamps[p])))
    assert got == {r for r in expect if r[0] in expect_users}
    ic = np.bincount(data.items)
    assert data.lengths.min() >= max(ku, 2)
    assert len(expect_users) < len({r[0] for r in expect}) or ic[1:].min() >= ki


def test_empty_after_kcore_is_a_clear_error() -> None:
    df = table([(1, 1, 1), (1, 2, 2), (2, 3, 1), (2, 4, 2)])
    with pytest.raises(DataError, match=r"t: dataset is empty after 'iterative k-core"):
        build_sequences(df, cfg(min_item_count=2), "t")


def test_user_fraction_is_nested_and_sized() -> None:
    users = np.arange(1000)
    prev: set[int] = set()
    for f in (1 / 16, 1 / 8, 0.25, 0.5, 1.0):
        sub = set(nested_user_subset(users, f, seed=3).tolist())
        assert len(sub) == int(np.ceil(f * 1000)) and prev <= sub
        prev = sub
    assert set(nested_user_subset(users, 0.5, 3)) != set(nested_user_subset(users, 0.5, 4))


def test_history_fraction_keeps_most_recent_part() -> None:
    rows = [(1, i, i) for i in range(1, 11)] + [(2, i, i) for i in range(1, 4)]
    data = build_sequences(table(rows), cfg(history_fraction=0.3, min_seq_len=3), "t")
    assert seqs(data) == {1: [8, 9, 10], 2: [1, 2, 3]}  # ceil(0.3*10)=3; user 2 keeps min_seq_len


def test_fraction_in_pipeline_is_nested_on_real_data() -> None:
    df = read_interactions(shared_file("ml-100k/u.data"))
    small = build_sequences(df, DataConfig(fraction=0.25), "ml100k")
    big = build_sequences(df, DataConfig(fraction=0.5), "ml100k")
    assert set(small.user_ids.tolist()) < set(big.user_ids.tolist())
    assert small.num_users == int(np.ceil(0.25 * 943))
    assert small.meta["steps"][-1]["step"].startswith("user fraction 0.25")


def test_ml1m_leave_one_out_test_item_is_last_by_time() -> None:
    df = read_interactions(shared_file("ml-1m/interactions.tsv.gz"))
    data = build_sequences(df, DataConfig(split="leave_one_out"), "ml1m")
    sp = make_split(data, "leave_one_out", 200)
    # independent expectation: per user, the row with the latest timestamp (ties: last in file)
    last = (
        df.sort_values(["user", "timestamp", "line"], kind="stable").groupby("user").tail(1).set_index("user")
    )
    test_raw = data.item_ids[sp.test_items]
    expect = last.loc[data.user_ids, "item"].to_numpy()
    assert (test_raw == expect).all()
    assert (data.timestamps[sp.test_pos] == last.loc[data.user_ids, "timestamp"].to_numpy()).all()
    assert (sp.train_end == sp.test_pos).all() and sp.valid_pos is None


def test_leave_two_out_positions() -> None:
    data = build_sequences(table([(1, i, i) for i in range(1, 6)]), DataConfig(), "t")
    sp = make_split(data, "leave_two_out", 200)
    assert sp.test_items.tolist() == [5] and sp.valid_items.tolist() == [4]
    assert sp.train_lengths().tolist() == [3]
    assert sp.train_targets() == 2
