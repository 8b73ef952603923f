"""Brute-force reference implementations the tests compare against (deliberately naive)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np


def pincus_apen(u: np.ndarray, m: int, r: float = 0.5) -> float:
    """Pincus (1991) ApEn by the double loop over templates, Chebyshev distance, self-match."""
    u = np.asarray(u, dtype=float)
    n = len(u)

    def phi(k: int) -> float:
        count = n - k + 1
        total = 0.0
        for i in range(count):
            c = 0
            for j in range(count):
                if max(abs(u[i + d] - u[j + d]) for d in range(k)) <= r:
                    c += 1
            total += math.log(c / count)
        return total / count

    return phi(m) - phi(m + 1)


def pooled_apen(seqs: list[np.ndarray], m: int) -> float:
    """Conditional entropy H_{m+1} - H_m with k-grams counted over all sequences (Counter)."""

    def h(k: int) -> float:
        c: Counter[tuple[int, ...]] = Counter()
        for s in seqs:
            for i in range(len(s) - k + 1):
                c[tuple(int(x) for x in s[i : i + k])] += 1
        n = sum(c.values())
        return -sum(v / n * math.log(v / n) for v in c.values())

    return h(m + 1) - h(m)
