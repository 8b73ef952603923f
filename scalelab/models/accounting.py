"""Analytic size and compute of every family (torch-free, used by sweeps and fitters).

Parameters are split as scaling laws need them: embedding (item table + absolute position table)
and non-embedding (everything else). Training FLOPs per token follow the usual accounting:

    6 * (dense matmul weights)                       forward + backward of the projections
  + 6 * L * keys * H * (d_qk + channels * d_v)       attention scores and their use, causal
  + 6 * D * (1 + negatives)                          scoring the target and the negatives

where keys = (N + 1) / 2 is the mean number of keys a query attends to under the causal mask at
padded length N. Biases, norms and relative-bias lookups are counted as parameters but not as
FLOPs (they are O(D) per token). Each family's block, attention width and final norm come from its
`Family` entry in the registry (formulas in `sizes.py`); `run_size` is the one place that chooses
the retrieval or ranking accounting and the negatives a run scores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalelab.models.registry import family
from scalelab.models.sizes import (
    DIN_ATTENTION_HIDDEN,
    RANKING_HEAD_HIDDEN,
    SizeReport,
    din_head,
    mlp_size,
)
from scalelab.models.spec import ModelSpec

if TYPE_CHECKING:
    from scalelab.config import RunConfig

__all__ = [
    "DIN_ATTENTION_HIDDEN",
    "RANKING_HEAD_HIDDEN",
    "SizeReport",
    "din_head",
    "mlp_size",
    "ranking_size_report",
    "run_size",
    "scored_negatives",
    "size_report",
]


def size_report(spec: ModelSpec, num_items: int, negatives: int = 128) -> SizeReport:
    """Exact parameter counts and analytic training FLOPs per token of a sequence encoder."""
    fam = family(spec.family)
    if fam.block_size is None:
        raise ValueError(f"{spec.family} is not a sequence encoder: it has no per-token size")
    d = spec.width
    embedding = (num_items + 1) * d + (spec.max_len * d if spec.absolute_positions else 0)
    block, block_w = fam.block_size(spec)
    non_embedding = spec.depth * block + fam.final_norm(spec)
    matmul = spec.depth * block_w
    keys = (spec.max_len + 1) / 2
    attention = 6.0 * spec.depth * keys * spec.heads * fam.attention_width(spec)
    loss = 6.0 * d * (1 + negatives)
    return SizeReport(embedding, non_embedding, matmul, attention, loss, 6.0 * matmul + attention + loss)


def ranking_size_report(
    spec: ModelSpec,
    num_items: int,
    negative_rate: float,
    scorer: str = "cross",
    mean_history: float | None = None,
) -> SizeReport:
    """Sizes of a ranking model; FLOPs are per positive (its 1 + rate candidates), forward + backward.

    Encoders: the encoder's per-token cost (one window token per positive) plus the head on every
    candidate. A ranking-only family (DIN) sizes itself (`Family.own_size`).
    """
    fam = family(spec.family)
    if fam.own_size is not None:
        return fam.own_size(spec, num_items, negative_rate, mean_history)
    d, per = spec.width, 1.0 + negative_rate
    enc = size_report(spec, num_items, negatives=0)
    head, head_w = (
        (1, d) if scorer == "dot" else mlp_size([(2 if scorer == "mlp" else 3) * d, *RANKING_HEAD_HIDDEN])
    )
    scoring = 6.0 * per * head_w
    return SizeReport(
        enc.embedding_params,
        enc.non_embedding_params + head,
        enc.matmul_params + (0 if scorer == "dot" else head_w),
        enc.attention_flops_per_token,
        scoring,
        enc.flops_per_token - enc.loss_flops_per_token + scoring,
    )


def scored_negatives(cfg: RunConfig, num_items: int) -> int:
    """Items each retrieval target is scored against besides itself, by the training loss."""
    t = cfg.train
    return {"sampled_softmax": t.num_negatives, "bce": 1, "full_softmax": num_items}[t.loss]


def run_size(
    cfg: RunConfig, spec: ModelSpec, num_items: int, mean_history: float | None = None
) -> SizeReport:
    """The size and training compute of a run: ranking or retrieval accounting as its task says."""
    if cfg.task.kind == "ranking":
        return ranking_size_report(spec, num_items, cfg.task.negative_rate, cfg.task.scorer, mean_history)
    return size_report(spec, num_items, scored_negatives(cfg, num_items))
