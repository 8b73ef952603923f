"""Readers for the interaction file formats recommendation research uses.

Every reader returns an `Interactions` table with columns `user`, `item`, `timestamp` (int64 unix
seconds, or the row number where a format has no time) and, where the file has them, `rating`,
`behaviour`, `domain`; `line` holds the 1-based file line of each row so later errors can point at
it. Malformed input raises `DataError` naming the file and, where it can, the line.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

import numpy as np
import pandas as pd

from scalelab.config import ColumnMap, DataFormat
from scalelab.errors import DataError

Interactions: TypeAlias = pd.DataFrame  # columns: user, item, timestamp, [rating, behaviour, domain], line

_DELIMITER_NAMES = {"\t": "TAB", ",": "comma", "::": "'::'", " ": "space", ";": "semicolon", "|": "'|'"}


# ------------------------------------------------------------------------------------ detection


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="latin-1")
    return open(path, encoding="latin-1", newline="")


def first_line(path: Path) -> str:
    """The first non-empty line of a (possibly gzipped) text file, or '' for an empty file."""
    try:
        with _open_text(path) as f:
            for line in f:
                if line.strip():
                    return line.rstrip("\r\n")
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({_describe_io_error(e)})") from None
    return ""


def detect_format(path: Path) -> DataFormat:
    """Guess the format from the file name and first line."""
    name = path.name.lower()
    stem = name.removesuffix(".gz")
    if stem.endswith(".parquet"):
        return "parquet"
    if stem.endswith((".json", ".jsonl")):
        return "amazon-json"
    head = first_line(path)
    if stem == "u.data":
        return "ml-100k"
    if stem.endswith(".dat") or "::" in head:
        return "ml-1m"
    if stem.endswith(".csv"):
        if head.replace(" ", "").lower().startswith("userid,movieid"):
            return "ml-20m"
        fields = head.split(",")
        if len(fields) == 4 and _is_number(fields[2]) and _is_number(fields[3]):
            return "amazon-csv"  # SNAP ratings-only CSV: user,item,rating,time without a header
        return "csv"
    if stem.endswith(".tsv"):
        return "tsv"
    if stem.endswith(".txt"):
        return "sasrec"
    raise DataError(
        f"{path}: cannot tell the format from the name; set data.format "
        "(ml-1m, ml-20m, ml-100k, amazon-csv, amazon-json, sasrec, csv, tsv, parquet)"
    )


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------- reading


def read_interactions(
    path: str | Path, fmt: DataFormat = "auto", columns: ColumnMap | None = None
) -> Interactions:
    """Read an interaction file of any supported format into the common table."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file")
    if p.is_dir():
        raise DataError(f"{p}: is a directory; pass the interaction file inside it")
    if p.stat().st_size == 0:
        raise DataError(f"{p}: file is empty")
    fmt = detect_format(p) if fmt == "auto" else fmt
    reader = _READERS[fmt]
    df = reader(p, columns or ColumnMap())
    if len(df) == 0:
        raise DataError(f"{p}: no interactions in file")
    return df


