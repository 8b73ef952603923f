"""Examples of the ranking task: (history up to an event, candidate item, label).

Every event becomes one example whose candidate is the real item (label 1, or the explicit label
rule's verdict when the data has ratings, e.g. rating >= 4); each positive also gets sampled
negatives at `rate` per positive (the integer part always, the fraction with that probability),
drawn uniformly from the items the user has not interacted with before the event (and, with
domains, from the positive's own domain), sharing the positive's history and query time. The split is the retrieval one: training events are each user's
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
    item_domain: np.ndarray | None = None,
) -> RankingExamples:
    """Examples of `which` = 'train', 'valid' or 'test' at `rate` sampled negatives per positive;
    `item_domain` ((num_items + 1,) domain codes) confines each negative to its positive's domain."""
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
    pools = DomainPools(item_domain if item_domain is not None else np.zeros(d.num_items + 1, np.int64))
    neg_items = _unseen_items(d.items, d.ptr, user[neg_src], pos[neg_src], pools, rng)
    order = np.argsort(np.r_[np.arange(len(pos)), neg_src], kind="stable")  # negatives after their positive
    return RankingExamples(
        user=np.r_[user, user[neg_src]][order],
        pos=np.r_[pos, pos[neg_src]][order],
        candidate=np.r_[cand, neg_items][order],
        label=np.r_[label, np.zeros(len(neg_src), np.float32)][order],
    )


class DomainPools:
    """Items grouped by domain code, to draw a uniform item of a given domain (one pool without domains)."""

    def __init__(self, item_domain: np.ndarray) -> None:
        codes = np.asarray(item_domain[1:], dtype=np.int64)
        self.order = np.argsort(codes, kind="stable") + 1  # item ids grouped by domain
        self.count = np.bincount(codes, minlength=int(codes.max(initial=0)) + 1)
        self.start = np.r_[0, np.cumsum(self.count)[:-1]]
        self.item_domain = np.asarray(item_domain, dtype=np.int64)

    def draw(self, domain: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One uniform item of each row's domain."""
        return self.order[
            self.start[domain] + (rng.random(len(domain)) * self.count[domain]).astype(np.int64)
        ]


def _unseen_items(
    items: np.ndarray,
    ptr: np.ndarray,
    user: np.ndarray,
    pos: np.ndarray,
    pools: DomainPools,
    rng: np.random.Generator,
) -> np.ndarray:
    """One uniform item of the event's domain per row that is not among the user's items up to and
    including `pos` (rejection sampling; users who have seen every such item get any but the event's)."""
    dom = pools.item_domain[items[pos]]
    out = pools.draw(dom, rng)
    for i in range(len(pos)):
        seen = items[ptr[user[i]] : pos[i] + 1]
        if (
            len(seen) >= pools.count[dom[i]]
            and np.isin(
                pools.order[pools.start[dom[i]] : pools.start[dom[i]] + pools.count[dom[i]]], seen
            ).all()
        ):
            while out[i] == items[pos[i]] and pools.count[dom[i]] > 1:
                out[i] = pools.draw(dom[i : i + 1], rng)[0]
            continue
        while out[i] in seen:
            out[i] = pools.draw(dom[i : i + 1], rng)[0]
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
