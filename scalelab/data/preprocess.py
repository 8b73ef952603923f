"""From raw interactions to user sequences: every step is a `DataConfig` field.

Order: rating threshold -> time sort per user (ties: file order or shuffled) -> de-duplication -> k-core -> minimum
sequence length -> user fraction -> history fraction -> contiguous id remap. Each step records how
many interactions, users and items it kept, so a user can see where data went.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from scalelab.config import DataConfig
from scalelab.data.readers import Interactions
from scalelab.data.sequences import SequenceData
from scalelab.errors import DataError


def build_sequences(df: Interactions, cfg: DataConfig, source: str) -> SequenceData:
    """Apply the preprocessing of `cfg` to an interaction table and return the sequences."""
    steps: list[dict[str, Any]] = []
    user_codes, user_uniques = pd.factorize(df["user"], sort=True)
    item_codes, item_uniques = pd.factorize(df["item"], sort=True)
    cols: dict[str, np.ndarray] = {
        "user": user_codes.astype(np.int64),
        "item": item_codes.astype(np.int64),
        "timestamp": df["timestamp"].to_numpy(np.int64),
        "order": np.arange(len(df), dtype=np.int64),
    }
    side = {name: df[name] for name in ("rating", "behaviour", "domain") if name in df}
    if cfg.behaviour_from_rating:
        if "rating" not in side:
            raise DataError(f"{source}: data.behaviour_from_rating is set but the data has no rating column")
        side["behaviour"] = side["rating"].map(lambda r: f"{r:g}")
    names: dict[str, list[str]] = {}
    for name, column in side.items():
        values = column.to_numpy()
        if name != "rating":  # categorical side columns become codes 1..K (0 = none)
            codes, uniques = pd.factorize(values, sort=True)
            values, names[name] = codes.astype(np.int32) + 1, [str(u) for u in uniques]
        cols[name] = values

    def record(step: str) -> None:
        steps.append(
            {
                "step": step,
                "interactions": len(cols["user"]),
                "users": len(np.unique(cols["user"])),
                "items": len(np.unique(cols["item"])),
            }
        )

    def keep(mask: np.ndarray) -> None:
        for k in cols:
            cols[k] = cols[k][mask]

    record("read")

    if cfg.keep_domains is not None:
        if "domain" not in cols:
            raise DataError(f"{source}: data.keep_domains is set but the data has no domain column")
        missing = [d for d in cfg.keep_domains if d not in names["domain"]]
        if missing:
            raise DataError(f"{source}: data.keep_domains: no events of domain(s) {', '.join(missing)}")
        wanted = [names["domain"].index(d) + 1 for d in cfg.keep_domains]
        keep(np.isin(cols["domain"], wanted))
        record(f"domains {', '.join(cfg.keep_domains)}")

    if cfg.rating_threshold is not None:
        if "rating" not in cols:
            raise DataError(f"{source}: data.rating_threshold is set but the data has no rating column")
        keep(cols["rating"] >= cfg.rating_threshold)
        record(f"rating >= {cfg.rating_threshold:g}")

    # Sort by (user, time); ties keep file order, or a seeded random order (data.ties: shuffle).
    tiebreak = cols["order"]
    if cfg.ties == "shuffle":
        tiebreak = np.random.default_rng(cfg.tie_seed).permutation(len(tiebreak))
    idx = np.lexsort((tiebreak, cols["timestamp"], cols["user"]))
    for k in cols:
        cols[k] = cols[k][idx]

    if cfg.dedup == "exact":
        key = pd.DataFrame({k: cols[k] for k in ("user", "item", "timestamp")})
        keep(~key.duplicated(keep="first").to_numpy())
        record("dedup exact rows")
    elif cfg.dedup in ("first", "last"):
        key = pd.DataFrame({k: cols[k] for k in ("user", "item")})
        keep(~key.duplicated(keep=cfg.dedup).to_numpy())
        record(f"dedup (user, item), keep {cfg.dedup}")

    if cfg.min_user_count > 0 or cfg.min_item_count > 0:
        while True:
            n_before = len(cols["user"])
            ok = np.ones(n_before, dtype=bool)
            if cfg.min_item_count > 0:
                ok &= np.bincount(cols["item"])[cols["item"]] >= cfg.min_item_count
            if cfg.min_user_count > 0:
                ok &= np.bincount(cols["user"])[cols["user"]] >= cfg.min_user_count
            keep(ok)
            if cfg.kcore == "single" or len(cols["user"]) == n_before or len(cols["user"]) == 0:
                break
        record(f"{cfg.kcore} k-core (users >= {cfg.min_user_count}, items >= {cfg.min_item_count})")
        _check_not_empty(cols, source, steps)

    counts = np.bincount(cols["user"])[cols["user"]] if len(cols["user"]) else np.zeros(0, dtype=np.int64)
    keep(counts >= cfg.min_seq_len)
    record(f"users with >= {cfg.min_seq_len} events")
    _check_not_empty(cols, source, steps)

    if cfg.fraction < 1.0:
        keep(
            np.isin(
                cols["user"], nested_user_subset(np.unique(cols["user"]), cfg.fraction, cfg.subsample_seed)
            )
        )
        record(f"user fraction {cfg.fraction:g} (seed {cfg.subsample_seed})")

    if cfg.history_fraction < 1.0:
        keep(_recent_history_mask(cols["user"], cfg.history_fraction, cfg.min_seq_len))
        record(f"history fraction {cfg.history_fraction:g} (most recent)")

    # Contiguous ids: users 0..U-1, items 1..I (0 = padding), both in raw-id order.
    users_kept, user_new = np.unique(cols["user"], return_inverse=True)
    items_kept, item_new = np.unique(cols["item"], return_inverse=True)
    ptr = np.zeros(len(users_kept) + 1, dtype=np.int64)
    np.cumsum(np.bincount(user_new, minlength=len(users_kept)), out=ptr[1:])
    item_ids = np.asarray(item_uniques)[items_kept]
    item_ids = np.concatenate([np.zeros(1, dtype=item_ids.dtype), item_ids])
    return SequenceData(
        ptr=ptr,
        items=(item_new + 1).astype(np.int32),
        timestamps=cols["timestamp"],
        user_ids=np.asarray(user_uniques)[users_kept],
        item_ids=item_ids,
        ratings=cols["rating"].astype(np.float32) if "rating" in cols else None,
        behaviours=cols.get("behaviour"),
        domains=cols.get("domain"),
        meta={"source": source, "steps": steps, **{f"{k}_names": v for k, v in names.items()}},
    )


def nested_user_subset(users: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The first ceil(fraction * U) users of one seeded permutation of the sorted users.

    Because every fraction takes a prefix of the same permutation, the users of a smaller fraction
    are a subset of those of a larger one (for the same seed and the same filtered population).
    """
    users = np.sort(users)
    order = np.random.default_rng(seed).permutation(len(users))
    n = max(1, math.ceil(fraction * len(users)))
    return users[order[:n]]


def _recent_history_mask(user: np.ndarray, fraction: float, min_len: int) -> np.ndarray:
    """Keep the most recent ceil(fraction * n) events of each user, but at least min_len."""
    counts = np.bincount(user)
    n = counts[user]
    first = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    pos = np.arange(len(user)) - first[user]  # 0-based position inside the user's sequence
    kept = np.maximum(np.ceil(fraction * n), np.minimum(n, min_len))
    return pos >= n - kept


def _check_not_empty(cols: dict[str, np.ndarray], source: str, steps: list[dict[str, Any]]) -> None:
    if len(cols["user"]) == 0:
        before = steps[0]["interactions"]
        raise DataError(
            f"{source}: dataset is empty after '{steps[-1]['step']}' (it removed all of the "
            f"{before:,} interactions read); lower data.min_user_count / data.min_item_count / "
            "data.min_seq_len"
        )