def _read_delimited(
    path: Path,
    sep: str,
    ncols: int,
    *,
    header: bool,
    what: str,
    text_cols: list[str] | list[int] | None = None,
    encoding: str = "latin-1",
) -> tuple[pd.DataFrame, int]:
    """Read a delimited file, checking the field count; returns (frame, header lines).

    `text_cols` are read as strings (ids such as ASINs keep their leading zeros)."""
    head = first_line(path)
    if not head:
        raise DataError(f"{path}: file is empty")
    nfields = len(head.split(sep))
    if nfields != ncols:
        guess = max(_DELIMITER_NAMES, key=lambda d: head.count(d))
        hint = (
            f"; it looks {_DELIMITER_NAMES[guess]}-separated, wrong delimiter or format?"
            if head.count(guess) and guess != sep
            else ""
        )
        raise DataError(
            f"{path}:1: expected {ncols} {_DELIMITER_NAMES.get(sep, repr(sep))}-separated fields for "
            f"{what}, found {nfields}{hint}"
        )
    try:
        df = pd.read_csv(
            path,
            sep=sep,
            header=0 if header else None,
            keep_default_na=False,  # an empty field stays '' so it can be reported, not NaN
            dtype=dict.fromkeys(text_cols, str) if text_cols else None,
            skip_blank_lines=False,
            engine="c",
            encoding=encoding,
            compression="infer",
        )
    except pd.errors.ParserError as e:
        m = re.search(r"line (\d+), saw (\d+)", str(e))
        if m:
            raise DataError(
                f"{path}:{m.group(1)}: expected {ncols} fields, found {m.group(2)} (malformed line)"
            ) from None
        raise DataError(f"{path}: cannot parse ({e})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({_describe_io_error(e)})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df, int(header)


def _describe_io_error(e: BaseException) -> str:
    if isinstance(e, EOFError) or "end-of-stream" in str(e):
        return "truncated or corrupt gzip"
    if isinstance(e, gzip.BadGzipFile):
        return "not a valid gzip file"
    return f"{e.__class__.__name__}: {e}"


def _assemble(
    path: Path,
    raw: pd.DataFrame,
    header_lines: int,
    user: str,
    item: str,
    timestamp: str | None,
    rating: str | None = None,
    behaviour: str | None = None,
    domain: str | None = None,
    numeric_ids: bool = False,
) -> Interactions:
    """Convert string columns to the common table, naming the first bad line on failure.
    `numeric_ids`: the format defines integer ids (MovieLens), so anything else is an error."""
    missing = [
        c for c in (user, item, timestamp, rating, behaviour, domain) if c is not None and c not in raw
    ]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; "
            f"found {', '.join(map(str, raw.columns))} (set data.columns)"
        )
    line = np.arange(len(raw), dtype=np.int64) + 1 + header_lines
    if not all(pd.api.types.is_numeric_dtype(raw[c]) for c in raw.columns):
        blank = (raw.astype(str) == "").all(axis=1).to_numpy()
        if blank.any():  # blank lines are skipped, not errors
            raw, line = raw.loc[~blank], line[~blank]
    ids = _int_ids if numeric_ids else _ids
    out = pd.DataFrame(
        {"user": ids(path, raw[user], line, "user"), "item": ids(path, raw[item], line, "item")}
    )
    if timestamp is not None:
        out["timestamp"] = _integers(path, raw[timestamp], line, "timestamp")
    else:
        out["timestamp"] = np.arange(len(raw), dtype=np.int64)
    if rating is not None:
        out["rating"] = _floats(path, raw[rating], line, "rating")
    if behaviour is not None:
        out["behaviour"] = _ids(path, raw[behaviour], line, "behaviour")
    if domain is not None:
        out["domain"] = _ids(path, raw[domain], line, "domain")
    out["line"] = line
    return out.reset_index(drop=True)


def _ids(path: Path, col: pd.Series, line: np.ndarray, what: str) -> np.ndarray:
    if pd.api.types.is_integer_dtype(col):
        return col.to_numpy(dtype=np.int64)
    values = col.astype(str).str.strip()
    empty = (values == "").to_numpy()
    if empty.any():
        raise DataError(f"{path}:{line[np.argmax(empty)]}: empty {what} id")
    # Canonical integers (no sign tricks, no leading zeros, fit in int64) become int64: smaller and
    # faster. Anything else stays a string, so '0205616461' and '205616461' remain two ids.
    if values.str.fullmatch(r"0|-?[1-9]\d{0,17}").all():
        return values.astype(np.int64).to_numpy()
    return values.to_numpy(dtype=str)


def _int_ids(path: Path, col: pd.Series, line: np.ndarray, what: str) -> np.ndarray:
    if pd.api.types.is_integer_dtype(col):
        return col.to_numpy(dtype=np.int64)
    values = col.astype(str).str.strip()
    bad = ~values.str.fullmatch(r"\d{1,18}").to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{path}:{line[i]}: {what} id is not an integer: {col.iloc[i]!r}")
    return values.astype(np.int64).to_numpy()


