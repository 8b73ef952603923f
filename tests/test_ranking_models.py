"""Ranking models: DIN's attention is confined to the history; scorers see history and candidate."""

from __future__ import annotations

import pytest
import torch

from scalelab.config import ModelConfig
from scalelab.models import build_model
from scalelab.models.din import DIN
from scalelab.models.ranking import EncoderRanker


def batch(b: int = 4, n: int = 6, items: int = 30) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, items + 1, (b, n), generator=g)
    lengths = torch.tensor([6, 3, 1, 5])[:b]
    x = x * (torch.arange(n)[None] < lengths[:, None])
    t = torch.cumsum(torch.randint(1, 100, (b, n), generator=g), 1) * (x != 0)
    cand = torch.randint(1, items + 1, (b,), generator=g)
    return x, t, cand, t.max(1).values + 10


def test_din_attention_is_masked_to_the_history() -> None:
    torch.manual_seed(0)
    model = DIN(30, 8).eval()
    x, t, cand, _qt = batch()
    a = model.attention_weights(x, cand)
    assert (a[x == 0] == 0).all() and (a[x != 0] != 0).any()
    out = model.score_pairs(x, t, cand)
    # more padding, or garbage written into padded slots of the embedding, changes nothing
    wide = torch.cat([x, torch.zeros(4, 5, dtype=x.dtype)], 1)
    assert torch.allclose(model.score_pairs(wide, None, cand), out, atol=1e-6)
    with torch.no_grad():
        model.item_emb.weight[0].fill_(3.0)
    assert torch.allclose(model.score_pairs(x, t, cand), out, atol=1e-6)


def test_din_depends_on_each_history_item_and_the_candidate() -> None:
    torch.manual_seed(0)
    model = DIN(30, 8).eval()
    x, t, cand, _qt = batch()
    out = model.score_pairs(x, t, cand)
    changed = x.clone()
    changed[0, 2] = (changed[0, 2] % 30) + 1
    diff = model.score_pairs(changed, t, cand) - out
    assert diff[0].abs() > 0 and torch.allclose(diff[1:], torch.zeros(3), atol=1e-7)
    assert (model.score_pairs(x, t, (cand % 30) + 1) != out).all()


@pytest.mark.parametrize("scorer", ["dot", "mlp", "cross"])
@pytest.mark.parametrize("family", ["hstu", "llama"])
def test_encoder_rankers_score_pairs_and_train(family: str, scorer: str) -> None:
    torch.manual_seed(0)
    enc = build_model(ModelConfig(family=family, depth=1, width=8, heads=1, dropout=0.0), 30, max_len=8)
    model = EncoderRanker(enc, scorer)
    x, t, cand, qt = batch()
    logits = model.score_pairs(x, t, cand, qt)
    assert logits.shape == (4,) and torch.isfinite(logits).all()
    # the candidate matters, and the history matters
    assert (model.score_pairs(x, t, (cand % 30) + 1, qt) != logits).any()
    changed = x.clone()
    changed[0, 0] = (changed[0, 0] % 30) + 1
    assert model.score_pairs(changed, t, cand, qt)[0] != logits[0]
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([1.0, 0, 1, 0]))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_unknown_scorer() -> None:
    enc = build_model(ModelConfig(family="hstu", depth=1, width=8), 30, max_len=8)
    with pytest.raises(ValueError, match="unknown scorer"):
        EncoderRanker(enc, "bilinear")


@pytest.mark.parametrize("family", ["hstu", "llama", "din"])
def test_window_scoring_equals_scoring_each_prefix(family: str) -> None:
    """Training scores every example of a window from one pass; each must equal scoring the example's
    own history (the prefix before it, queried at its event's time) alone."""
    from scalelab.models import build_from_spec, resolve

    torch.manual_seed(0)
    spec = resolve(
        ModelConfig(family=family, depth=2, width=8, heads=1 if family == "din" else 2, dropout=0.0), 8
    )
    inner = build_from_spec(spec, 30)
    model = (inner if family == "din" else EncoderRanker(inner, "cross")).eval()
    x, t, _cand, _qt = batch()
    row = torch.tensor([0, 0, 0, 1, 3, 3])
    col = torch.tensor([0, 2, 4, 1, 0, 3])  # last history column; the event predicted is col + 1
    cand = torch.tensor([5, 9, 9, 1, 30, 2])
    together = model(x, t, None, None, row, col, cand)
    for k in range(len(row)):
        b, c = int(row[k]), int(col[k])
        alone = model.score_pairs(
            x[b : b + 1, : c + 1], t[b : b + 1, : c + 1], cand[k : k + 1], t[b, c + 1 : c + 2]
        )
        assert torch.allclose(together[k], alone[0], atol=1e-5), (k, together[k], alone)


@pytest.mark.parametrize(
    ("family", "scorer", "depth"),
    [("din", "cross", 2), ("din", "cross", 4), ("hstu", "dot", 2), ("llama", "mlp", 2), ("hstu", "cross", 3)],
)
def test_analytic_ranking_sizes_match_the_built_models(family: str, scorer: str, depth: int) -> None:
    from scalelab.models import build_from_spec, resolve
    from scalelab.models.accounting import ranking_size_report

    spec = resolve(ModelConfig(family=family, depth=depth, width=12, heads=1 if family == "din" else 2), 21)
    inner = build_from_spec(spec, 40)
    model = inner if family == "din" else EncoderRanker(inner, scorer)
    emb = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters())
    total = sum(p.numel() for p in model.parameters())
    size = ranking_size_report(spec, 40, negative_rate=1.0, scorer=scorer)
    assert (size.embedding_params, size.non_embedding_params) == (emb, total - emb)
    assert size.flops_per_token > 0
