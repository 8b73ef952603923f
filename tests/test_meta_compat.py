"""HSTU against Meta's research formula on Meta-shaped weights (tests/fixtures/meta_hstu).

`meta_hstu` below re-implements the research code's dense (padded) computation from its documented
formula, independently of scalelab's blocks: the relative bias through Meta's pad-repeat-reshape
Toeplitz construction, time gaps to the next timestamp of a sequence extended by its last entry,
float32 bucketing, SiLU attention divided by the padded length N, LayerNorms with eps 1e-6.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from scalelab.config import ModelConfig
from scalelab.models import build_model
from scalelab.models.blocks import float32_time_buckets, time_buckets

FIXTURE = Path(__file__).parent / "fixtures" / "meta_hstu" / "weights.pt"


@pytest.fixture(scope="module")
def fx() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def meta_rel_bias(pos_w: torch.Tensor, ts_w: torch.Tensor, ts: torch.Tensor, n: int) -> torch.Tensor:
    """(B, N, N) position + time bias, built as the research code builds it."""
    t = F.pad(pos_w[: 2 * n - 1], [0, n]).repeat(n)
    t = t[..., :-n].reshape(1, n, 3 * n - 2)
    r = (2 * n - 1) // 2
    rel_pos = t[:, :, r:-r]
    ext = torch.cat([ts, ts[:, n - 1 : n]], dim=1)
    dt = ext[:, 1:].unsqueeze(2) - ext[:, :-1].unsqueeze(1)
    buckets = torch.clamp((torch.log(torch.abs(dt).clamp(min=1)) / 0.301).long(), min=0, max=128)
    rel_ts = torch.index_select(ts_w, 0, buckets.view(-1)).view(ts.shape[0], n, n)
    return rel_pos + rel_ts


def meta_hstu(fx: dict, divisor: float | None = None) -> torch.Tensor:
    """(B, N, D) hidden states of Meta's HSTU (eval mode), zero at padded positions."""
    w, ids, ts = fx["weights"], fx["ids"], fx["timestamps"]
    n, d, h, hd, layers, _ = fx["dims"].tolist()
    mask = (ids != 0).float()[..., None]
    x = w["_embedding_module._item_emb.weight"][ids] * math.sqrt(d)
    x = (x + w["_input_features_preproc._pos_emb.weight"][None, :n]) * mask
    causal = torch.ones(n, n).tril()
    for i in range(layers):
        p = f"_hstu._attention_layers.{i}."
        uvqk = F.silu(F.layer_norm(x, [d], eps=1e-6) @ w[p + "_uvqk"])
        u, v, q, k = torch.split(uvqk, [h * hd] * 4, dim=-1)
        q, k, v = (z.reshape(*z.shape[:2], h, hd) for z in (q, k, v))
        a = torch.einsum("bnhd,bmhd->bhnm", q, k)
        a = a + meta_rel_bias(w[p + "_rel_attn_bias._pos_w"], w[p + "_rel_attn_bias._ts_w"], ts, n)[:, None]
        a = F.silu(a) / (divisor or n) * causal
        o = torch.einsum("bhnm,bmhd->bnhd", a, v).reshape(*x.shape[:2], h * hd)
        o = u * F.layer_norm(o, [h * hd], eps=1e-6)
        x = (o @ w[p + "_o.weight"].T + w[p + "_o.bias"] + x) * mask  # jagged: padded rows stay empty
    return x


def scalelab_hstu(fx: dict, **kw: object) -> torch.nn.Module:
    n, d, h, hd, layers, items = fx["dims"].tolist()
    cfg = ModelConfig(
        family="hstu", width=d, depth=layers, heads=h, head_dim=hd, dropout=0.0, max_seq_len=n, **kw
    )
    model = build_model(cfg, items, n)
    w = fx["weights"]
    state = {
        "item_emb.weight": w["_embedding_module._item_emb.weight"],
        "pos_emb.weight": w["_input_features_preproc._pos_emb.weight"],
    }
    for i in range(layers):
        p, q = f"_hstu._attention_layers.{i}.", f"encoder.blocks.{i}."
        state |= {
            q + "uvqk": w[p + "_uvqk"],
            q + "o.weight": w[p + "_o.weight"],
            q + "o.bias": w[p + "_o.bias"],
            q + "rab.pos_w": w[p + "_rel_attn_bias._pos_w"],
            q + "rab.time_w": w[p + "_rel_attn_bias._ts_w"],
        }
    model.load_state_dict(state, strict=True)
    return model.eval()


