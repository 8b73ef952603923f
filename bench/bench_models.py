"""Forward+backward throughput of every architecture on real ML-1M batches (CPU).

Config: width 50, depth 2, 1 head, sequence length 200, batch 128 (Meta's ML-1M base config).
Unit: non-padding tokens per second through the model (input layer, encoder, L2-normalised
scoring of each position against its next item), forward + backward, no optimiser step, after
warm-up. Reference in the same run: torch.nn.TransformerEncoder (pre-LN, causal, same width, FFN
hidden = width) behind the same input layer, so the ratio says how each family compares with
PyTorch's stock transformer.

    python bench/bench_models.py [--steps 8] [--reps 3]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_time, ml1m_path, padded_batches, write_record

from scalelab.config import DataConfig, ModelConfig
from scalelab.data.loader import load_dataset
from scalelab.data.split import make_split
from scalelab.models import build_model, resolve
from scalelab.models.accounting import size_report
from scalelab.models.registry import FAMILIES

WIDTH, DEPTH, HEADS, SEQ, BATCH = 50, 2, 1, 200, 128


class TorchReference(nn.Module):
    """Same input layer as scalelab's models, then torch.nn.TransformerEncoder."""

    def __init__(self, num_items: int) -> None:
        super().__init__()
        self.item_emb = nn.Embedding(num_items + 1, WIDTH, padding_idx=0)
        self.pos_emb = nn.Embedding(SEQ, WIDTH)
        layer = nn.TransformerEncoderLayer(WIDTH, HEADS, WIDTH, 0.2, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, DEPTH, enable_nested_tensor=False)

    def forward(self, items: torch.Tensor, timestamps: torch.Tensor) -> torch.Tensor:
        n = items.shape[1]
        valid = items != 0
        x = (self.item_emb(items) * math.sqrt(WIDTH) + self.pos_emb.weight[:n]) * valid[..., None]
        mask = nn.Transformer.generate_square_subsequent_mask(n)
        return self.encoder(x, mask=mask, is_causal=True) * valid[..., None]

    def item_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.item_emb(ids), dim=-1)


def step(model: nn.Module, items: torch.Tensor, ts: torch.Tensor) -> None:
    h = model(items, ts)
    target = torch.roll(items, -1, dims=1)
    target[:, -1] = 0
    mask = target != 0
    users = F.normalize(h[mask], dim=-1)
    loss = -(users * model.item_embeddings(target[mask])).sum(-1).mean()
    loss.backward()
    model.zero_grad(set_to_none=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    data = load_dataset(DataConfig(path=str(ml1m_path()), split="leave_one_out"))
    sp = make_split(data, "leave_one_out", SEQ)
    batches = padded_batches(data.ptr, data.items, data.timestamps, sp.train_end, SEQ, BATCH)[
        : args.steps + 2
    ]
    tokens = sum(int((b[0] != 0).sum()) for b in batches[2:])

    def run(model: nn.Module) -> float:
        model.train()
        for items, ts in batches[:2]:  # warm-up
            step(model, items, ts)

        def timed() -> None:
            for items, ts in batches[2:]:
                step(model, items, ts)

        return tokens / median_time(timed, args.reps)

    ref = run(TorchReference(data.num_items))
    rows = []
    print(f"{'family':<12} {'tokens/s':>10} {'vs torch':>9} {'non-emb params':>15} {'GFLOP/s':>8}")
    print(f"{'torch.nn':<12} {ref:>10,.0f} {1.0:>9.2f}")
    for fam in (f for f, v in FAMILIES.items() if "retrieval" in v.tasks):
        cfg = ModelConfig(family=fam, width=WIDTH, depth=DEPTH, heads=HEADS)
        rate = run(build_model(cfg, data.num_items, SEQ))
        size = size_report(resolve(cfg, SEQ), data.num_items, negatives=0)
        # analytic model FLOPs without the sampled-softmax term (this step scores only the target)
        gflops = rate * (size.flops_per_token) / 1e9
        rows.append(
            {
                "family": fam,
                "tokens_per_s": rate,
                "ratio_vs_torch": rate / ref,
                "non_embedding_params": size.non_embedding_params,
                "model_gflops_per_s": gflops,
            }
        )
        print(f"{fam:<12} {rate:>10,.0f} {rate / ref:>9.2f} {size.non_embedding_params:>15,} {gflops:>8.2f}")
    path = write_record(
        "bench_models",
        {
            "command": "python bench/bench_models.py",
            "config": {"width": WIDTH, "depth": DEPTH, "heads": HEADS, "seq_len": SEQ, "batch": BATCH},
            "tokens_per_batch_mean": tokens / (len(batches) - 2),
            "reference_torch_tokens_per_s": ref,
            "families": rows,
            "machine": machine(),
        },
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()
