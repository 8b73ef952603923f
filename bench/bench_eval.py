"""Full-ranking evaluation of all 6,040 ML-1M users (history filtered), HSTU and SASRec at Meta's
ML-1M config (width 50, depth 2, 1 head, length 200).

scalelab's `evaluate` (users batched by length, last-row-only final HSTU block, ranks by counting
items that score at least as high) against a straightforward reference in the same run: batches
in user order padded to 200, the full forward pass, and ranks from a full sort of the scores.
Both must give the same metrics. Times are medians of --reps runs after one warm-up run.

Then the ranking step alone, history filtering by counting (`ranks_without_history`, the items at
least as high as the target less those in the history) against masking (a (B, I) mask scattered
from the history, filled into the scores, then counted) in the same run, at the catalogue sizes of
ML-1M (3,416 items, history 200) and Amazon Video Games (16,874 items, history 50): batches of 64
users, width 64, random scores; both must give identical ranks.

    python bench/bench_eval.py [--reps 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_time, ml1m_path, write_record

from scalelab.config import EvalConfig, load_config
from scalelab.data.loader import load_dataset
from scalelab.data.split import make_split
from scalelab.models import build_model
from scalelab.training.batches import eval_set
from scalelab.training.evaluate import evaluate
from scalelab.training.metrics import (
    distinct_items,
    metrics_from_ranks,
    ranks_from_scores,
    ranks_without_history,
)


@torch.inference_mode()
def reference_eval(model, es, ks: list[int]) -> dict[str, float]:
    table = model.item_embeddings()
    ranks = []
    for lo in range(0, len(es), 128):
        rows = torch.arange(lo, min(lo + 128, len(es)))
        items, ts, qt, tg = es.items[rows], es.timestamps[rows], es.query_time[rows], es.targets[rows]
        h = model(items, ts, qt)
        last = (items != 0).sum(1) - 1
        users = model.normalize(h[torch.arange(len(rows)), last])
        scores = users @ table.T
        seen = torch.zeros(len(rows), table.shape[0] + 1, dtype=torch.bool).scatter_(1, items, True)[:, 1:]
        scores = scores.masked_fill(seen, float("-inf"))
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices
        pos = (order == (tg - 1)[:, None]).float().argmax(1)
        # ties count against the target, as in scalelab: rank = number of items scoring >= target
        tscore = scores[torch.arange(len(rows)), tg - 1]
        r = (scores >= tscore[:, None]).sum(1).double()
        r = torch.where(seen[torch.arange(len(rows)), tg - 1], torch.full_like(r, float("inf")), r)
        assert ((pos + 1).double() <= r).all()
        ranks.append(r)
    return metrics_from_ranks(torch.cat(ranks), ks)


def ranking_ab(reps: int, batches: int = 50) -> list[dict]:
    """Counting vs masking for the history filter: seconds per `batches` batches of 64 users."""
    rows = []
    for name, items, hist in (("ml-1m", 3416, 200), ("amazon-games", 16874, 50)):
        g = torch.Generator().manual_seed(0)
        table = torch.randn(items, 64, generator=g)
        work = [
            (
                torch.randn(64, 64, generator=g),
                torch.randint(0, items + 1, (64, hist), generator=g),
                torch.randint(0, items, (64,), generator=g),
            )
            for _ in range(batches)
        ]
        # the evaluation builds each user's distinct history once per evaluation set, not per run
        distinct = [distinct_items(seq) for _, seq, _ in work]
        t = _time_filters(table, work, distinct, reps)
        print(
            f"{name:<13} {items:>6} items: masked {t['masked_s']:6.3f} s   counted {t['counted_s']:6.3f} s   "
            f"(scores alone {t['scores_only_s']:6.3f} s)   speed-up {t['speedup']:4.2f}x   ranks equal: True"
        )
        rows.append(
            {"catalogue": name, "items": items, "history": hist, "batches": batches, "batch_size": 64, **t}
        )
    return rows


def _time_filters(table: torch.Tensor, work: list, distinct: list, reps: int) -> dict[str, float]:
    n = table.shape[0]

    def masked(out: list) -> None:
        for users, seq, tg in work:
            seen = torch.zeros(len(seq), n + 1, dtype=torch.bool).scatter_(1, seq, True)[:, 1:]
            out.append(ranks_from_scores(users @ table.T, tg, seen))

    def counted(out: list) -> None:
        for (users, _, tg), hist in zip(work, distinct, strict=True):
            out.append(ranks_without_history(users @ table.T, tg, hist))

    def scores_only(out: list) -> None:
        for users, _, _ in work:
            out.append(users @ table.T)

    a: list = []
    b: list = []
    masked(a), counted(b)  # warm-up, and the ranks must agree
    if not torch.equal(torch.cat(a), torch.cat(b)):
        raise SystemExit("counted ranks differ from masked ranks")
    t_mask = median_time(lambda: masked([]), reps)
    t_count = median_time(lambda: counted([]), reps)
    t_scores = median_time(lambda: scores_only([]), reps)
    return {"masked_s": t_mask, "counted_s": t_count, "scores_only_s": t_scores, "speedup": t_mask / t_count}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    cfg = load_config(
        Path(__file__).resolve().parents[1] / "configs" / "ml1m_hstu.yaml", [f"data.path={ml1m_path()}"]
    )
    data = load_dataset(cfg.data)
    es = eval_set(make_split(data, "leave_one_out", 200), "test")
    ecfg = EvalConfig()
    rows = []
    for fam in ("hstu", "sasrec"):
        torch.manual_seed(0)
        cfg.model.family = fam
        model = build_model(cfg.model, data.num_items, 201).eval()
        ours: dict = {}
        evaluate(model, es, ecfg, torch.device("cpu"))  # warm-up
        t_ours = median_time(
            lambda m=model, o=ours: o.update(evaluate(m, es, ecfg, torch.device("cpu"))), args.reps
        )
        ref: dict = {}
        reference_eval(model, es, ecfg.ks)
        t_ref = median_time(
            lambda m=model, o=ref: o.update(reference_eval(m, es, ecfg.ks)), max(1, args.reps // 2)
        )
        same = all(abs(ours[k] - ref[k]) < 1e-9 for k in ref)
        print(
            f"{fam:<7} scalelab {t_ours:6.2f} s   reference {t_ref:6.2f} s   speed-up {t_ref / t_ours:4.1f}x   "
            f"metrics equal: {same}"
        )
        if not same:
            raise SystemExit(f"metrics differ: {ours} vs {ref}")
        rows.append({"family": fam, "scalelab_s": t_ours, "reference_s": t_ref, "speedup": t_ref / t_ours})
    path = write_record(
        "bench_eval",
        {
            "command": "python bench/bench_eval.py",
            "users": len(es),
            "items": data.num_items,
            "batch_size": ecfg.batch_size,
            "rows": rows,
            "history_filter": ranking_ab(args.reps),
            "machine": machine(),
            "when": time.strftime("%Y-%m-%d"),
        },
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()