# Timestamps beyond +-2^53 (285 million years in seconds, 2255 AD in microseconds) are not times: they
# are corrupt values, and past +-2^63 they would silently wrap around in int64.
TIMESTAMP_LIMIT = 2**53


def _integers(path: Path, col: pd.Series, line: np.ndarray, what: str) -> np.ndarray:
    num = col if pd.api.types.is_integer_dtype(col) else _numeric(col)
    bad = num.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{path}:{line[i]}: {what} is not a number: {col.iloc[i]!r}")
    values = num.to_numpy(dtype=np.float64)
    out_of_range = ~(np.abs(values) <= TIMESTAMP_LIMIT)  # also catches inf
    if out_of_range.any():
        i = int(np.argmax(out_of_range))
        raise DataError(
            f"{path}:{line[i]}: {what} out of range: {col.iloc[i]} (expected |value| <= 2^53, "
            "e.g. unix seconds or milliseconds)"
        )
    if pd.api.types.is_integer_dtype(col):
        return col.to_numpy(dtype=np.int64)
    return np.floor(values).astype(np.int64)


def _floats(path: Path, col: pd.Series, line: np.ndarray, what: str) -> np.ndarray:
    num = _numeric(col)
    bad = num.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{path}:{line[i]}: {what} is not a number: {col.iloc[i]!r}")
    return num.to_numpy(dtype=np.float32)


