"""Complex scenarios: multi-domain merge, behaviour types, item side information, the ranking task
end to end, and configs that ask for data the dataset does not have."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from scalelab.config import load_config
from scalelab.data.features import ML100K_GENRES, item_token_matrix, read_token_bags, token_id
from scalelab.data.loader import load_dataset
from scalelab.data.split import make_split
from scalelab.data.synthetic import generate_interactions
from scalelab.errors import ConfigError, DataError
from scalelab.training.ranking_data import build_examples
from scalelab.training.ranking_metrics import auc
from tests.conftest import shared_file


def test_synthetic_domains_merge_each_users_events_by_time() -> None:
    cfg = load_config(None, ["data.synthetic.domains=3", "data.synthetic.num_users=60"])
    raw = generate_interactions(cfg.data.synthetic)
    data = load_dataset(cfg.data)
    names = data.meta["domain_names"]
    assert names == ["d1", "d2", "d3"] and data.num_users == 60
    merged_domains = 0
    for u in range(data.num_users):
        a, b = data.ptr[u], data.ptr[u + 1]
        assert (np.diff(data.timestamps[a:b]) >= 0).all()  # one global time order
        merged_domains += len(np.unique(data.domains[a:b])) > 1
        rows = raw[raw["user"] == data.user_ids[u]]
        for code, name in enumerate(names, start=1):  # each domain's own order is kept
            mine = data.item_ids[data.items[a:b][data.domains[a:b] == code]]
            expected = rows[rows["domain"] == name].sort_values("timestamp", kind="stable")["item"].to_numpy()
            assert list(mine) == list(expected)
    assert merged_domains == 60  # shared users: every user's sequence mixes domains
    # an item belongs to exactly one domain
    item_dom = {}
    for i, dmn in zip(data.items, data.domains, strict=True):
        assert item_dom.setdefault(int(i), int(dmn)) == int(dmn)


def _tsv(path: Path, rows: list[tuple[int, int, int]]) -> str:
    with gzip.open(path, "wt") as f:
        f.write("user_id\titem_id\ttimestamp\n")
        f.writelines(f"{u}\t{i}\t{t}\n" for u, i, t in rows)
    return str(path)


def test_file_domains_namespace_items_and_users_unless_shared(tmp_path: Path) -> None:
    a = _tsv(tmp_path / "a.tsv.gz", [(1, 100, 10), (1, 101, 30), (2, 100, 5), (2, 102, 6)])
    b = _tsv(tmp_path / "b.tsv.gz", [(1, 100, 20), (1, 200, 40), (3, 201, 1), (3, 200, 2)])
    base = [
        f"data.domains={{a: {{path: {a}}}, b: {{path: {b}}}}}",
        "data.min_seq_len=2",
        "data.split=leave_one_out",
    ]
    apart = load_dataset(load_config(None, base).data)
    # user 1 of a and user 1 of b are different people; item 100 of a and of b are different items
    assert sorted(apart.user_ids) == ["a:1", "a:2", "b:1", "b:3"]
    assert apart.num_items == 6 and "a:100" in set(apart.item_ids) and "b:100" in set(apart.item_ids)
    shared = load_dataset(load_config(None, [*base, "data.shared_users=true"]).data)
    u = [str(x) for x in shared.user_ids].index("1")
    seq = shared.item_ids[shared.user_sequence(u)]
    assert list(seq) == ["a:100", "b:100", "a:101", "b:200"]  # merged by time: 10, 20, 30, 40
    only_b = load_dataset(load_config(None, [*base, "data.keep_domains=[b]"]).data)
    assert set(only_b.domains) == {2} and only_b.num_users == 2
    with pytest.raises(ConfigError, match="keep_domains: unknown domain"):
        load_config(None, [*base, "data.keep_domains=[c]"])
    with pytest.raises(DataError, match=r"data\.domains\.a\.path"):
        load_dataset(load_config(None, [f"data.domains={{a: {{path: {tmp_path}/nope.tsv}}}}"]).data)


def test_behaviour_from_rating_on_ml100k() -> None:
    path = shared_file("ml-100k/u.data")
    data = load_dataset(load_config(None, [f"data.path={path}", "data.behaviour_from_rating=true"]).data)
    assert data.meta["behaviour_names"] == ["1", "2", "3", "4", "5"]
    names = np.array(data.meta["behaviour_names"])
    assert (names[data.behaviours - 1].astype(float) == data.ratings).all()
    # 4- and 5-star events as targets: ML-100K has 34,174 four-star and 21,201 five-star ratings
    assert int(np.isin(data.behaviours, [4, 5]).sum()) == 34_174 + 21_201


def test_item_feature_readers_on_real_files() -> None:
    movies = read_token_bags(shared_file("ml-1m/movies.dat"))
    assert len(movies) == 3883 and movies["1"] == [
        ("genre", "Animation"),
        ("genre", "Children's"),
        ("genre", "Comedy"),
    ]
    uitem = read_token_bags(shared_file("ml-100k/u.item"))
    assert len(uitem) == 1682 and uitem["2"] == [("genre", g) for g in ("Action", "Adventure", "Thriller")]
    assert {g for bag in uitem.values() for _, g in bag} <= set(ML100K_GENRES)
    titles = read_token_bags(shared_file("amazon-beauty/item_titles.tsv.gz"))
    assert titles["101"] == [("word", w) for w in ("xtreme", "brite", "brightening", "gel", "1oz")]
    ids = np.array([0, 1, 2, 999_999])
    m, cover = item_token_matrix([(shared_file("ml-1m/movies.dat"), "")], ids, 64)
    assert m.shape[0] == 4 and (m[0] == 0).all() and (m[3] == 0).all()
    assert sorted(m[1][m[1] > 0]) == sorted(
        token_id("genre", g, 64) for g in ("Animation", "Children's", "Comedy")
    )
    assert cover == {"items_with_features": 2, "items_without_features": 1}


def test_item_feature_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "titles.tsv"
    bad.write_text("id\tname\n1\tx\n")
    with pytest.raises(DataError, match=r"titles\.tsv:1: expected a header"):
        read_token_bags(bad)
    with pytest.raises(DataError, match="no such file"):
        read_token_bags(tmp_path / "missing.dat")


def test_domain_negatives_stay_in_the_positives_domain() -> None:
    cfg = load_config(
        None, ["data.synthetic.domains=2", "data.synthetic.num_users=200", "data.min_seq_len=3"]
    )
    data = load_dataset(cfg.data)
    split = make_split(data, "leave_two_out", 50)
    from scalelab.training.tasks import item_domains

    dom = item_domains(data)
    ex = build_examples(split, "test", 2.0, seed=0, item_domain=dom)
    event_domain = data.domains[ex.pos]
    assert (dom[ex.candidate] == event_domain).all() and (ex.label == 0).any()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.family=din", "does not do the retrieval task"),
        ("task.target_behaviours=[buy]", "task.target_behaviours needs task.kind: ranking"),
        ("features.item_features=true", "needs data.item_features"),
    ],
)
def test_config_refuses_impossible_combinations(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_ranking_needs_the_data_it_names(tmp_path: Path) -> None:
    from scalelab.training.trainer import train_run

    cfg = load_config(None, ["task.kind=ranking", "task.target_behaviours=[buy]", "train.epochs=1"])
    with pytest.raises(DataError, match="no behaviour types"):
        train_run(cfg, tmp_path / "r")


def test_ranking_on_ml100k_beats_popularity(tmp_path: Path) -> None:
    """A short HSTU ranking run on real ML-100K ranks held-out events above sampled unseen items
    better than item popularity does on the same examples (AUC 0.80 for popularity)."""
    from scalelab.training.trainer import train_run

    path = shared_file("ml-100k/u.data")
    over = [f"data.path={path}", "data.max_seq_len=50", "task.kind=ranking", "task.eval_negative_rate=4",
            "train.epochs=6", "model.width=32", "tracking.mlflow_uri=null"]  # fmt: skip
    cfg = load_config(None, over)
    s = train_run(cfg, tmp_path / "rank")
    data = load_dataset(cfg.data)
    split = make_split(data, cfg.data.split, cfg.data.max_seq_len)
    ex = build_examples(split, "test", 4.0, seed=cfg.train.seed)
    seen = np.concatenate([data.items[a:b] for a, b in zip(data.ptr[:-1], split.train_end, strict=True)])
    pop = np.bincount(seen, minlength=data.num_items + 1)
    popularity = auc(ex.label, pop[ex.candidate])
    assert s["final"]["auc"] > popularity + 0.01, (s["final"], popularity)
    assert set(s["final"]) == {"auc", "gauc", "logloss"} and s["size"]["non_embedding_params"] > 0


@pytest.mark.slow
def test_a_ranking_sweep_logs_auc_to_the_runs_table_mlflow_and_the_fitters(tmp_path: Path) -> None:
    """HSTU and DIN ranking cells run as Ray Tune trials; AUC / GAUC / LogLoss reach the runs
    table and MLflow like HR/NDCG do, and a law can be fitted to them. Opt-in (`pytest -m slow`):
    about 25 s of Ray start-up and trials, and the default run is kept under 10 minutes."""
    import subprocess
    import sys

    import pandas as pd

    from tests.sweep_helpers import BASE, mlflow_runs, sweep, write_spec

    base = {**BASE, "task": {"kind": "ranking", "negative_rate": 1.0}, "eval": {}}
    spec = write_spec(
        tmp_path, "rank", base=base, grid={"model.family": ["hstu", "din"], "model.depth": [1, 2]}
    )
    out = sweep(str(spec))
    assert out.returncode == 0, out.stderr[-2000:]
    table = pd.read_csv(tmp_path / "rank" / "runs.csv")
    assert (table["status"] == "finished").all() and len(table) == 4
    for col in ("best_auc", "best_gauc", "best_logloss", "final_auc", "valid_best_auc"):
        assert table[col].between(0, 10).all(), col
    assert table["best_auc"].between(0.5, 1).all()  # better than chance on the synthetic Markov data
    runs = mlflow_runs(tmp_path, "rank")
    children = [r for r in runs if r.data.tags.get("kind") == "trial"]
    assert len(children) == 4 and all("test_auc" in r.data.metrics for r in children)
    fit = subprocess.run(
        [sys.executable, "-m", "scalelab", "fit", "--law", "power", "--x", "params", "--metric", "auc",
         "--sweep", str(tmp_path / "rank"), "--holdout", "none", "--bootstrap", "20"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr[-2000:]
