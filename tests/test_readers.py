from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import shared_file

from scalelab.config import ColumnMap
from scalelab.data.readers import detect_format, read_interactions
from scalelab.errors import DataError


def write(path: Path, text: str, gz: bool = False) -> Path:
    if gz:
        with gzip.open(path, "wt", encoding="latin-1") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="latin-1")
    return path


# ------------------------------------------------------------------------------ each real format


def test_ml_1m_ratings_dat(tmp_path: Path) -> None:
    p = write(
        tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1357::5::978298709\n"
    )
    assert detect_format(p) == "ml-1m"
    df = read_interactions(p)
    assert df["user"].tolist() == [1, 1, 2]
    assert df["item"].tolist() == [1193, 661, 1357]
    assert df["timestamp"].tolist() == [978300760, 978302109, 978298709]
    assert df["rating"].tolist() == [5, 3, 5]
    assert df["line"].tolist() == [1, 2, 3]


def test_ml_20m_ratings_csv(tmp_path: Path) -> None:
    p = write(
        tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n"
    )
    assert detect_format(p) == "ml-20m"
    df = read_interactions(p)
    assert df["item"].tolist() == [2, 29] and df["rating"].tolist() == [3.5, 3.5]
    assert df["line"].tolist() == [2, 3]


def test_amazon_ratings_csv_without_header(tmp_path: Path) -> None:
    p = write(
        tmp_path / "ratings_Beauty.csv",
        "A39HTATAQ9V7YF,0205616461,5.0,1369699200\nA3JM6GV9MNOF9X,0558925278,3.0,1355443200\n",
    )
    assert detect_format(p) == "amazon-csv"
    df = read_interactions(p)
    # string ids with leading zeros must stay strings
    assert df["item"].tolist() == ["0205616461", "0558925278"]
    assert df["user"].tolist() == ["A39HTATAQ9V7YF", "A3JM6GV9MNOF9X"]


def test_amazon_json_lines_strict_and_python_literal(tmp_path: Path) -> None:
    recs = [
        {"reviewerID": "U1", "asin": "B001", "overall": 4.0, "unixReviewTime": 1400000000, "reviewText": "a"},
        {"reviewerID": "U2", "asin": "B002", "overall": 5.0, "unixReviewTime": 1400000100},
    ]
    text = json.dumps(recs[0]) + "\n" + repr(recs[1]) + "\n"
    p = write(tmp_path / "reviews_Beauty_5.json.gz", text, gz=True)
    assert detect_format(p) == "amazon-json"
    df = read_interactions(p)
    assert df["user"].tolist() == ["U1", "U2"] and df["timestamp"].tolist() == [1400000000, 1400000100]
    bad = write(tmp_path / "bad.json", json.dumps(recs[0]) + '\n{"asin": "x"}\n')
    with pytest.raises(DataError, match=r"bad.json:2: missing field 'reviewerID'"):
        read_interactions(bad)


def test_sasrec_text_uses_row_order_as_time(tmp_path: Path) -> None:
    p = write(tmp_path / "Beauty.txt", "1 5\n1 3\n2 7\n")
    assert detect_format(p) == "sasrec"
    df = read_interactions(p)
    assert df["item"].tolist() == [5, 3, 7] and df["timestamp"].tolist() == [0, 1, 2]


def test_generic_tables_with_column_mapping(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"uid": ["a", "b"], "iid": [10, 11], "ts": [5, 6], "stars": [1.0, 4.0], "act": ["buy", "click"]}
    )
    cols = ColumnMap(user="uid", item="iid", timestamp="ts", rating="stars", behaviour="act")
    for name in ("t.csv", "t.tsv.gz", "t.parquet"):
        p = tmp_path / name
        if name.endswith("parquet"):
            frame.to_parquet(p)
        else:
            frame.to_csv(p, sep="," if "csv" in name else "\t", index=False)
        df = read_interactions(p, columns=cols)
        assert df["user"].tolist() == ["a", "b"], name
        assert df["item"].tolist() == [10, 11] and df["rating"].tolist() == [1.0, 4.0]
        assert df["behaviour"].tolist() == ["buy", "click"]


def test_real_shared_files() -> None:
    ml1m = read_interactions(shared_file("ml-1m/interactions.tsv.gz"))
    assert (len(ml1m), ml1m["user"].nunique(), ml1m["item"].nunique()) == (999_611, 6_040, 3_416)
    ml100k = read_interactions(shared_file("ml-100k/u.data"))
    assert (len(ml100k), ml100k["user"].nunique(), ml100k["item"].nunique()) == (100_000, 943, 1_682)
    assert ml100k["rating"].between(1, 5).all()


# ------------------------------------------------------------------------------------ bad input


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_interactions(tmp_path / "nope.tsv")
    with pytest.raises(DataError, match="is a directory"):
        read_interactions(tmp_path)


def test_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file is empty"):
        read_interactions(write(tmp_path / "e.tsv", ""))
    with pytest.raises(DataError, match="no interactions"):
        read_interactions(write(tmp_path / "h.tsv", "user_id\titem_id\ttimestamp\n"))


