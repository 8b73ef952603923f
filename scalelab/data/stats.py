"""Dataset statistics: what `scalelab data describe` prints and what every run records."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np

from scalelab.data.entropy import apen_summary
from scalelab.data.sequences import SequenceData
from scalelab.data.split import make_split


def describe(
    data: SequenceData,
    split: str = "leave_one_out",
    max_seq_len: int = 200,
    apen_m: tuple[int, ...] = (2,),
    apen_last: int | None = 50,
) -> dict[str, Any]:
    """Counts, length distribution, time span, tokens and approximate entropy of `data`."""
    lengths = data.lengths
    sp = make_split(data, split, max_seq_len)  # type: ignore[arg-type]
    ts = data.timestamps
    stats: dict[str, Any] = {
        "users": data.num_users,
        "items": data.num_items,
        "interactions": data.num_interactions,
        "density": data.num_interactions / max(1, data.num_users * data.num_items),
        "seq_len": {
            "min": int(lengths.min()),
            "p25": float(np.percentile(lengths, 25)),
            "median": float(np.median(lengths)),
            "mean": float(lengths.mean()),
            "p75": float(np.percentile(lengths, 75)),
            "p95": float(np.percentile(lengths, 95)),
            "max": int(lengths.max()),
        },
        "time": {
            "first": int(ts.min()),
            "last": int(ts.max()),
            "first_utc": _iso(int(ts.min())),
            "last_utc": _iso(int(ts.max())),
            "span_days": (int(ts.max()) - int(ts.min())) / 86_400,
        },
        "tokens": {
            "split": split,
            "max_seq_len": max_seq_len,
            "train_interactions": int(sp.train_lengths().sum()),
            "train_targets": sp.train_targets(),
        },
        "apen": [],
    }
    for m in apen_m:
        s = apen_summary(data.ptr, data.items, m, apen_last)
        stats["apen"].append(
            {
                "m": m,
                "last": apen_last,
                "per_user_mean": s.per_user_mean,
                "users": s.users_used,
                "pooled": s.pooled,
            }
        )
    return stats


def _iso(t: int) -> str:
    try:
        return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "n/a"