def _numeric(col: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(col):
        return col
    return pd.to_numeric(col.astype(str).str.strip(), errors="coerce")


# ------------------------------------------------------------------------------------- formats


def read_ml_1m(path: Path, _: ColumnMap) -> Interactions:
    """MovieLens-1M/10M `ratings.dat`: `UserID::MovieID::Rating::Timestamp`, latin-1."""
    # Splitting on ':' keeps pandas' fast C parser; '::' yields empty fields at odd positions.
    head = first_line(path)
    if "::" not in head:
        raise _wrong_delimiter(path, head, "::", "MovieLens ratings.dat (UserID::MovieID::Rating::Timestamp)")
    raw, hdr = _read_delimited(path, ":", 7, header=False, what="UserID::MovieID::Rating::Timestamp")
    raw = raw.iloc[:, [0, 2, 4, 6]]
    raw.columns = ["u", "i", "r", "t"]
    return _assemble(path, raw, hdr, "u", "i", "t", rating="r", numeric_ids=True)


def read_ml_20m(path: Path, _: ColumnMap) -> Interactions:
    """MovieLens-20M/25M `ratings.csv` with header `userId,movieId,rating,timestamp`."""
    raw, hdr = _read_delimited(path, ",", 4, header=True, what="userId,movieId,rating,timestamp")
    return _assemble(path, raw, hdr, "userId", "movieId", "timestamp", rating="rating", numeric_ids=True)


def read_ml_100k(path: Path, _: ColumnMap) -> Interactions:
    """MovieLens-100K `u.data`: TAB-separated `user item rating timestamp`, no header."""
    raw, hdr = _read_delimited(path, "\t", 4, header=False, what="u.data (user item rating timestamp)")
    raw.columns = ["u", "i", "r", "t"]
    return _assemble(path, raw, hdr, "u", "i", "t", rating="r", numeric_ids=True)


def read_amazon_csv(path: Path, _: ColumnMap) -> Interactions:
    """Amazon SNAP 2014 ratings-only CSV `user,item,rating,timestamp`, no header."""
    raw, hdr = _read_delimited(
        path, ",", 4, header=False, what="Amazon ratings CSV (user,item,rating,time)", text_cols=[0, 1]
    )
    raw.columns = ["u", "i", "r", "t"]
    return _assemble(path, raw, hdr, "u", "i", "t", rating="r")


def read_amazon_json(path: Path, _: ColumnMap) -> Interactions:
    """Amazon review JSON lines (2014 5-core `reviews_*_5.json.gz` or 2018): reviewerID, asin, ...

    The 2014 full dumps are Python literals rather than strict JSON; both are accepted.
    """
    users: list[str] = []
    items: list[str] = []
    times: list[int] = []
    ratings: list[float] = []
    lines: list[int] = []
    try:
        with _open_text(path) as f:
            for n, text in enumerate(f, start=1):
                text = text.strip()
                if not text:
                    continue
                try:
                    rec = json.loads(text)
                except json.JSONDecodeError:
                    try:
                        rec = ast.literal_eval(text)
                    except (ValueError, SyntaxError):
                        raise DataError(f"{path}:{n}: not a JSON object") from None
                if not isinstance(rec, dict):
                    raise DataError(f"{path}:{n}: not a JSON object")
                try:
                    users.append(str(rec["reviewerID"]))
                    items.append(str(rec["asin"]))
                    t = int(rec["unixReviewTime"])
                    if abs(t) > TIMESTAMP_LIMIT:
                        raise DataError(
                            f"{path}:{n}: unixReviewTime out of range: {t} (expected |value| <= 2^53)"
                        )
                    times.append(t)
                    ratings.append(float(rec.get("overall", np.nan)))
                except KeyError as e:
                    raise DataError(f"{path}:{n}: missing field {e.args[0]!r}") from None
                except (TypeError, ValueError):
                    raise DataError(f"{path}:{n}: unixReviewTime or overall is not a number") from None
                lines.append(n)
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({_describe_io_error(e)})") from None
    return pd.DataFrame(
        {
            "user": np.asarray(users, dtype=str),
            "item": np.asarray(items, dtype=str),
            "timestamp": np.asarray(times, dtype=np.int64),
            "rating": np.asarray(ratings, dtype=np.float32),
            "line": np.asarray(lines, dtype=np.int64),
        }
    )


def read_sasrec(path: Path, _: ColumnMap) -> Interactions:
    """SASRec-style `user item` per line, already in time order (the row order is the time)."""
    head = first_line(path)
    if len(head.split()) != 2:
        raise _wrong_delimiter(path, head, " ", "SASRec text (user item)")
    raw, hdr = _read_delimited(path, " ", 2, header=False, what="SASRec text (user item)")
    raw.columns = ["u", "i"]
    return _assemble(path, raw, hdr, "u", "i", None)


def _generic(sep: str) -> Callable[[Path, ColumnMap], Interactions]:
    def read(path: Path, cols: ColumnMap) -> Interactions:
        head = first_line(path)
        ncols = len(head.split(sep))
        if ncols < 2:
            raise _wrong_delimiter(path, head, sep, "table with a header")
        raw, hdr = _read_delimited(
            path, sep, ncols, header=True, what="the header's columns", text_cols=[cols.user, cols.item]
        )
        return _assemble(
            path, raw, hdr, cols.user, cols.item, cols.timestamp, cols.rating, cols.behaviour, cols.domain
        )

    read.__doc__ = (
        f"Generic {_DELIMITER_NAMES[sep]}-separated table with a header; columns from data.columns."
    )
    return read


def read_parquet(path: Path, cols: ColumnMap) -> Interactions:
    """Parquet table; columns from data.columns."""
    try:
        raw = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({e.__class__.__name__})") from None
    return _assemble(
        path, raw, 0, cols.user, cols.item, cols.timestamp, cols.rating, cols.behaviour, cols.domain
    )


def _wrong_delimiter(path: Path, head: str, sep: str, what: str) -> DataError:
    counts = {d: head.count(d) for d in _DELIMITER_NAMES if d != sep}
    guess = max(counts, key=counts.__getitem__)
    seen = f"; line 1 looks {_DELIMITER_NAMES[guess]}-separated" if counts[guess] else ""
    return DataError(
        f"{path}:1: wrong delimiter: expected {_DELIMITER_NAMES.get(sep, repr(sep))}-separated {what}{seen}"
    )


_READERS: dict[str, Callable[[Path, ColumnMap], Interactions]] = {
    "ml-1m": read_ml_1m,
    "ml-20m": read_ml_20m,
    "ml-100k": read_ml_100k,
    "amazon-csv": read_amazon_csv,
    "amazon-json": read_amazon_json,
    "sasrec": read_sasrec,
    "csv": _generic(","),
    "tsv": _generic("\t"),
    "parquet": read_parquet,
}
