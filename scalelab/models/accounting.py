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
