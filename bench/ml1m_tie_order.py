"""How much next-item signal ML-1M's order of same-second events carries.

Half of the consecutive events of an ML-1M user share a timestamp, so "the next item" depends on
how a sort orders ties. A stable sort keeps the file order (our copy's, `data.ties: file_order`);
an unstable sort, such as the pandas default Meta's preprocessing uses, leaves them in an arbitrary
order (`data.ties: shuffle`). This measures the difference without training a network: a first-order
transition model (count of item b right after item a in the training prefixes; ties between scores
broken by popularity) ranks every user's held-out last item with the full-ranking protocol of the
reproduction (leave-last-out, input history filtered). A model that learns the file order's
structure can gain the same way.

    python bench/ml1m_tie_order.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, ml1m_path, write_record

from scalelab.config import DataConfig
from scalelab.data.preprocess import build_sequences
from scalelab.data.readers import read_interactions
from scalelab.data.sequences import SequenceData


def transition_baseline(d: SequenceData, ks: tuple[int, ...] = (10, 50)) -> dict[str, float]:
    """HR@K / NDCG@K of ranking each user's last item by transition counts from the item before it."""
    last = d.ptr[1:] - 1
    train = np.ones(len(d.items), dtype=bool)
    train[last] = False  # the test item never enters the counts
    src = np.arange(len(d.items) - 1)
    ok = train[src] & train[src + 1] & same_user_pairs(d)
    n = d.num_items + 1
    counts = sp.csr_matrix(
        (np.ones(ok.sum()), (d.items[src[ok]], d.items[src[ok] + 1])), shape=(n, n)
    ).toarray()
    pop = np.bincount(d.items[train], minlength=n).astype(np.float64)
    scores = counts[d.items[last - 1]] + pop / (pop.max() + 1)  # (U, n); popularity breaks ties
    scores[:, 0] = -np.inf
    for u in range(d.num_users):  # filter the input history
        scores[u, d.items[d.ptr[u] : last[u]]] = -np.inf
    target = scores[np.arange(d.num_users), d.items[last]]
    ranks = (scores > target[:, None]).sum(1) + 1.0
    ranks[np.isneginf(target)] = np.inf
    out = {}
    for k in ks:
        hit = ranks <= k
        out[f"hr@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 1), 0.0).mean())
    return out


def same_user_pairs(d: SequenceData) -> np.ndarray:
    """(N - 1,) bool: events k and k + 1 belong to the same user."""
    user = np.repeat(np.arange(d.num_users), d.lengths)
    return user[1:] == user[:-1]


def tie_statistics(d: SequenceData) -> dict[str, float]:
    pair = same_user_pairs(d)
    tie = pair & (d.timestamps[1:] == d.timestamps[:-1])
    last = d.ptr[1:] - 1
    return {
        "consecutive_pairs_tied": float(tie.sum() / pair.sum()),
        "test_items_tied_with_previous": float((d.timestamps[last] == d.timestamps[last - 1]).mean()),
        "tied_pairs_with_increasing_raw_id": float(
            (d.item_ids[d.items[1:][tie]] > d.item_ids[d.items[:-1][tie]]).mean()
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3, help="shuffle seeds (data.tie_seed 0..seeds-1)")
    args = ap.parse_args()
    df = read_interactions(ml1m_path())
    rows = []
    for ties, seed in [("file_order", 0)] + [("shuffle", s) for s in range(args.seeds)]:
        cfg = DataConfig(path="ml-1m", split="leave_one_out", min_seq_len=2, ties=ties, tie_seed=seed)
        d = build_sequences(df, cfg, "ml-1m")
        row = {"ties": ties, "tie_seed": seed, **tie_statistics(d), **transition_baseline(d)}
        rows.append(row)
        print(
            f"{ties:<10} seed {seed}  ties {row['consecutive_pairs_tied']:.3f}  "
            f"increasing ids in ties {row['tied_pairs_with_increasing_raw_id']:.3f}  "
            f"transition HR@10 {row['hr@10']:.4f}  NDCG@10 {row['ndcg@10']:.4f}"
        )
    shuffled = [r for r in rows if r["ties"] == "shuffle"]
    drop = {k: rows[0][k] - float(np.mean([r[k] for r in shuffled])) for k in ("hr@10", "ndcg@10")}
    print(f"file order minus shuffled (mean of {len(shuffled)} seeds): HR@10 {drop['hr@10']:+.4f}  "
          f"NDCG@10 {drop['ndcg@10']:+.4f}")  # fmt: skip
    path = write_record(
        "ml1m_tie_order",
        {
            "command": "python bench/ml1m_tie_order.py",
            "rows": rows,
            "file_order_minus_shuffled": drop,
            "machine": machine(),
            "when": time.strftime("%Y-%m-%d"),
        },
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()