def test_wrong_delimiter_is_named(tmp_path: Path) -> None:
    p = write(tmp_path / "u.data", "1,10,5,978300760\n")
    with pytest.raises(DataError, match=r"u.data:1: expected 4 TAB-separated.*comma-separated"):
        read_interactions(p)
    p = write(tmp_path / "ratings.dat", "1\t10\t5\t978300760\n")
    with pytest.raises(DataError, match=r"ratings.dat:1: wrong delimiter.*'::'.*TAB"):
        read_interactions(p, "ml-1m")
    p = write(tmp_path / "x.tsv", "user_id,item_id,timestamp\n1,2,3\n")
    with pytest.raises(DataError, match=r"x.tsv:1: wrong delimiter"):
        read_interactions(p)


@pytest.mark.parametrize("gz", [False, True])
def test_non_numeric_timestamp_names_line(tmp_path: Path, gz: bool) -> None:
    rows = "".join(f"{u}\t{i}\t{1000 + i}\n" for u in range(3) for i in range(5))
    text = "user_id\titem_id\ttimestamp\n" + rows + "9\t9\tyesterday\n"
    p = write(tmp_path / ("t.tsv.gz" if gz else "t.tsv"), text, gz=gz)
    with pytest.raises(DataError, match=r"t.tsv(.gz)?:17: timestamp is not a number: 'yesterday'"):
        read_interactions(p)


def test_ragged_line_is_named(tmp_path: Path) -> None:
    p = write(tmp_path / "u.data", "1\t2\t3\t4\n1\t2\t3\t4\n1\t2\t3\t4\t5\t6\n")
    with pytest.raises(DataError, match=r"u.data:3: expected 4 fields, found 6"):
        read_interactions(p)


def test_missing_columns_are_listed(tmp_path: Path) -> None:
    p = write(tmp_path / "t.csv", "uid,item_id,timestamp\n1,2,3\n")
    with pytest.raises(DataError, match=r"missing column\(s\) 'user_id'; found uid, item_id, timestamp"):
        read_interactions(p)


def test_truncated_gzip(tmp_path: Path) -> None:
    full = gzip.compress(("user_id\titem_id\ttimestamp\n" + "1\t2\t3\n" * 50_000).encode())
    p = tmp_path / "t.tsv.gz"
    p.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError, match="truncated or corrupt gzip"):
        read_interactions(p)


def test_blank_lines_are_skipped_and_lines_still_exact(tmp_path: Path) -> None:
    p = write(tmp_path / "t.tsv", "user_id\titem_id\ttimestamp\n1\t2\t3\n\n1\t3\tx\n")
    with pytest.raises(DataError, match=r"t.tsv:4: timestamp"):
        read_interactions(p)


def test_undetectable_format(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"set data\.format"):
        read_interactions(write(tmp_path / "data.bin", "x y z\n"))


def test_ids_stay_exact(tmp_path: Path) -> None:
    big = 2**60 + 1  # too long for the integer fast path: kept as an exact string
    text = f"user_id\titem_id\ttimestamp\n{big}\t7\t2\n{big}\t007\t3\n"
    df = read_interactions(write(tmp_path / "t.tsv", text))
    assert str(df["user"][0]) == str(big)
    assert df["item"].tolist() == ["7", "007"]  # two distinct ids, not merged into 7


def test_duplicate_rows_are_dropped_and_counted(tmp_path: Path) -> None:
    """Duplicates are a documented cleaning step (data.dedup) whose count the step table shows."""
    from scalelab.cli import main
    from scalelab.config import load_config
    from scalelab.data.loader import load_dataset

    rows = [f"{u}::{i}::5::{100 + i}" for u in range(1, 6) for i in range(1, 8)]
    p = write(tmp_path / "ratings.dat", "\n".join(rows + rows[:4]) + "\n")
    sets = [f"data.path={p}", "data.min_user_count=1", "data.min_item_count=1"]
    data = load_dataset(load_config(None, sets).data)
    steps = {s["step"]: s["interactions"] for s in data.meta["steps"]}
    assert steps["read"] == 39 and steps["dedup exact rows"] == 35 and data.num_interactions == 35
    kept = load_dataset(load_config(None, [*sets, "data.dedup=none"]).data)
    assert kept.num_interactions == 39  # switched off, they stay
    with pytest.raises(SystemExit) as info:
        main(["data", "prepare", *[a for s in sets for a in ("--set", s)]])
    assert info.value.code == 0


def test_ids_may_be_strings_but_ml_ids_must_be_numbers(tmp_path: Path) -> None:
    t = read_interactions(
        write(tmp_path / "t.tsv", "user_id\titem_id\ttimestamp\nu1\tB00X\t3\nu1\tB00Y\t4\n")
    )
    assert list(t.item.astype(str)) == ["B00X", "B00Y"]
    with pytest.raises(DataError, match=r"ratings.dat:2: user id is not an integer: .abc."):
        read_interactions(write(tmp_path / "ratings.dat", "1::10::5::100\nabc::10::5::101\n"), "ml-1m")
