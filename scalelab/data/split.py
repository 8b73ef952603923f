"""Leave-one-out and leave-two-out splits over `SequenceData`, without copying the sequences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from scalelab.data.sequences import SequenceData


@dataclass(frozen=True)
class Split:
    """Per-user positions into `data.items`.

    - training history of user u: items[ptr[u] : train_end[u]]
    - validation target: items[valid_pos[u]], input items[ptr[u] : valid_pos[u]] (leave-two-out)
    - test target: items[test_pos[u]], input items[ptr[u] : test_pos[u]]
    Inputs are truncated to the most recent `max_seq_len` items when batched.
    """

    data: SequenceData
    kind: Literal["leave_one_out", "leave_two_out"]
    train_end: np.ndarray
    valid_pos: np.ndarray | None
    test_pos: np.ndarray
    max_seq_len: int

    @property
    def test_items(self) -> np.ndarray:
        return self.data.items[self.test_pos]

    @property
    def valid_items(self) -> np.ndarray | None:
        return None if self.valid_pos is None else self.data.items[self.valid_pos]

    def train_lengths(self) -> np.ndarray:
        return self.train_end - self.data.ptr[:-1]

    def train_targets(self) -> int:
        """Supervised next-item targets per epoch: each user's training history, truncated to its
        last max_seq_len + 1 items, predicts every item after its first."""
        n = np.minimum(self.train_lengths(), self.max_seq_len + 1)
        return int(np.maximum(n - 1, 0).sum())


def make_split(
    data: SequenceData, kind: Literal["leave_one_out", "leave_two_out"], max_seq_len: int
) -> Split:
    """Leave-last-out split; every user must have at least 2 (3 for leave-two-out) events."""
    end = data.ptr[1:]
    test_pos = end - 1
    if kind == "leave_one_out":
        train_end, valid_pos = end - 1, None
    else:
        train_end, valid_pos = end - 2, end - 2
    return Split(data, kind, train_end, valid_pos, test_pos, max_seq_len)
