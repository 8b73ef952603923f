"""Dataset statistics: what `scalelab data describe` prints and what every run records."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from scalelab.data.cond_entropy import choose_m
from scalelab.data.entropy import apen_summary
from scalelab.data.sequences import SequenceData
from scalelab.data.split import Split, make_split


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
    chosen, tried = choose_m(data.ptr, data.items, m_max=max(2, *apen_m), last=apen_last)
    stats["entropy"] = {
        "chosen_m": chosen.m,
        "value": chosen.value,
        "last": apen_last,
        "by_m": [
            {
                "m": e.m,
                "value": e.value,
                "plug_in": e.plug_in,
                "miller_madow": e.miller_madow,
                "pairs": e.pairs,
                "contexts": e.contexts,
                "singleton_contexts": e.singleton_contexts,
                "coverage": e.coverage,
                "reliable": e.reliable,
                "warning": e.warning(),
            }
            for e in tried
        ],
    }
    stats["repeats"] = repeat_stats(sp)
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


def repeat_stats(sp: Split) -> dict[str, Any]:
    """Repeat consumption: events whose item the user had already consumed, and held-out targets
    already in the user's history (all of it, and the model's input window of max_seq_len items,
    which is what `eval.filter_history` masks: such a target can never be ranked, a sure miss)."""
    data = sp.data
    lengths = np.diff(data.ptr)
    user = np.repeat(np.arange(data.num_users), lengths)
    pos = np.arange(data.num_interactions)
    frame = pd.DataFrame({"user": user, "item": np.asarray(data.items), "pos": pos})
    prev = frame.groupby(["user", "item"], sort=False)["pos"].shift(1).to_numpy()  # previous same item
    repeated = ~np.isnan(prev)
    out: dict[str, Any] = {
        "events": int(repeated.sum()),
        "events_share": float(repeated.mean()) if len(repeated) else 0.0,
        "users_with_repeats": int(np.unique(user[repeated]).size),
    }
    targets = {"test": sp.test_pos, **({"valid": sp.valid_pos} if sp.valid_pos is not None else {})}
    for name, at in targets.items():
        before = prev[at]
        seen = ~np.isnan(before)
        in_window = seen & (before >= at - sp.max_seq_len)
        out[name] = {
            "targets": len(at),
            "in_history": int(seen.sum()),
            "in_history_share": float(seen.mean()) if len(at) else 0.0,
            "in_input_window": int(in_window.sum()),
            "in_input_window_share": float(in_window.mean()) if len(at) else 0.0,
        }
    return out


def _iso(t: int) -> str:
    try:
        return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "n/a"
