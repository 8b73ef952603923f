"""Properties every architecture must have, plus hand-computed checks of HSTU's math."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from scalelab.config import ModelConfig
from scalelab.models import build_model, resolve
from scalelab.models.accounting import size_report
from scalelab.models.blocks import (
    RelativeBias,
    next_timestamps,
    softmax_attention,
    time_buckets,
)
from scalelab.models.kernels import pair_time_buckets
from scalelab.models.registry import FAMILIES

FAMILY_NAMES = [f for f, fam in FAMILIES.items() if "retrieval" in fam.tasks]  # sequence encoders
NUM_ITEMS, MAX_LEN = 60, 24


def make(family: str, seed: int = 0, **kw: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    kw.setdefault("width", 16)
    kw.setdefault("depth", 2)
    kw.setdefault("heads", 2)
    model = build_model(ModelConfig(family=family, **kw), NUM_ITEMS, MAX_LEN)
    return model.eval()


def batch(b: int = 3, n: int = 12, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, NUM_ITEMS + 1, (b, n), generator=g)
    if b >= 3:
        items[1, 8:] = 0  # shorter users (right padding)
        items[2, 5:] = 0
    ts = 1_000_000 + torch.cumsum(torch.randint(1, 200_000, (b, n), generator=g), dim=1)
    return items, ts


def valid_close(a: torch.Tensor, b: torch.Tensor, items: torch.Tensor) -> bool:
    m = items != 0
    return torch.allclose(a[m], b[m], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_causality(family: str) -> None:
    model = make(family)
    items, ts = batch()
    out = model(items, ts)
    t = 4
    changed = items.clone()
    changed[:, t + 1] = (changed[:, t + 1] % NUM_ITEMS) + 1  # a different item, same time
    changed[items == 0] = 0
    out2 = model(changed, ts)
    assert torch.allclose(out[:, : t + 1], out2[:, : t + 1], atol=1e-6)
    assert not torch.allclose(out[0, t + 1 :], out2[0, t + 1 :])  # later positions do see it


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_padding_invariance(family: str) -> None:
    model = make(family)
    items, ts = batch()
    out = model(items, ts)
    padded = F.pad(items, (0, 7))
    padded_ts = F.pad(ts, (0, 7))
    out2 = model(padded, padded_ts)
    assert valid_close(out, out2[:, : items.shape[1]], items)
    assert (out2[:, items.shape[1] :] == 0).all()


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_batch_independence(family: str) -> None:
    model = make(family)
    items, ts = batch()
    out = model(items, ts)
    alone = model(items[1:2, :8], ts[1:2, :8])
    assert torch.allclose(out[1, :8], alone[0], atol=1e-5)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_determinism_under_seed(family: str) -> None:
    items, ts = batch()
    a, b, c = make(family, seed=3), make(family, seed=3), make(family, seed=4)
    assert torch.equal(a(items, ts), b(items, ts))
    assert not torch.allclose(a(items, ts), c(items, ts))


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_gradients_reach_every_parameter(family: str) -> None:
    model = make(family, dropout=0.0).train()
    items, ts = batch(n=MAX_LEN)
    h = model(items, ts)
    users = model.normalize(h[items != 0])
    logits = model.score(users, model.item_embeddings(), temperature=0.05)
    target = torch.randint(0, NUM_ITEMS, (users.shape[0],))
    F.cross_entropy(logits, target).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, f"{name} gets no gradient"


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_analytic_parameter_count_matches_module(family: str) -> None:
    for width, depth, heads in [(16, 1, 1), (50, 2, 1), (64, 8, 2), (48, 3, 4)]:
        cfg = ModelConfig(family=family, width=width, depth=depth, heads=heads)
        model = build_model(cfg, NUM_ITEMS, 201)
        emb = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("item_emb", "pos_emb")))
        total = sum(p.numel() for p in model.parameters())
        r = size_report(resolve(cfg, 201), NUM_ITEMS)
        assert (r.embedding_params, r.non_embedding_params) == (emb, total - emb), (width, depth, heads)


def test_meta_ml1m_hstu_non_embedding_count_equals_models_md_formula() -> None:
    # models.md: per block D(2 H dv + 2 H dqk) (uvqk) + H dv D + D (W_o with bias) + (2N - 1) + 129 (rab)
    n, d, h, dh = 211, 50, 1, 50
    formula = 2 * (d * (2 * h * dh + 2 * h * dh) + h * dh * d + d + (2 * n - 1) + 129)
    cfg = ModelConfig(family="hstu", width=50, depth=2, heads=1, head_dim=50)
    model = build_model(cfg, 3416, n)
    counted = sum(
        p.numel() for name, p in model.named_parameters() if not name.startswith(("item_emb", "pos_emb"))
    )
    assert counted == formula == 26_200


# ------------------------------------------------------------------------------------- ablations


def test_hstu_ablation_switches_change_the_computation() -> None:
    items, ts = batch()
    variants = {
        "full": {},
        "no_rab": {"rab": "none"},
        "pos_rab": {"rab": "position"},
        "softmax": {"attention": "softmax"},
        "no_gate": {"gate": False},
    }
    outs = {k: make("hstu", **v)(items, ts) for k, v in variants.items()}
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not torch.allclose(outs[a], outs[b]), (a, b)
    no_rab = make("hstu", rab="none")
    assert not any("rab" in n for n, _ in no_rab.named_parameters())
    assert not any("time_w" in n for n, _ in make("hstu", rab="position").named_parameters())


def test_other_switches_change_the_computation() -> None:
    items, ts = batch()
    pairs = [
        ("sasrec_plus", {"residual": "pre"}, {"residual": "post"}),
        ("sasrec_plus", {"rab": "position_time"}, {"rab": "none"}),
        ("fuxi_alpha", {}, {"fuxi_channels": ["semantic"]}),
        (
            "fuxi_alpha",
            {"fuxi_channels": ["semantic", "positional"]},
            {"fuxi_channels": ["semantic", "temporal"]},
        ),
    ]
    for fam, a, b in pairs:
        assert not torch.allclose(make(fam, **a)(items, ts), make(fam, **b)(items, ts)), (fam, a, b)
    # SASRec+ with both fixes off is exactly SASRec (same parameters, same outputs)
    plain = make("sasrec", seed=5)
    off = make("sasrec_plus", seed=5, rab="none", residual="post")
    assert torch.equal(plain(items, ts), off(items, ts))


def test_invalid_combinations_are_rejected_at_config_time() -> None:
    from pydantic import ValidationError

    bad = [
        {"family": "gpt", "gate": False},
        {"family": "llama", "rab": "position"},
        {"family": "sasrec", "residual": "pre"},
        {"family": "hstu", "residual": "pre"},
        {"family": "hstu", "ffn_multiplier": 2.0},
        {"family": "hstu", "fuxi_channels": ["semantic"]},
        {"family": "fuxi_alpha", "fuxi_channels": []},
        {"family": "nope"},
    ]
    for kw in bad:
        with pytest.raises(ValidationError):
            ModelConfig(**kw)


# ------------------------------------------------------------------------- hand-computed checks


def test_position_bias_is_toeplitz_with_documented_index() -> None:
    n_max = 7
    rab = RelativeBias(n_max, position=True, time=False)
    with torch.no_grad():
        rab.pos_w.copy_(torch.arange(2 * n_max - 1, dtype=torch.float32))
    m = rab.position_bias(5)
    for i in range(5):
        for j in range(5):
            assert m[i, j].item() == (n_max - 1) + j - i


def test_time_buckets_of_explicit_gaps() -> None:
    gaps = torch.tensor([0, 1, 2, 3, 10, 60, 3600, 86_400, -86_400, 2**62])
    expect = [min(128, max(0, math.floor(math.log(max(abs(int(g)), 1)) / 0.301))) for g in gaps.tolist()]
    assert time_buckets(gaps).tolist() == expect
    assert expect[:4] == [0, 0, 2, 3] and expect[6] == 27 and expect[-1] <= 128


def test_time_bias_uses_the_next_items_timestamp() -> None:
    t = torch.tensor([[100, 200, 1000, 0]])
    valid = torch.tensor([[True, True, True, False]])
    nxt = next_timestamps(t, valid, None)
    assert nxt.tolist() == [[200, 1000, 1000, 0]]  # last real item reuses its own time
    nxt_q = next_timestamps(t, valid, torch.tensor([5000]))
    assert nxt_q.tolist() == [[200, 1000, 5000, 0]]  # ... or the query time when known
    rab = RelativeBias(8, position=False, time=True)
    with torch.no_grad():
        rab.time_w.copy_(torch.arange(129, dtype=torch.float32))
    bias = rab.time_bias(pair_time_buckets(nxt, t))[0]
    # rab_time[i, j] = w[bucket(t_{i+1} - t_j)]
    assert bias[0, 0].item() == math.floor(math.log(100) / 0.301)  # t1 - t0 = 100
    assert bias[1, 0].item() == math.floor(math.log(900) / 0.301)  # t2 - t0 = 900
    assert bias[2, 2].item() == 0  # last item: t2 - t2 = 0


def test_hstu_block_against_a_naive_reference() -> None:
    """Recompute one HSTU block with explicit loops from models.md and compare."""
    torch.manual_seed(0)
    model = make("hstu", width=8, depth=1, heads=2, dropout=0.0)
    block = model.encoder.blocks[0]
    items, ts = batch(b=1, n=6)
    with torch.no_grad():
        x = torch.randn(1, 6, 8)
        from scalelab.models.base import Context

        valid = items != 0
        ctx = Context(valid, ts, next_timestamps(ts, valid, None))
        got = block(x, ctx)[0]

        n, d_head, heads = 6, 4, 2

        def ln(z):
            return (z - z.mean(-1, keepdim=True)) / torch.sqrt(z.var(-1, unbiased=False, keepdim=True) + 1e-6)

        proj = F.silu(ln(x[0]) @ block.uvqk)
        u, v, q, k = proj.split(8, dim=-1)
        nxt = ctx.next_t[0]
        out = torch.zeros(n, 8)
        for h in range(heads):
            sl = slice(h * d_head, (h + 1) * d_head)
            for i in range(n):
                acc = torch.zeros(d_head)
                for j in range(i + 1):
                    gap = int(nxt[i] - ts[0, j])
                    bucket = min(128, max(0, math.floor(math.log(max(abs(gap), 1)) / 0.301)))
                    rab = block.rab.pos_w[(MAX_LEN - 1) + j - i] + block.rab.time_w[bucket]
                    s = (q[i, sl] * k[j, sl]).sum() + rab
                    acc += F.silu(s) / MAX_LEN * v[j, sl]
                out[i, sl] = acc
        expect = x[0] + block.o(u * ln(out))
    assert torch.allclose(got, expect, atol=1e-5)


def test_softmax_attention_with_bias_matches_explicit_formula() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))
    bias = torch.randn(2, 5, 5)
    got = softmax_attention(q, k, v, bias)
    s = (q @ k.transpose(-1, -2) + bias[:, None]) / 2.0  # sqrt(4)
    s = s.masked_fill(~torch.ones(5, 5, dtype=torch.bool).tril(), float("-inf"))
    assert torch.allclose(got, s.softmax(-1) @ v, atol=1e-6)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_bf16_autocast_on_cpu(family: str) -> None:
    model = make(family)
    items, ts = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(items, ts)
    assert torch.isfinite(out.float()).all()
    ref = model(items, ts)
    assert (out.float() - ref).abs().max() < 0.25 * ref.abs().max()


def test_too_long_sequences_are_refused() -> None:
    model = make("hstu")
    items = torch.ones(1, MAX_LEN + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="exceeds the model's max_seq_len"):
        model(items, torch.arange(MAX_LEN + 1)[None])


def test_time_buckets_exact_at_every_edge_and_random_gaps() -> None:
    def ref(g: int) -> int:
        return min(128, max(0, math.floor(math.log(max(abs(g), 1)) / 0.301)))

    edges = [math.ceil(math.exp(0.301 * k)) for k in range(1, 40)]  # beyond ~2^62 int64 ends
    gaps = [e + d for e in edges for d in (-1, 0, 1)]
    gen = torch.Generator().manual_seed(0)
    gaps += (torch.randint(-(10**12), 10**12, (2000,), generator=gen)).tolist()
    gaps += [-g for g in gaps[:50]]
    got = time_buckets(torch.tensor(gaps)).tolist()
    assert got == [ref(g) for g in gaps]


@pytest.mark.parametrize(
    "variant", [{}, {"rab": "none"}, {"rab": "position"}, {"gate": False}, {"attention": "softmax"}]
)
def test_last_state_fast_path_equals_full_forward(variant: dict) -> None:
    model = make("hstu", **variant)
    items, ts = batch()
    qt = ts.max(1).values + 500
    h = model(items, ts, qt)
    last = (items != 0).sum(1) - 1
    expect = model.normalize(h[torch.arange(3), last])
    assert torch.allclose(model.last_state(items, ts, qt), expect, atol=1e-6)


@pytest.mark.parametrize("bias_shape", [(2, 5, 5), (1, 5, 5), None])
def test_lean_pointwise_attention_gradients(bias_shape) -> None:
    """The memory-lean HSTU attention (one saved score tensor, the attention recomputed in the
    backward pass) has the gradients of its formula (finite differences, float64)."""
    from scalelab.models.blocks import causal_mask
    from scalelab.models.kernels import _LeanPointwiseAttention

    torch.manual_seed(0)
    q, k = (torch.randn(2, 3, 5, 4, dtype=torch.double, requires_grad=True) for _ in range(2))
    v = torch.randn(2, 3, 5, 6, dtype=torch.double, requires_grad=True)
    w = causal_mask(5, q.device).double() / 7
    inputs = (q, k, v)
    if bias_shape is not None:
        inputs += (torch.randn(*bias_shape, dtype=torch.double, requires_grad=True),)

    def f(*t):
        return _LeanPointwiseAttention.apply(t[0], t[1], t[2], t[3] if len(t) > 3 else None, w)

    assert torch.autograd.gradcheck(f, inputs)
    plain = (
        torch.nn.functional.silu(q @ k.transpose(-1, -2) + (inputs[3][:, None] if bias_shape else 0)) * w
    ) @ v
    assert torch.allclose(f(*inputs), plain)


def test_hstu_trains_under_bf16_autocast() -> None:
    model = build_model(ModelConfig(family="hstu", depth=2, width=16, heads=2), 30, 9)
    items = torch.randint(1, 31, (3, 9))
    ts = torch.cumsum(torch.randint(1, 100, (3, 9)), 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = model(items, ts)
    h.float().sum().backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("n, row_block", [(37, 16), (37, 5), (8, 64), (1, 16)])
def test_pair_time_buckets_fill_the_causal_triangle_exactly(n: int, row_block: int) -> None:
    """Lower triangle (j <= i) = the bucket of each explicit gap (above it every block masks)."""
    g = torch.Generator().manual_seed(n)
    t = 956_703_932 + torch.cumsum(torch.randint(0, 200_000, (3, n), generator=g), 1)
    nxt = t + torch.randint(0, 5_000, (3, n), generator=g)
    got = pair_time_buckets(nxt, t, row_block=row_block)
    for b in range(3):
        for i in range(n):
            for j in range(i + 1):
                assert got[b, i, j].item() == time_buckets(nxt[b, i : i + 1] - t[b, j]).item(), (b, i, j)


def test_int32_time_buckets_equal_the_edge_count() -> None:
    """The float64-log bucketing of int32 gaps agrees with counting bucket edges (searchsorted) at
    every edge below 2^31 (+-3) and on random gaps."""
    from scalelab.models.kernels import _int32_time_buckets

    edges = [math.ceil(math.exp(0.301 * k)) for k in range(1, 72)]  # edge 72 is past 2^31
    gaps = [g for e in edges for g in range(e - 3, e + 4) if 0 <= g < 2**31]
    rand = torch.randint(0, 2**31 - 1, (5000,), generator=torch.Generator().manual_seed(0))
    gaps += [0, 1, 2**31 - 1, *rand.tolist()]
    dt = torch.tensor(gaps, dtype=torch.int32)
    assert _int32_time_buckets(dt).tolist() == time_buckets(dt.long()).tolist()


@pytest.mark.parametrize("row_block", [5, 16, 64])
def test_causal_row_block_attention_equals_the_square(row_block: int) -> None:
    """HSTU attention a row block at a time (causal triangle, per-block bias) has the values and
    gradients (float64, every input and both bias tables) of the full (n, n) computation."""
    from scalelab.models.blocks import pointwise_silu_attention
    from scalelab.models.kernels import causal_silu_attention, relative_times, time_bucket_rows

    torch.manual_seed(0)
    n, max_len = 37, 40
    q, k, v = (torch.randn(3, 2, n, 8, dtype=torch.double, requires_grad=True) for _ in range(3))
    t = 956_703_932 + torch.cumsum(torch.randint(0, 200_000, (3, n)), 1)
    nxt = torch.cat([t[:, 1:], t[:, -1:] + 7], 1)
    rab = RelativeBias(max_len).double()
    rel = relative_times(nxt, t)

    def square():
        return pointwise_silu_attention(q, k, v, rab(n, pair_time_buckets(nxt, t)), float(max_len))

    def blocked():
        rows = lambda r0, r1: rab.rows(r0, r1, time_bucket_rows(*rel, r0, r1))  # noqa: E731
        return causal_silu_attention(q, k, v, rows, float(max_len), row_block)

    def grads(f):
        params = [q, k, v, *rab.parameters()]
        for p in params:
            p.grad = None
        out = f()
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        return out.detach(), [p.grad.clone() for p in params]

    (a, ga), (b, gb) = grads(square), grads(blocked)
    assert torch.allclose(a, b, atol=1e-12)
    assert all(torch.allclose(x, y, atol=1e-12) for x, y in zip(ga, gb, strict=True))
    with torch.no_grad():  # the in-place inference path
        assert torch.allclose(blocked(), a, atol=1e-12)


@pytest.mark.parametrize("span", [10**6, 2**40])  # int32 relative times, and the int64 fallback
def test_context_time_bucket_rows_and_last_row(span: int) -> None:
    from scalelab.models.base import Context

    g = torch.Generator().manual_seed(1)
    t = torch.sort(torch.randint(0, span, (2, 23), generator=g), 1).values
    nxt = torch.cat([t[:, 1:], t[:, -1:] + 3], 1)
    ctx = Context(torch.ones(2, 23, dtype=torch.bool), t, nxt)
    full = pair_time_buckets(nxt, t)
    for r0, r1 in [(0, 7), (7, 14), (14, 23)]:
        rows = ctx.time_bucket_rows(r0, r1)
        assert rows.shape == (2, r1 - r0, r1)
        assert torch.equal(rows.tril(r0), full[:, r0:r1, :r1].tril(r0))  # the causal part
    last = torch.tensor([22, 9])
    brute = torch.stack([time_buckets(nxt[b, last[b]] - t[b]) for b in range(2)])
    assert torch.equal(ctx.last_row_buckets(last).long(), brute)


@pytest.mark.parametrize("channels", [["semantic", "positional", "temporal"], ["temporal"]])
def test_fuxi_row_blocks_equal_one_block(channels: list[str], monkeypatch) -> None:
    """FuXi-alpha's channels computed a few query rows at a time (the CPU path) give the outputs and
    gradients of one block over all rows (the accelerator path)."""
    import scalelab.models.fuxi_alpha as fuxi

    torch.manual_seed(0)
    model = build_model(
        ModelConfig(family="fuxi_alpha", depth=2, width=16, heads=2, fuxi_channels=channels), 30, 23
    )
    model = model.double().eval()  # no dropout: both runs see the same function
    items = torch.randint(1, 31, (3, 23))
    items[1, 15:] = 0
    ts = torch.cumsum(torch.randint(1, 10**5, (3, 23)), 1)

    def run(row_block: int):
        monkeypatch.setattr(fuxi, "ROW_BLOCK", row_block)
        model.zero_grad()
        h = model(items, ts)
        (h * torch.linspace(-1, 1, h.numel(), dtype=h.dtype).view_as(h)).sum().backward()
        return h.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    (a, ga), (b, gb) = run(10**6), run(5)
    assert torch.allclose(a, b, atol=1e-12)
    assert len(ga) == len(gb) and all(torch.allclose(x, y, atol=1e-12) for x, y in zip(ga, gb, strict=True))
