"""Synthetic interaction data with controllable structure and entropy.

A Markov chain over a Zipf-popular catalogue: every item has `branching` fixed successors (drawn
by popularity). A user starts at a popular item; at each step, with probability 1 - randomness,
the next item is one of the current item's successors (chosen uniformly), otherwise a fresh draw
from the popularity distribution. randomness = 0 and branching = 1 give a deterministic chain
(approximate entropy near 0); randomness = 1 gives i.i.d. popularity draws (maximal entropy).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalelab.config import SyntheticConfig

_START_TIME = 1_600_000_000  # 2020-09-13, unix seconds


def zipf_probabilities(num_items: int, exponent: float) -> np.ndarray:
    p = 1.0 / np.arange(1, num_items + 1, dtype=np.float64) ** exponent
    return p / p.sum()


def generate_interactions(cfg: SyntheticConfig) -> pd.DataFrame:
    """Interactions table (user, item, timestamp, line) drawn from the process of `cfg`; with several
    domains, one independent process per domain over its own items (domain k owns items
    k * num_items + 1 ..), the same users in every domain, and a `domain` column d1, d2, ..."""
    if cfg.domains == 1:
        return _one_domain(cfg)
    parts = []
    for k in range(cfg.domains):
        part = _one_domain(cfg.model_copy(update={"seed": cfg.seed * 1_000 + k, "domains": 1}))
        part["item"] += k * cfg.num_items
        part["domain"] = f"d{k + 1}"
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["line"] = np.arange(1, len(out) + 1, dtype=np.int64)
    return out


def _one_domain(cfg: SyntheticConfig) -> pd.DataFrame:
    rng = np.random.default_rng(cfg.seed)
    pop = zipf_probabilities(cfg.num_items, cfg.zipf_exponent)
    cdf = np.cumsum(pop)

    def draw(n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), cfg.num_items - 1)

    successors = draw(cfg.num_items * cfg.branching).reshape(cfg.num_items, cfg.branching)
    extra = cfg.mean_seq_len - cfg.min_seq_len
    lengths = cfg.min_seq_len + (rng.geometric(1.0 / (extra + 1), cfg.num_users) - 1 if extra > 0 else 0)
    lengths = np.asarray(lengths, dtype=np.int64)

    # Simulate users in lock-step, one position at a time (vectorised over a chunk of users, so
    # memory stays bounded for large datasets).
    chunks = []
    max_len = int(lengths.max())
    chunk = max(1, 20_000_000 // max_len)
    for lo in range(0, cfg.num_users, chunk):
        lens = lengths[lo : lo + chunk]
        n = len(lens)
        seqs = np.empty((max_len, n), dtype=np.int64)
        seqs[0] = draw(n)
        for t in range(1, int(lens.max())):
            follow = rng.random(n) >= cfg.randomness
            nxt = successors[seqs[t - 1], rng.integers(0, cfg.branching, n)]
            seqs[t] = np.where(follow, nxt, draw(n))
        valid = (np.arange(max_len)[:, None] < lens[None, :]).T  # (n, max_len): user-major order
        chunks.append(seqs.T[valid])
    item = np.concatenate(chunks)
    user = np.repeat(np.arange(cfg.num_users), lengths)
    gaps = np.maximum(1, np.rint(rng.exponential(cfg.mean_gap_seconds, len(item)))).astype(np.int64)
    start = _START_TIME + rng.integers(0, 365 * 86_400, cfg.num_users)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    csum = np.cumsum(gaps)
    timestamps = start[user] + csum - csum[first][user]
    return pd.DataFrame(
        {
            "user": user + 1,
            "item": item + 1,
            "timestamp": timestamps,
            "line": np.arange(1, len(item) + 1, dtype=np.int64),
        }
    )
