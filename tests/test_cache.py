from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pytest

from scalelab.config import DataConfig, SyntheticConfig
from scalelab.data.loader import cache_dir, cache_key, load_dataset
from scalelab.data.sequences import SequenceData
from scalelab.errors import DataError


def write_table(path: Path, n_users: int = 30) -> Path:
    rows = ["user_id\titem_id\ttimestamp"] + [
        f"{u}\t{(u * 7 + i) % 40}\t{i}" for u in range(n_users) for i in range(6)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_second_load_hits_the_cache_with_identical_data(tmp_path: Path) -> None:
    cfg = DataConfig(path=str(write_table(tmp_path / "t.tsv")))
    first = load_dataset(cfg)
    second = load_dataset(cfg)
    assert not first.meta["cache"]["hit"] and second.meta["cache"]["hit"]
    assert np.array_equal(first.items, second.items) and np.array_equal(first.ptr, second.ptr)
    assert np.array_equal(first.item_ids, second.item_ids)


def test_key_depends_on_content_and_preprocessing_not_on_split(tmp_path: Path) -> None:
    p = write_table(tmp_path / "t.tsv")
    base = cache_key(DataConfig(path=str(p)))
    assert cache_key(DataConfig(path=str(p), split="leave_one_out", max_seq_len=50)) == base
    assert cache_key(DataConfig(path=str(p), min_item_count=2)) != base
    assert cache_key(DataConfig(path=str(p), fraction=0.5)) != base
    write_table(p, n_users=31)  # same path, new content
    assert cache_key(DataConfig(path=str(p))) != base
    syn = cache_key(DataConfig())
    assert cache_key(DataConfig(synthetic=SyntheticConfig(seed=1))) != syn


def test_damaged_entry_is_rebuilt(tmp_path: Path) -> None:
    cfg = DataConfig(path=str(write_table(tmp_path / "t.tsv")))
    load_dataset(cfg)
    entry = cache_dir() / f"{cache_key(cfg)}.npz"
    entry.write_bytes(b"garbage")
    data = load_dataset(cfg)
    assert not data.meta["cache"]["hit"] and data.num_users == 30
    assert SequenceData.load(entry).num_users == 30


def _build(args: tuple[str, str]) -> int:
    path, cache = args
    os.environ["SCALELAB_CACHE"] = cache
    return load_dataset(DataConfig(path=path)).num_interactions


def test_concurrent_builders_leave_one_valid_entry(tmp_path: Path) -> None:
    p = write_table(tmp_path / "t.tsv", n_users=2000)
    cache = str(tmp_path / "cache")
    with mp.get_context("spawn").Pool(4) as pool:
        counts = pool.map(_build, [(str(p), cache)] * 8)
    assert set(counts) == {12000}
    entries = list(Path(cache).glob("*.npz"))
    assert len(entries) == 1 and not list(Path(cache).glob(".*.tmp"))
    assert SequenceData.load(entries[0]).num_interactions == 12000


def test_not_a_processed_dataset(tmp_path: Path) -> None:
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"nope")
    with pytest.raises(DataError, match="not a readable processed dataset"):
        SequenceData.load(bad)


def test_string_ids_survive_the_cache(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text(
        "user_id,item_id,timestamp\n" + "".join(f"u{u},0{i},{i}\n" for u in range(3) for i in range(4))
    )
    cfg = DataConfig(path=str(p))
    load_dataset(cfg)
    data = load_dataset(cfg)
    assert data.meta["cache"]["hit"]
    assert data.item_ids[1:].tolist() == ["00", "01", "02", "03"] and data.user_ids.tolist() == [
        "u0",
        "u1",
        "u2",
    ]


def test_catalogue_adds_unseen_items_as_candidates(tmp_path: Path) -> None:
    from scalelab.config import load_config
    from scalelab.data.loader import cache_key, load_dataset

    rows = [f"{u}::{i}::5::{100 + i}" for u in range(1, 6) for i in (1, 2, 3, 5)]
    (tmp_path / "ratings.dat").write_text("\n".join(rows) + "\n")
    (tmp_path / "movies.dat").write_text(
        "1::A (1995)::Comedy\n2::B::Drama\n3::C::Drama\n4::D::X\n5::E::Y\n9::F::Z\n"
    )
    base = [f"data.path={tmp_path / 'ratings.dat'}", "data.min_user_count=1", "data.min_item_count=1"]
    plain = load_dataset(load_config(None, base).data)
    cfg = load_config(None, [*base, f"data.catalogue={tmp_path / 'movies.dat'}"])
    full = load_dataset(cfg.data)
    assert plain.num_items == 4 and full.num_items == 6
    assert sorted(int(x) for x in full.item_ids[1:]) == [1, 2, 3, 4, 5, 9]
    assert (full.items == plain.items).all()  # sequences unchanged: the new items only join the catalogue
    assert full.meta["catalogue_extra_items"] == 2
    assert cache_key(cfg.data) != cache_key(load_config(None, base).data)
    again = load_dataset(cfg.data)  # from the cache
    assert again.num_items == 6 and again.meta["cache"]["hit"]


def test_ml1m_with_movies_dat_has_metas_catalogue() -> None:
    from conftest import shared_file

    from scalelab.config import load_config
    from scalelab.data.loader import load_dataset

    movies = shared_file("ml-1m/movies.dat")
    data = load_dataset(
        load_config(
            None, [f"data.path={shared_file('ml-1m/interactions.tsv.gz')}", f"data.catalogue={movies}"]
        ).data
    )
    assert data.num_items == 3883 and data.meta["catalogue_extra_items"] == 467
