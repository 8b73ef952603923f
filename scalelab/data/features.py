"""Item side information as bags of tokens, one bag per item.

Readers, chosen from the file's content:
- MovieLens-1M `movies.dat`: `id::title::Genre1|Genre2` -> genre tokens.
- MovieLens-100K `u.item`: `id|title|date|video date|url|19 genre flags` -> genre tokens (the genre
  order of the dataset's u.genre).
- A TSV/CSV with a header `item_id<TAB>title` (Amazon `item_titles.tsv.gz`) -> lower-cased title
  words.
Every token is hashed (crc32, stable across processes, unlike Python's hash) into `buckets` ids
1..buckets, so genre and word tokens share one embedding table and unseen words need no
vocabulary. Items without an entry get an empty bag.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scalelab.errors import DataError

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip
MAX_TOKENS = 32  # per item; long titles are cut
_WORD = re.compile(r"[a-z0-9]+")


def token_id(kind: str, token: str, buckets: int) -> int:
    return zlib.crc32(f"{kind}:{token}".encode()) % buckets + 1


def _lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="latin-1") as f:
            return f.read().splitlines()
    except OSError as e:
        raise DataError(f"{path}: cannot read item features ({e.__class__.__name__}: {e})") from None


def read_token_bags(path: str | Path) -> dict[str, list[tuple[str, str]]]:
    """Raw item id -> [(kind, token), ...] from one feature file (format by content)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: no such file (data.item_features)")
    lines = [x for x in _lines(p) if x.strip()]
    if not lines:
        raise DataError(f"{p}: empty item feature file")
    bags: dict[str, list[tuple[str, str]]] = {}
    first = lines[0]
    if "::" in first:  # movies.dat
        for n, line in enumerate(lines, start=1):
            parts = line.split("::")
            if len(parts) != 3:
                raise DataError(f"{p}:{n}: expected id::title::genres")
            bags[parts[0].strip()] = [("genre", g) for g in parts[2].split("|") if g]
    elif first.count("|") >= 5 + len(ML100K_GENRES) - 1:  # u.item
        for n, line in enumerate(lines, start=1):
            parts = line.split("|")
            flags = parts[-len(ML100K_GENRES) :]
            if len(parts) < 5 + len(ML100K_GENRES) or any(f not in ("0", "1") for f in flags):
                raise DataError(f"{p}:{n}: expected id|title|date|video date|url|19 genre flags")
            bags[parts[0].strip()] = [
                ("genre", g) for g, f in zip(ML100K_GENRES, flags, strict=True) if f == "1"
            ]
    else:  # item_id <sep> title, with a header
        sep = "\t" if "\t" in first else ","
        header = [h.strip().lower() for h in first.split(sep)]
        if len(header) < 2 or header[0] not in ("item_id", "item", "asin") or header[1] != "title":
            raise DataError(f"{p}:1: expected a header 'item_id{sep}title' (or a movies.dat / u.item file)")
        for line in lines[1:]:
            item, _, title = line.partition(sep)
            bags[item.strip()] = [("word", w) for w in _WORD.findall(title.lower())]
    return bags


def item_token_matrix(
    sources: Sequence[tuple[str | Path, str]], item_ids: np.ndarray, buckets: int
) -> tuple[np.ndarray, dict[str, int]]:
    """(num_items + 1, F) int64 token ids (0 = none; row 0 = padding) for the items `item_ids`
    (raw ids, [0] = placeholder) from feature files given with the prefix their items carry (a
    domain's `name:`, or '' for single-domain data); and coverage counts."""
    bags: dict[str, list[tuple[str, str]]] = {}
    for path, prefix in sources:
        bags.update({prefix + k: v for k, v in read_token_bags(path).items()})
    rows = [bags.get(str(i), [])[:MAX_TOKENS] for i in item_ids[1:]]
    width = max(1, max((len(r) for r in rows), default=1))
    out = np.zeros((len(item_ids), width), dtype=np.int64)
    for i, r in enumerate(rows, start=1):
        out[i, : len(r)] = [token_id(k, t, buckets) for k, t in r]
    covered = sum(1 for r in rows if r)
    return out, {"items_with_features": covered, "items_without_features": len(rows) - covered}
