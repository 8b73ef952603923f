"""Per-family size formulas (torch-free): what a `Family` in the registry names as its block size,
attention width and final norm. `tests/test_models.py` checks each against the module's tensors.

A block formula returns (parameters, dense matmul weights) of one block; the matmul weights cost 2
FLOPs per token each in the forward pass (accounting.py composes them into training FLOPs).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

from scalelab.models.spec import ModelSpec

NUM_TIME_WEIGHTS = 129  # time buckets 0..128


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


def rab_params(spec: ModelSpec) -> int:
    return {"none": 0, "position": 2 * spec.max_len - 1, "position_time": 2 * spec.max_len - 1 + 129}[
        spec.rab
    ]


def softmax_attention(d: int, hd: int, bias: bool) -> tuple[int, int]:
    """(params, matmul weights) of q, k, v and output projections D -> H*d -> D."""
    weights = 4 * d * hd
    return weights + ((3 * hd + d) if bias else 0), weights


def _inner(spec: ModelSpec) -> tuple[int, int, int]:
    return spec.width, spec.heads * spec.head_dim, spec.ffn_hidden


# ------------------------------------------------------------------------------------- blocks


def hstu_block(spec: ModelSpec) -> tuple[int, int]:
    d, hd, _ = _inner(spec)
    proj = d * ((2 if spec.gate else 1) * hd + 2 * hd)  # u (if gated), v, q, k; no bias
    out = hd * d
    return proj + out + d + rab_params(spec), proj + out


def sasrec_block(spec: ModelSpec) -> tuple[int, int]:
    """SASRec and SASRec+: biased attention, two LayerNorms, ReLU FFN, optional relative bias."""
    d, hd, f = _inner(spec)
    attn, attn_w = softmax_attention(d, hd, bias=True)
    ffn_w = 2 * d * f
    return attn + 2 * 2 * d + ffn_w + f + d + rab_params(spec), attn_w + ffn_w


def gpt_block(spec: ModelSpec) -> tuple[int, int]:
    d, hd, f = _inner(spec)
    attn, attn_w = softmax_attention(d, hd, bias=True)
    ffn_w = 2 * d * f
    return attn + 2 * 2 * d + ffn_w + f + d, attn_w + ffn_w


def llama_block(spec: ModelSpec) -> tuple[int, int]:
    d, hd, f = _inner(spec)
    attn, attn_w = softmax_attention(d, hd, bias=False)
    ffn_w = 3 * d * f
    return attn + 2 * d + ffn_w, attn_w + ffn_w


def fuxi_block(spec: ModelSpec) -> tuple[int, int]:
    d, hd, f = _inner(spec)
    c = len(spec.fuxi_channels)
    qk = 2 * hd if "semantic" in spec.fuxi_channels else 0
    proj = d * (c * hd + hd + qk)  # u (c channels), v, q, k; no bias
    lin0 = c * hd * d
    ffn_w = 3 * d * f
    rab = (2 * spec.max_len - 1 if "positional" in spec.fuxi_channels else 0) + (
        NUM_TIME_WEIGHTS if "temporal" in spec.fuxi_channels else 0
    )
    return proj + lin0 + d + ffn_w + rab, proj + lin0 + ffn_w


# --------------------------------------------------------------- attention widths, final norms


def qk_and_v(spec: ModelSpec) -> int:
    """Per head and layer, the widths an attention pair costs: scores (d_qk) plus their use (d_v)."""
    return 2 * spec.head_dim


def fuxi_attention(spec: ModelSpec) -> int:
    """FuXi-alpha: semantic scores (d_qk, if that channel is on) plus each channel's use of v."""
    sem = "semantic" in spec.fuxi_channels
    return (spec.head_dim if sem else 0) + len(spec.fuxi_channels) * spec.head_dim


def no_final_norm(spec: ModelSpec) -> int:
    return 0


def layer_norm_final(spec: ModelSpec) -> int:
    return 2 * spec.width


def rms_norm_final(spec: ModelSpec) -> int:
    return spec.width


# ------------------------------------------------------------------------------------ ranking

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


def din_size(spec: ModelSpec, num_items: int, negative_rate: float, mean_history: float | None) -> SizeReport:
    """DIN: the history projection once per token, then per candidate the attention MLP over
    `mean_history` items (default: half the padded length) and the head; FLOPs per positive."""
    d, per = spec.width, 1.0 + negative_rate
    att, att_w = mlp_size([4 * d, *DIN_ATTENTION_HIDDEN])
    head, head_w = mlp_size([3 * d, *din_head(spec.depth)])
    hist = mean_history if mean_history is not None else spec.max_len / 2
    first = 4 * d * DIN_ATTENTION_HIDDEN[0]
    per_candidate = (
        hist * (att_w - first / 2) + head_w
    )  # [e] and [h*e] parts of the first layer per candidate
    flops = 6.0 * (first / 4 + per * per_candidate)
    return SizeReport((num_items + 1) * d, att + head, att_w + head_w, 0.0, 0.0, flops)
