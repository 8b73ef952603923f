"""Analytic size and compute of every family (torch-free, used by sweeps and fitters).

Parameters are split as scaling laws need them: embedding (item table + absolute position table)
and non-embedding (everything else). Training FLOPs per token follow the usual accounting:

    6 * (dense matmul weights)                       forward + backward of the projections
  + 6 * L * keys * H * (d_qk + channels * d_v)       attention scores and their use, causal
  + 6 * D * (1 + negatives)                          scoring the target and the negatives

where keys = (N + 1) / 2 is the mean number of keys a query attends to under the causal mask at
padded length N. Biases, norms and relative-bias lookups are counted as parameters but not as
FLOPs (they are O(D) per token).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

from scalelab.models.registry import ModelSpec


@dataclass(frozen=True)
class SizeReport:
    embedding_params: int
    non_embedding_params: int
    matmul_params: int  # dense weights that cost 2 FLOPs per token each in the forward pass
    attention_flops_per_token: float  # forward + backward
    loss_flops_per_token: float  # forward + backward
    flops_per_token: float  # training, forward + backward

    @property
    def total_params(self) -> int:
        return self.embedding_params + self.non_embedding_params

    def flops_per_epoch(self, tokens: int) -> float:
        return self.flops_per_token * tokens

    def as_dict(self) -> dict[str, float]:
        d: dict[str, float] = asdict(self)
        d["total_params"] = self.total_params
        return d


def _rab_params(spec: ModelSpec) -> int:
    return {"none": 0, "position": 2 * spec.max_len - 1, "position_time": 2 * spec.max_len - 1 + 129}[
        spec.rab
    ]


def _softmax_attention(d: int, hd: int, bias: bool) -> tuple[int, int]:
    """(params, matmul weights) of q, k, v and output projections D -> H*d -> D."""
    weights = 4 * d * hd
    return weights + ((3 * hd + d) if bias else 0), weights


def _block(spec: ModelSpec) -> tuple[int, int]:
    """(params, matmul weights) of one block."""
    d, hd, f = spec.width, spec.heads * spec.head_dim, spec.ffn_hidden
    if spec.family == "hstu":
        proj = d * ((2 if spec.gate else 1) * hd + 2 * hd)  # u (if gated), v, q, k; no bias
        out = hd * d
        return proj + out + d + _rab_params(spec), proj + out
    if spec.family in ("sasrec", "sasrec_plus"):
        attn, attn_w = _softmax_attention(d, hd, bias=True)
        ffn_w = 2 * d * f
        return attn + 2 * 2 * d + ffn_w + f + d + _rab_params(spec), attn_w + ffn_w
    if spec.family == "gpt":
        attn, attn_w = _softmax_attention(d, hd, bias=True)
        ffn_w = 2 * d * f
        return attn + 2 * 2 * d + ffn_w + f + d, attn_w + ffn_w
    if spec.family == "llama":
        attn, attn_w = _softmax_attention(d, hd, bias=False)
        ffn_w = 3 * d * f
        return attn + 2 * d + ffn_w, attn_w + ffn_w
    if spec.family == "fuxi_alpha":
        c = len(spec.fuxi_channels)
        qk = 2 * hd if "semantic" in spec.fuxi_channels else 0
        proj = d * (c * hd + hd + qk)  # u (c channels), v, q, k; no bias
        lin0 = c * hd * d
        ffn_w = 3 * d * f
        rab = (2 * spec.max_len - 1 if "positional" in spec.fuxi_channels else 0) + (
            129 if "temporal" in spec.fuxi_channels else 0
        )
        return proj + lin0 + d + ffn_w + rab, proj + lin0 + ffn_w
    raise ValueError(f"no size formula for family {spec.family!r}")


def _final_norm(spec: ModelSpec) -> int:
    return {"gpt": 2 * spec.width, "llama": spec.width}.get(spec.family, 0)


def size_report(spec: ModelSpec, num_items: int, negatives: int = 128) -> SizeReport:
    """Exact parameter counts and analytic training FLOPs per token for `spec`."""
    d = spec.width
    embedding = (num_items + 1) * d + (spec.max_len * d if spec.absolute_positions else 0)
    block, block_w = _block(spec)
    non_embedding = spec.depth * block + _final_norm(spec)
    matmul = spec.depth * block_w
    keys = (spec.max_len + 1) / 2
    if spec.family == "fuxi_alpha":
        sem = "semantic" in spec.fuxi_channels
        per_layer = (spec.head_dim if sem else 0) + len(spec.fuxi_channels) * spec.head_dim
    else:
        per_layer = 2 * spec.head_dim
    attention = 6.0 * spec.depth * keys * spec.heads * per_layer
    loss = 6.0 * d * (1 + negatives)
    return SizeReport(embedding, non_embedding, matmul, attention, loss, 6.0 * matmul + attention + loss)


# ------------------------------------------------------------------------------------------ ranking

DIN_ATTENTION_HIDDEN = (80, 40)
RANKING_HEAD_HIDDEN = (200, 80)


def mlp_size(dims: list[int]) -> tuple[int, int]:
    """(params, matmul weights) of `ranking.mlp(dims)`: Linear + PReLU per hidden layer, one output."""
    sizes = [*dims, 1]
    weights = sum(a * b for a, b in itertools.pairwise(sizes))
    return weights + sum(sizes[1:]) + (len(dims) - 1), weights


def din_head(depth: int) -> tuple[int, ...]:
    """Hidden sizes of DIN's MLP: 200, then 80 per further layer (the paper's 200-80 at depth 2)."""
    return (200, *([80] * (depth - 1)))


def ranking_size_report(
    spec: ModelSpec,
    num_items: int,
    negative_rate: float,
    scorer: str = "cross",
    mean_history: float | None = None,
) -> SizeReport:
    """Sizes of a ranking model; FLOPs are per positive (its 1 + rate candidates), forward + backward.

    Encoders: the encoder's per-token cost (one window token per positive) plus the head on every
    candidate. DIN: the history projection once per token, then per candidate the attention MLP over
    `mean_history` items (default: half the padded length) and the head.
    """
    d, per = spec.width, 1.0 + negative_rate
    if spec.family == "din":
        att, att_w = mlp_size([4 * d, *DIN_ATTENTION_HIDDEN])
        head, head_w = mlp_size([3 * d, *din_head(spec.depth)])
        hist = mean_history if mean_history is not None else spec.max_len / 2
        first = 4 * d * DIN_ATTENTION_HIDDEN[0]
        per_candidate = (
            hist * (att_w - first / 2) + head_w
        )  # [e] and [h*e] parts of the first layer per candidate
        flops = 6.0 * (first / 4 + per * per_candidate)
        return SizeReport((num_items + 1) * d, att + head, att_w + head_w, 0.0, 0.0, flops)
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
