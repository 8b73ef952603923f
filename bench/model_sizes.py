"""Parameter counts of every family: analytic formula vs counting the built module's tensors.

ML-1M catalogue (3,416 items), padded length N = 201 (200 history items + the next one).

    python bench/model_sizes.py      # prints a Markdown table, writes results/reference/model_sizes.json
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_record

from scalelab.config import ModelConfig
from scalelab.models import build_model, resolve
from scalelab.models.accounting import size_report
from scalelab.models.registry import FAMILIES

NUM_ITEMS, N = 3416, 201


def main() -> None:
    rows = []
    print(
        "| family | width | depth | heads | embedding (formula / module) | non-embedding (formula / module) |"
    )
    print("|---|---|---|---|---|---|")
    for width, depth, heads in [(50, 2, 1), (64, 8, 2)]:
        for fam in (f for f, v in FAMILIES.items() if "retrieval" in v.tasks):
            cfg = ModelConfig(family=fam, width=width, depth=depth, heads=heads)
            r = size_report(resolve(cfg, N), NUM_ITEMS)
            model = build_model(cfg, NUM_ITEMS, N)
            emb = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("item_emb", "pos_emb")))
            non = sum(p.numel() for p in model.parameters()) - emb
            ok = (emb, non) == (r.embedding_params, r.non_embedding_params)
            rows.append(
                {
                    "family": fam,
                    "width": width,
                    "depth": depth,
                    "heads": heads,
                    "embedding": [r.embedding_params, emb],
                    "non_embedding": [r.non_embedding_params, non],
                    "match": ok,
                }
            )
            print(
                f"| {fam} | {width} | {depth} | {heads} | {r.embedding_params:,} / {emb:,} | "
                f"{r.non_embedding_params:,} / {non:,} |"
            )
            if not ok:
                raise SystemExit(f"mismatch for {fam} {width}x{depth}")
    write_record(
        "model_sizes",
        {"command": "python bench/model_sizes.py", "num_items": NUM_ITEMS, "padded_len": N, "rows": rows},
    )


if __name__ == "__main__":
    main()
