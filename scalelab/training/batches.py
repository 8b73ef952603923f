"""Padded tensors for training and evaluation, built once per run from a `Split`.

Training: each user contributes the last max_seq_len + 1 items of their training history; the
model reads all of them and position i is trained to predict item i + 1 (so a user of n items
gives n - 1 targets). Evaluation: the input is the (at most max_seq_len) items before the target,
and the target's timestamp is the query time (it feeds the relative time bias of the last position).
Everything is right-padded with 0; each batch is trimmed to its longest row.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from scalelab.data.split import Split
from scalelab.training import metrics


def pad_windows(
    arrays: list[np.ndarray], starts: np.ndarray, ends: np.ndarray, width: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """(U, width) right-padded (with 0) copies of a[starts[u]:ends[u]] for each flat array a, and
    the window lengths."""
    lengths = (ends - starts).astype(np.int64)
    col = np.arange(width)[None, :]
    mask = col < lengths[:, None]
    src = (starts[:, None] + col)[mask]
    out = []
    for a in arrays:
        padded = np.zeros((len(starts), width), dtype=np.int64 if a.dtype.kind in "iu" else a.dtype)
        padded[mask] = a[src]
        out.append(padded)
    return out, lengths


def _pad_windows(items: np.ndarray, ts: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int):
    """(U, width) right-padded copies of items[starts[u]:ends[u]] (and timestamps)."""
    (out_i, out_t), lengths = pad_windows([items, ts], starts, ends, width)
    return out_i, out_t, lengths


@dataclass
class TrainSet:
    items: torch.Tensor  # (U, N) int64, N = max_seq_len + 1
    timestamps: torch.Tensor  # (U, N) int64
    lengths: torch.Tensor  # (U,) int64

    @property
    def num_targets(self) -> int:
        return int((self.lengths - 1).clamp(min=0).sum())

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = int(self.lengths[rows].max())
        return self.items[rows, :n], self.timestamps[rows, :n]


@dataclass
class EvalSet:
    items: torch.Tensor  # (U, max_seq_len) input history
    timestamps: torch.Tensor  # (U, max_seq_len)
    lengths: torch.Tensor  # (U,)
    query_time: torch.Tensor  # (U,) timestamp of the target
    targets: torch.Tensor  # (U,) target item id

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        n = max(1, int(self.lengths[rows].max()))
        return self.items[rows, :n], self.timestamps[rows, :n], self.query_time[rows], self.targets[rows]

    @functools.cached_property
    def distinct_items(self) -> torch.Tensor:
        """(U, max_seq_len) each user's distinct input items first, then 0: the history filter's
        input (`metrics.ranks_without_history`); row r[:n] holds them all when n >= lengths[r]."""
        return metrics.distinct_items(self.items)

    def by_length(self, batch_size: int) -> list[torch.Tensor]:
        """Row batches of similar length (attention costs n^2: short users are not padded to 200)."""
        order = torch.argsort(self.lengths, stable=True)
        return list(order.split(batch_size))


def train_set(split: Split) -> TrainSet:
    d = split.data
    n = split.max_seq_len + 1
    starts = np.maximum(d.ptr[:-1], split.train_end - n)
    items, ts, lengths = _pad_windows(d.items, d.timestamps, starts, split.train_end, n)
    keep = lengths >= 2  # a user needs two training items for one target
    return TrainSet(
        torch.from_numpy(items[keep]), torch.from_numpy(ts[keep]), torch.from_numpy(lengths[keep])
    )


def eval_set(split: Split, which: str) -> EvalSet:
    """`which` = 'valid' or 'test'."""
    d = split.data
    pos = split.test_pos if which == "test" else split.valid_pos
    if pos is None:
        raise ValueError(f"the {split.kind} split has no {which} targets")
    starts = np.maximum(d.ptr[:-1], pos - split.max_seq_len)
    items, ts, lengths = _pad_windows(d.items, d.timestamps, starts, pos, split.max_seq_len)
    return EvalSet(
        torch.from_numpy(items),
        torch.from_numpy(ts),
        torch.from_numpy(lengths),
        torch.from_numpy(d.timestamps[pos].astype(np.int64)),
        torch.from_numpy(d.items[pos].astype(np.int64)),
    )
