"""Examples of the ranking task: (history up to an event, candidate item, label).

Every event becomes one example whose candidate is the real item (label 1, or the explicit label
rule's verdict when the data has ratings, e.g. rating >= 4); each positive also gets sampled
negatives at `rate` per positive (the integer part always, the fraction with that probability),
drawn uniformly from the items the user has not interacted with before the event, sharing the
positive's history and query time. The split is the retrieval one: training events are each user's
prefix (from the second event on), validation / test are the held-out last events. Examples are
stored as positions into the flat sequences, so a history is a slice, never a copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from scalelab.data.split import Split


@dataclass
class RankingExamples:
    user: np.ndarray  # (E,) user index
    pos: np.ndarray  # (E,) flat position of the event; the history is items[start:pos]
    candidate: np.ndarray  # (E,) item id
    label: np.ndarray  # (E,) float32 0/1

    def __len__(self) -> int:
        return len(self.pos)


def build_examples(
    split: Split,
    which: str,
    rate: float,
    seed: int,
    label_threshold: float | None = None,
) -> RankingExamples:
    """Examples of `which` = 'train', 'valid' or 'test' at `rate` sampled negatives per positive."""
    d = split.data
    if which == "train":
        starts = d.ptr[:-1] + 1  # the first event has no history
        ends = split.train_end
        counts = np.maximum(ends - starts, 0)
        user = np.repeat(np.arange(d.num_users), counts)
        pos = (
            np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
            if counts.sum()
            else np.zeros(0, np.int64)
        )
    else:
        at = split.test_pos if which == "test" else split.valid_pos
        if at is None:
            raise ValueError(f"the {split.kind} split has no {which} events")
        user, pos = np.arange(d.num_users), np.asarray(at)
    pos = pos.astype(np.int64)
    cand = d.items[pos].astype(np.int64)
    if label_threshold is None:
        label = np.ones(len(pos), np.float32)
    else:
        if d.ratings is None:
            raise ValueError("the label rule needs ratings, and this dataset has none")
        label = (d.ratings[pos] >= label_threshold).astype(np.float32)

    rng = np.random.default_rng(seed)
    n_neg = np.floor(rate).astype(np.int64) + (rng.random(len(pos)) < rate - np.floor(rate))
    neg_src = np.repeat(np.arange(len(pos)), n_neg)
    neg_items = _unseen_items(d.items, d.ptr, user[neg_src], pos[neg_src], d.num_items, rng)
    order = np.argsort(np.r_[np.arange(len(pos)), neg_src], kind="stable")  # negatives after their positive
    return RankingExamples(
        user=np.r_[user, user[neg_src]][order],
        pos=np.r_[pos, pos[neg_src]][order],
        candidate=np.r_[cand, neg_items][order],
        label=np.r_[label, np.zeros(len(neg_src), np.float32)][order],
    )


def _unseen_items(
    items: np.ndarray,
    ptr: np.ndarray,
    user: np.ndarray,
    pos: np.ndarray,
    num_items: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """One uniform item per row that is not among the user's items up to and including `pos`
    (rejection sampling; users who have seen every item get any item but the event's)."""
    out = rng.integers(1, num_items + 1, len(pos))
    for i in range(len(pos)):
        seen = items[ptr[user[i]] : pos[i] + 1]
        if len(np.unique(seen)) >= num_items:
            while out[i] == items[pos[i]]:
                out[i] = rng.integers(1, num_items + 1)
            continue
        while out[i] in seen:
            out[i] = rng.integers(1, num_items + 1)
    return out


def batch(
    split: Split, ex: RankingExamples, rows: np.ndarray, max_len: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(history items (B, n), their timestamps, candidates (B,), query times (B,), labels (B,)),
    histories right-padded and trimmed to the batch's longest (at most `max_len`)."""
    d = split.data
    pos, user = ex.pos[rows], ex.user[rows]
    start = np.maximum(d.ptr[user], pos - max_len)
    n = max(1, int((pos - start).max()))
    col = np.arange(n)[None, :]
    mask = col < (pos - start)[:, None]
    src = (start[:, None] + col)[mask]
    items = np.zeros((len(rows), n), np.int64)
    ts = np.zeros((len(rows), n), np.int64)
    items[mask], ts[mask] = d.items[src], d.timestamps[src]
    return (
        torch.from_numpy(items),
        torch.from_numpy(ts),
        torch.from_numpy(ex.candidate[rows]),
        torch.from_numpy(d.timestamps[pos].astype(np.int64)),
        torch.from_numpy(ex.label[rows]),
    )
