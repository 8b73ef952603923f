"""How full-ranking evaluation grows with the catalogue: all 6,040 ML-1M users (real histories,
history filtered) against synthetic catalogues of 3,416 (ML-1M) to 1,000,000 items.

HSTU at Meta's ML-1M config (width 50, depth 2) with an item table of the given size (random
initialisation: the cost does not depend on the weights). Each size runs twice in the same
invocation, each in a fresh process so its peak memory (max RSS) is its own: `chunked` scores
the catalogue in chunks of 65,536 items (eval.item_chunk), the reference `one-shot` scores it as
one (users x items) matrix per batch of 64 users. Both must give identical metrics.

    python bench/bench_eval_scaling.py [--sizes 3416,10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, ml1m_path, write_record

CHUNK = 65_536


def one(size: int, chunk: int) -> dict:
    import torch

    from scalelab.config import EvalConfig, load_config
    from scalelab.data.loader import load_dataset
    from scalelab.data.split import make_split
    from scalelab.models import build_model
    from scalelab.training.batches import eval_set
    from scalelab.training.evaluate import evaluate

    cfg = load_config(None, [f"data.path={ml1m_path()}", "data.split=leave_one_out", "data.min_seq_len=2"])
    data = load_dataset(cfg.data)
    es = eval_set(make_split(data, "leave_one_out", 200), "test")
    torch.manual_seed(0)
    model = build_model(cfg.model, size, cfg.padded_len()).eval()
    ecfg = EvalConfig(item_chunk=chunk)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    evaluate(model, es, ecfg, torch.device("cpu"))  # warm-up
    t0 = time.perf_counter()
    metrics = evaluate(model, es, ecfg, torch.device("cpu"))
    return {
        "items": size, "chunk": chunk, "seconds": time.perf_counter() - t0, "metrics": metrics,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_before_eval_mb": rss0 / 1024,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="3416,10000,100000,1000000")
    ap.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return
    rows = []
    for size in map(int, args.sizes.split(",")):
        pair = {}
        for name, chunk in (("chunked", CHUNK), ("one-shot", 10**9)):
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(size), str(chunk)], capture_output=True, text=True
            )
            if out.returncode != 0:
                raise SystemExit(out.stderr[-2000:])
            pair[name] = json.loads(out.stdout.strip().splitlines()[-1])
        same = pair["chunked"]["metrics"] == pair["one-shot"]["metrics"]
        row = {
            "items": size,
            "identical_metrics": same,
            **{f"{k}_{f}": v[f] for k, v in pair.items() for f in ("seconds", "max_rss_mb")},
        }
        rows.append(row)
        print(f"{size:>9,} items: chunked {row['chunked_seconds']:6.2f} s {row['chunked_max_rss_mb']:7.0f} MB | "
              f"one-shot {row['one-shot_seconds']:6.2f} s {row['one-shot_max_rss_mb']:7.0f} MB | identical {same}", flush=True)  # fmt: skip
    print("written", write_record("bench_eval_scaling", {"machine": machine(), "chunk": CHUNK, "rows": rows}))


if __name__ == "__main__":
    main()
