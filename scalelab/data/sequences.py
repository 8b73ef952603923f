"""The processed dataset: every user's time-ordered item sequence in one flat (CSR) layout."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scalelab.atomic import atomic_write
from scalelab.errors import DataError

_OPTIONAL = ("ratings", "behaviours", "domains")


@dataclass
class SequenceData:
    """User sequences stored flat: user u owns positions ptr[u]:ptr[u+1] (time order).

    Item ids are contiguous 1..num_items (0 is padding); `item_ids[i]` is the raw id of item i
    (`item_ids[0]` is a placeholder). `user_ids[u]` is the raw id of user u.
    """

    ptr: np.ndarray  # (U+1,) int64
    items: np.ndarray  # (T,) int32, 1..num_items
    timestamps: np.ndarray  # (T,) int64 unix seconds
    user_ids: np.ndarray  # (U,) raw ids
    item_ids: np.ndarray  # (num_items+1,) raw ids, [0] = padding placeholder
    ratings: np.ndarray | None = None  # (T,) float32
    behaviours: np.ndarray | None = None  # (T,) int32, 0 = none
    domains: np.ndarray | None = None  # (T,) int32, 0 = none
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_users(self) -> int:
        return len(self.ptr) - 1

    @property
    def num_items(self) -> int:
        return len(self.item_ids) - 1

    @property
    def num_interactions(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.ptr)

    def user_sequence(self, u: int) -> np.ndarray:
        return self.items[self.ptr[u] : self.ptr[u + 1]]

    # ------------------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write to one `.npz` atomically (temporary file + rename), safe under concurrent writers."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {
            "ptr": self.ptr,
            "items": self.items,
            "timestamps": self.timestamps,
            "user_ids": _portable(self.user_ids),
            "item_ids": _portable(self.item_ids),
            "meta": np.array(json.dumps(self.meta)),
        }
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None:
                arrays[name] = value
        atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SequenceData:
        try:
            with np.load(path, allow_pickle=False) as z:
                kwargs = {name: z[name] for name in z.files if name != "meta"}
                meta = json.loads(str(z["meta"]))
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"{path}: not a readable processed dataset ({e.__class__.__name__})") from None
        return cls(meta=meta, **kwargs)


def _portable(ids: np.ndarray) -> np.ndarray:
    """Raw ids as a numeric or fixed-width string array (loadable without pickle)."""
    if ids.dtype.kind in "iuf":
        return ids
    return ids.astype(str)
