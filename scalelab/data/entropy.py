"""Approximate entropy (Pincus 1991) of item sequences with exact matching, in O(n m).

Item ids are nominal, so only r < 1 (exact matching) is meaningful. Then, for a series of length
n, Phi^m = (1/N_m) sum_i ln(c_i / N_m) over the N_m = n - m + 1 templates, where c_i counts the
templates equal to template i (self-match included). Grouping equal templates gives
Phi^m = -H_m, the plug-in entropy of the empirical m-gram distribution, so

    ApEn(m) = Phi^m - Phi^{m+1} = H_{m+1} - H_m.

k-grams are identified by iterated factorisation: the id of the k-gram starting at i is the
factorised pair (id of the (k-1)-gram at i, item at i+k-1), so counting k-grams for all users costs
one hash pass per k (written by hand: the common libraries run the O(n^2 m) double loop).

Two quantities:
- per-user ApEn averaged over users (the Performance-Law convention, last K items per user);
- pooled ApEn: k-grams counted over all users' sequences together (never across a user boundary),
  the corpus-level conditional entropy of the next item given the previous m. On data where a user
  never repeats an item (MovieLens), per-user ApEn only depends on the sequence lengths; the pooled
  value is the meaningful one there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class _Windows:
    seq: np.ndarray  # flat item ids after truncation
    user: np.ndarray  # user index of each position
    pos: np.ndarray  # position inside the user's (truncated) sequence
    length: np.ndarray  # (truncated) length of the user owning each position
    num_users: int


def _windows(ptr: np.ndarray, items: np.ndarray, last: int | None) -> _Windows:
    lengths = np.diff(ptr).astype(np.int64)
    keep = lengths if last is None else np.minimum(lengths, last)
    starts = ptr[1:] - keep
    new_ptr = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(keep, out=new_ptr[1:])
    user = np.repeat(np.arange(len(keep)), keep)
    pos = np.arange(new_ptr[-1], dtype=np.int64) - new_ptr[user]
    seq = np.asarray(items, dtype=np.int64)[starts[user] + pos]
    return _Windows(seq, user, pos, keep[user], len(keep))


def _kgram_ids(w: _Windows, kmax: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """For k = 1..kmax: (valid start positions, k-gram id at each of them)."""
    base = int(w.seq.max()) + 1 if len(w.seq) else 1
    out = []
    valid = np.flatnonzero(w.pos + 1 <= w.length)
    ids = pd.factorize(w.seq)[0].astype(np.int64)
    out.append((valid, ids))
    full = ids  # k-gram id per position (garbage where invalid)
    for k in range(2, kmax + 1):
        valid = np.flatnonzero(w.pos + k <= w.length)
        code = full[valid] * base + w.seq[valid + k - 1]
        ids = pd.factorize(code)[0].astype(np.int64)
        full = np.full(len(w.seq), -1, dtype=np.int64)
        full[valid] = ids
        out.append((valid, ids))
    return out


def _entropy_from_counts(counts: np.ndarray) -> float:
    n = counts.sum()
    return float(np.log(n) - (counts * np.log(counts)).sum() / n) if n > 0 else float("nan")


def apen_per_user(ptr: np.ndarray, items: np.ndarray, m: int = 2, last: int | None = None) -> np.ndarray:
    """ApEn(m, r<1) of every user's (last `last` items) sequence; NaN where length <= m."""
    if m < 1:
        raise ValueError("m must be >= 1")
    w = _windows(ptr, items, last)
    grams = _kgram_ids(w, m + 1)
    h = []
    for valid, ids in grams[m - 1 : m + 1]:  # k = m and k = m + 1
        user = w.user[valid]
        ngram = int(ids.max()) + 1 if len(ids) else 1
        pair_codes, pair_uniques = pd.factorize(user * ngram + ids)
        c = np.bincount(pair_codes).astype(np.float64)
        pair_user = pair_uniques // ngram
        s = np.bincount(pair_user, weights=c * np.log(c), minlength=w.num_users)
        n = np.bincount(user, minlength=w.num_users).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            h.append(np.log(n) - s / n)
    apen = h[1] - h[0]
    lengths = np.minimum(np.diff(ptr), last) if last is not None else np.diff(ptr)
    apen[lengths <= m] = np.nan
    return apen


def apen_pooled(ptr: np.ndarray, items: np.ndarray, m: int = 2, last: int | None = None) -> float:
    """Corpus-level ApEn: H_{m+1} - H_m with k-grams pooled over users (none crosses a user)."""
    if m < 1:
        raise ValueError("m must be >= 1")
    w = _windows(ptr, items, last)
    grams = _kgram_ids(w, m + 1)
    hm, hm1 = (_entropy_from_counts(np.bincount(ids).astype(np.float64)) for _, ids in grams[m - 1 : m + 1])
    return hm1 - hm


def apen_sequence(seq: np.ndarray, m: int = 2) -> float:
    """ApEn(m, r<1) of a single series (NaN when len(seq) <= m)."""
    seq = np.asarray(seq)
    return float(apen_per_user(np.array([0, len(seq)]), seq, m)[0])


@dataclass(frozen=True)
class ApEnSummary:
    m: int
    last: int | None
    per_user_mean: float
    users_used: int
    pooled: float


def apen_summary(ptr: np.ndarray, items: np.ndarray, m: int = 2, last: int | None = 50) -> ApEnSummary:
    """Per-user mean (over users longer than m) and pooled ApEn, with the options used."""
    per_user = apen_per_user(ptr, items, m, last)
    ok = ~np.isnan(per_user)
    mean = float(per_user[ok].mean()) if ok.any() else float("nan")
    return ApEnSummary(m, last, mean, int(ok.sum()), apen_pooled(ptr, items, m, last))