def ours(model: torch.nn.Module, fx: dict) -> torch.Tensor:
    lengths = fx["lengths"]
    width = int(lengths.max())  # our batches are padded to the longest user, not to N
    ids, ts = fx["ids"][:, :width], fx["timestamps"][:, :width]
    return model(ids, ts, fx["query_time"])


def real(fx: dict) -> torch.Tensor:
    width = int(fx["lengths"].max())
    return fx["ids"][:, :width] != 0


def test_fixture_gaps_hit_float32_edges(fx: dict) -> None:
    # the batch holds causal pairs whose float32 bucket differs from the exact one
    ext = torch.cat([fx["timestamps"], fx["timestamps"][:, -1:]], dim=1)
    dt = (ext[:, 1:, None] - ext[:, None, :-1]).abs()
    n = int(fx["dims"][0])
    keep = torch.ones(n, n, dtype=torch.bool).tril() & (fx["ids"] != 0)[:, :, None]
    diff = (float32_time_buckets(dt) != time_buckets(dt).int()) & keep
    assert int(diff.sum()) >= 4


def test_meta_exact_hstu_equals_meta_formula(fx: dict) -> None:
    m = real(fx)
    ref = meta_hstu(fx)[:, : m.shape[1]]
    with torch.no_grad():
        got = ours(scalelab_hstu(fx, time_buckets="float32"), fx)
    torch.testing.assert_close(got[m], ref[m], atol=1e-6, rtol=0)


def test_meta_exact_last_state_equals_meta_formula(fx: dict) -> None:
    """The retrieval path (only each user's last row in the last block) gives the same state."""
    m = real(fx)
    lengths = fx["lengths"]
    ref = meta_hstu(fx)[torch.arange(len(lengths)), lengths - 1]
    model = scalelab_hstu(fx, time_buckets="float32")
    with torch.no_grad():
        got = model.last_state(
            fx["ids"][:, : m.shape[1]], fx["timestamps"][:, : m.shape[1]], fx["query_time"]
        )
    torch.testing.assert_close(got, F.normalize(ref, dim=-1, eps=1e-6), atol=1e-6, rtol=0)


def test_meta_exact_gradients_match(fx: dict) -> None:
    m = real(fx)
    model = scalelab_hstu(fx, time_buckets="float32")
    ours(model, fx)[m].square().sum().backward()
    leaves = {k: v.clone().requires_grad_(True) for k, v in fx["weights"].items()}
    ref = meta_hstu(fx | {"weights": leaves})[:, : m.shape[1]][m].square().sum()
    ref.backward()
    for i in range(int(fx["dims"][4])):
        p, q = f"_hstu._attention_layers.{i}.", model.encoder.blocks[i]
        for name, param in (
            ("_uvqk", q.uvqk),
            ("_rel_attn_bias._ts_w", q.rab.time_w),
            ("_rel_attn_bias._pos_w", q.rab.pos_w),
            ("_o.weight", q.o.weight),
        ):
            want = leaves[p + name].grad
            torch.testing.assert_close(param.grad, want, atol=1e-6 * float(want.abs().max()), rtol=1e-4)


def test_exact_bucketing_and_divisor_both_change_the_output(fx: dict) -> None:
    """The two settings that make the model Meta-exact matter on this batch: exact buckets move the
    rows that see a float32-sensitive gap, and dividing by N - 10 instead of N moves every row through
    the LayerNorm's epsilon (the attention output's variance is of its order at this init)."""
    m = real(fx)
    ref = meta_hstu(fx)[:, : m.shape[1]]
    with torch.no_grad():
        exact = ours(scalelab_hstu(fx, time_buckets="exact"), fx)
    assert (exact[m] - ref[m]).abs().max() > 1e-5
    n = int(fx["dims"][0])
    short = meta_hstu(fx, divisor=n - 10)[:, : m.shape[1]]
    assert (short[m] - ref[m]).abs().max() > 1e-4
