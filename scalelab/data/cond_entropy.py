"""Bias-corrected conditional entropy of the next item given the previous m: the data-quality term.

Why not the pooled ApEn: ApEn(m) = H_{m+1} - H_m counts m-grams and (m+1)-grams over different
template sets (every m-gram, but only the (m+1)-grams that fit), so on short sequences the m-gram
entropy includes the last m-gram of each user, which has no successor, and the difference can be
negative. And a plug-in entropy is biased low by about (K-1)/(2n) per distribution: where almost
every context is unique (sparse data) it measures sparsity, not predictability.

The estimate here, for every m:
1. Consistent templates: one (context, next item) pair per position that has m predecessors in the
   same user's (truncated) sequence; contexts never cross a user.
2. H(next | context) = sum_x (n_x / N) H_x, each context's next-item entropy H_x estimated by the
   coverage-adjusted Horvitz-Thompson estimator of Chao & Shen (2003): sample coverage
   C_x = 1 - f1_x / n_x (f1_x: next items seen once after x; f1 = n - 1 when all are singletons),
   p~ = C_x n_xy / n_x, H_x = -sum_y p~ ln p~ / (1 - (1 - p~)^n_x). Every H_x >= 0, so the
   estimate is a valid (non-negative) conditional entropy. The plug-in and Miller-Madow values on
   the same templates are reported beside it.
3. Coverage: the share of contexts seen once, the share of pairs whose context was seen once (those
   contribute 0: nothing is known about their next-item distribution) and the pooled sample coverage
   of the conditional distributions, 1 - (pairs whose next item was seen once after its context) / N.
   Where that coverage is below `MIN_COVERAGE` the estimate is dominated by what was never seen: it
   is flagged, and `choose_m` picks the largest m (up to `m_max`) whose estimate is not.

Written by hand: no maintained library estimates conditional entropies from pooled n-gram counts
with a coverage adjustment (scipy.stats.entropy is the plug-in of one distribution).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_COVERAGE = 0.8  # below it the unseen mass of the conditional distributions is too large to trust


@dataclass(frozen=True)
class ConditionalEntropy:
    m: int  # context length (0: the item distribution itself)
    last: int | None  # items per user used (the most recent)
    value: float  # Chao-Shen estimate of H(next | previous m), nats
    plug_in: float  # same templates, plug-in (biased low)
    miller_madow: float  # plug-in + (K_x - 1) / (2 N) summed over contexts
    pairs: int  # (context, next) pairs counted
    contexts: int  # distinct contexts
    singleton_contexts: float  # share of distinct contexts seen once
    singleton_mass: float  # share of pairs whose context was seen once
    coverage: float  # pooled sample coverage of the next-item distributions (Good-Turing)

    @property
    def reliable(self) -> bool:
        return bool(self.pairs > 0 and self.coverage >= MIN_COVERAGE)

    def warning(self) -> str | None:
        if self.pairs == 0:
            return f"no user has more than {self.m} items: the m={self.m} entropy is undefined"
        if self.reliable:
            return None
        return (
            f"m={self.m}: coverage {self.coverage:.2f} < {MIN_COVERAGE} ({1 - self.coverage:.0%} of the pairs are "
            f"a next item seen once after its context; {self.singleton_contexts:.0%} of the {self.contexts:,} "
            "contexts seen once): the estimate reflects sparsity more than predictability"
        )


def _pairs(ptr: np.ndarray, items: np.ndarray, m: int, last: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(context id, next item id) for every position with m predecessors in its user's window."""
    ptr = np.asarray(ptr, dtype=np.int64)
    lengths = np.diff(ptr)
    keep = lengths if last is None else np.minimum(lengths, last)
    starts = ptr[1:] - keep
    user = np.repeat(np.arange(len(keep)), keep)
    offset = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(keep, out=offset[1:])
    pos = np.arange(offset[-1], dtype=np.int64) - offset[user]
    seq = pd.factorize(np.asarray(items)[starts[user] + pos])[0].astype(np.int64)
    target = np.flatnonzero(pos >= m)  # positions with a full context before them
    context = np.zeros(len(target), dtype=np.int64)
    base = int(seq.max()) + 1 if len(seq) else 1
    for k in range(m, 0, -1):  # context id: factorised (context so far, item k back)
        context = pd.factorize(context * base + seq[target - k])[0].astype(np.int64)
    return context, seq[target]


def conditional_entropy(
    ptr: np.ndarray, items: np.ndarray, m: int = 1, last: int | None = None
) -> ConditionalEntropy:
    """H(next item | previous m items), pooled over users, with coverage statistics."""
    if m < 0:
        raise ValueError("m must be >= 0")
    context, nxt = _pairs(ptr, items, m, last)
    n = len(context)
    if n == 0:
        nan = float("nan")
        return ConditionalEntropy(m, last, nan, nan, nan, 0, 0, nan, nan, nan)
    pair = pd.factorize(context * (int(nxt.max()) + 1) + nxt)[0]
    c = np.bincount(pair).astype(np.float64)  # count of each distinct (context, next)
    ctx_of_pair = np.zeros(len(c), dtype=np.int64)
    ctx_of_pair[pair] = context
    n_ctx = np.bincount(context).astype(np.float64)  # n_x
    n_x = n_ctx[ctx_of_pair]
    # plug-in and Miller-Madow
    plug = float(-(c * np.log(c / n_x)).sum() / n)
    distinct = np.bincount(ctx_of_pair, minlength=len(n_ctx)).astype(np.float64)  # K_x
    mm = plug + float((distinct - 1).sum() / (2 * n))
    # Chao-Shen per context
    f1 = np.bincount(ctx_of_pair, weights=(c == 1).astype(np.float64), minlength=len(n_ctx))
    f1 = np.where(f1 == n_ctx, n_ctx - 1, f1)  # all singletons: the usual correction
    cov = 1.0 - f1 / n_ctx
    pa = cov[ctx_of_pair] * c / n_x
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(pa > 0, -pa * np.log(pa) / (1.0 - (1.0 - pa) ** n_x), 0.0)
    h_ctx = np.bincount(ctx_of_pair, weights=term, minlength=len(n_ctx))
    value = float((n_ctx * h_ctx).sum() / n)
    once = n_ctx == 1
    return ConditionalEntropy(
        m=m,
        last=last,
        value=value,
        plug_in=plug,
        miller_madow=mm,
        pairs=n,
        contexts=len(n_ctx),
        singleton_contexts=float(once.mean()),
        singleton_mass=float(n_ctx[once].sum() / n),
        coverage=float(1.0 - (c == 1).sum() / n),
    )


def choose_m(
    ptr: np.ndarray, items: np.ndarray, m_max: int = 2, last: int | None = None
) -> tuple[ConditionalEntropy, list[ConditionalEntropy]]:
    """The largest m <= m_max whose estimate is reliable (m=0 when none is), and every m tried."""
    tried = [conditional_entropy(ptr, items, m, last) for m in range(m_max + 1)]
    chosen = next((e for e in reversed(tried) if e.reliable), tried[0])
    return chosen, tried
