"""Adding an architecture is one file and one registry line: this file is the toy family's file
(model + size formula), and `register` below is its registry line. Config validation, the model
builder, the size accounting and training then treat it like a built-in family."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from scalelab.config import ModelConfig, load_config
from scalelab.errors import ConfigError
from scalelab.models import build_model, resolve
from scalelab.models.accounting import size_report
from scalelab.models.base import BlockStack, Context, RetrievalModel
from scalelab.models.blocks import layer_norm
from scalelab.models.registry import Family, register, unregister
from scalelab.models.spec import ModelSpec

# ------------------------------------------------------------------------- the toy family's file


class CausalMeanBlock(nn.Module):
    """y = x + W LN(mean of x_0..x_i): a causal mixer without attention."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.mix = nn.Linear(spec.width, spec.width)

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        count = ctx.valid.cumsum(1).clamp(min=1)[..., None]  # (B, n, 1)
        return x + self.mix(layer_norm(x.cumsum(1) / count))


def build(spec: ModelSpec, num_items: int) -> RetrievalModel:
    return RetrievalModel(spec, num_items, BlockStack([CausalMeanBlock(spec) for _ in range(spec.depth)]))


def toy_block(spec: ModelSpec) -> tuple[int, int]:
    return spec.width * spec.width + spec.width, spec.width * spec.width


TOY = Family(__name__, "toy: causal running mean + linear", block_size=toy_block, attention_width=lambda s: 0)

# ------------------------------------------------------------------------------------- the tests


@pytest.fixture
def toy() -> Iterator[None]:
    register("toy", TOY)  # the registry line
    yield
    unregister("toy")


def test_unknown_family_is_refused_until_registered() -> None:
    with pytest.raises(ValueError, match="unknown family 'toy'"):
        ModelConfig(family="toy")


def test_toy_family_validates_builds_and_is_sized(toy: None) -> None:
    cfg = ModelConfig(family="toy", width=12, depth=3)
    with pytest.raises(ValueError, match="toy has no 'rab' switch"):
        ModelConfig(family="toy", rab="none")
    model = build_model(cfg, 40, 21)
    spec = resolve(cfg, 21)
    size = size_report(spec, 40, negatives=8)
    emb = model.item_emb.weight.numel() + model.pos_emb.weight.numel()
    assert size.embedding_params == emb
    assert size.non_embedding_params == sum(p.numel() for p in model.parameters()) - emb
    assert size.attention_flops_per_token == 0.0
    items = torch.tensor([[3, 5, 7, 0], [1, 2, 3, 4]])
    out = model(items, torch.arange(8).view(2, 4))
    assert out.shape == (2, 4, 12) and torch.all(out[0, 3] == 0)


def test_toy_family_trains(toy: None, tmp_path: Path) -> None:
    from scalelab.training.trainer import train_run

    settings = [
        "model.family=toy", "model.width=16", "model.depth=2", "data.synthetic.num_users=200",
        "data.synthetic.num_items=60", "data.synthetic.mean_seq_len=12", "data.max_seq_len=12",
        "train.epochs=1", "train.batch_size=64", "train.num_negatives=8", "train.device=cpu", "eval.ks=[10]",
    ]  # fmt: skip
    summary = train_run(load_config(None, settings), tmp_path / "run")
    assert summary["status"] == "finished"
    assert summary["size"]["non_embedding_params"] == 2 * (16 * 16 + 16)
    with pytest.raises(ConfigError, match="rab"):
        load_config(None, [*settings, "model.rab=none"])
