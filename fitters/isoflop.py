"""IsoFLOP profiles (Chinchilla approach 2): at each compute level, the size that does best.

Runs are grouped into compute levels (training FLOPs within `tol` in log10 of each other); a level
with at least 3 distinct sizes gets a parabola of the metric in ln N, and its vertex is that level's
N_opt when it lies inside the level's measured sizes. With two or more such levels,
ln N_opt = k + s ln C gives the exponent s, to compare with approach 3's beta / (alpha + beta).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def isoflop(
    N: np.ndarray, C: np.ndarray, y: np.ndarray, *, higher_is_better: bool, tol: float = 0.05
) -> dict[str, Any]:
    N, C, y = (np.asarray(a, dtype=float) for a in (N, C, y))
    order = np.argsort(C)
    levels: list[list[int]] = []
    for i in order:
        if levels and np.log10(C[i]) - np.log10(C[levels[-1][0]]) <= tol:
            levels[-1].append(int(i))
        else:
            levels.append([int(i)])
    rows: list[dict[str, Any]] = []
    for idx in levels:
        ln_n = np.log(N[idx])
        if len(np.unique(ln_n)) < 3:
            continue
        c2, c1, _c0 = np.polyfit(ln_n, y[idx], 2)
        curved = c2 < 0 if higher_is_better else c2 > 0
        vertex = -c1 / (2 * c2) if c2 != 0 else np.nan
        inside = curved and ln_n.min() <= vertex <= ln_n.max()
        rows.append(
            {
                "compute": float(np.exp(np.mean(np.log(C[idx])))),
                "sizes": len(idx),
                "N_opt": float(np.exp(vertex)) if inside else None,
                "note": "" if inside else "no interior optimum at this level",
            }
        )
    good = [(float(r["compute"]), float(r["N_opt"])) for r in rows if r["N_opt"] is not None]
    out: dict[str, Any] = {"levels": rows}
    if len(good) >= 2:
        s, _k = np.polyfit(np.log([c for c, _ in good]), np.log([n for _, n in good]), 1)
        out["exponent"] = float(s)
    else:
        out["note"] = "fewer than 2 compute levels with an interior optimum: no IsoFLOP exponent"
    return out
