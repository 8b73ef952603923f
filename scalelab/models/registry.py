"""The architecture registry: family name -> module, defaults and allowed switches.

Torch-free, so configs are validated (and sweeps sized) without importing torch. Adding an
architecture is one new file in `scalelab/models/` with a `build(spec, num_items)` function and one
line in `FAMILIES` below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from scalelab.config import ModelConfig


@dataclass(frozen=True)
class Family:
    module: str  # import path holding build(spec, num_items) -> RetrievalModel
    description: str
    # default value of every switch the family has; a switch absent here is refused
    defaults: dict[str, object] = field(default_factory=dict)
    allowed: dict[str, tuple[object, ...]] = field(default_factory=dict)
    absolute_positions: bool = True  # uses the learned absolute position table
    tasks: tuple[str, ...] = ("retrieval", "ranking")  # a sequence encoder does both


_RAB = ("none", "position", "position_time")
_CHANNELS = ("semantic", "positional", "temporal")

FAMILIES: dict[str, Family] = {
    "hstu": Family(
        "scalelab.models.hstu",
        "HSTU (Meta, ICML 2024): pointwise SiLU attention, relative bias, gating",
        {"rab": "position_time", "attention": "silu", "gate": True},
        {"rab": _RAB, "attention": ("silu", "softmax"), "gate": (True, False)},
    ),
    "sasrec": Family(
        "scalelab.models.sasrec",
        "SASRec (Kang & McAuley 2018), residual around LN(x), ReLU FFN",
        {"rab": "none", "attention": "softmax", "residual": "post", "ffn_multiplier": 1.0},
        {"rab": ("none",), "attention": ("softmax",), "residual": ("post",)},
    ),
    "sasrec_plus": Family(
        "scalelab.models.sasrec_plus",
        "SASRec+ (2412.00714): SASRec with HSTU's relative bias and pre-norm",
        {"rab": "position_time", "attention": "softmax", "residual": "pre", "ffn_multiplier": 1.0},
        {"rab": _RAB, "attention": ("softmax",), "residual": ("post", "pre")},
    ),
    "gpt": Family(
        "scalelab.models.gpt",
        "GPT-style: pre-LN, learned positions, softmax attention, GELU MLP",
        {"rab": "none", "attention": "softmax", "ffn_multiplier": 4.0},
        {"rab": ("none",), "attention": ("softmax",)},
    ),
    "llama": Family(
        "scalelab.models.llama",
        "Llama-style: pre-RMSNorm, RoPE, softmax attention, SwiGLU, no biases",
        {"rab": "none", "attention": "softmax", "ffn_multiplier": 8.0 / 3.0},
        {"rab": ("none",), "attention": ("softmax",)},
        absolute_positions=False,
    ),
    "fuxi_alpha": Family(
        "scalelab.models.fuxi_alpha",
        "FuXi-alpha (2502.03036): multi-channel attention, multi-stage FFN",
        {"fuxi_channels": list(_CHANNELS), "ffn_multiplier": 1.0},
        {},
    ),
    "din": Family(
        "scalelab.models.din",
        "DIN (Zhou et al., KDD 2018): target attention over the history + MLP; ranking only, "
        "depth = hidden layers of the MLP",
        absolute_positions=False,
        tasks=("ranking",),
    ),
}

_SWITCHES = ("rab", "attention", "gate", "residual", "ffn_multiplier", "fuxi_channels")


@dataclass(frozen=True)
class ModelSpec:
    """A model config with every family default filled in and the sizes resolved."""

    family: str
    depth: int
    width: int
    heads: int
    head_dim: int
    ffn_hidden: int  # 0 for families without an FFN
    dropout: float
    max_len: int  # padded length N: sizes the position tables and HSTU's attention divisor
    rab: Literal["none", "position", "position_time"]
    attention: Literal["silu", "softmax"]
    gate: bool
    residual: Literal["post", "pre"]
    fuxi_channels: tuple[str, ...]
    absolute_positions: bool
    time_buckets: Literal["exact", "float32"] = "exact"


def family_names() -> list[str]:
    return list(FAMILIES)


def check_model_config(cfg: ModelConfig) -> None:
    """Raise ValueError for an unknown family or a switch the family does not have."""
    fam = FAMILIES.get(cfg.family)
    if fam is None:
        raise ValueError(f"unknown family {cfg.family!r}; known: {', '.join(FAMILIES)}")
    for name in _SWITCHES:
        value = getattr(cfg, name)
        if value is None:
            continue
        if name not in fam.defaults:
            raise ValueError(f"{cfg.family} has no '{name}' switch")
        allowed = fam.allowed.get(name)
        if allowed is not None and value not in allowed:
            raise ValueError(f"{cfg.family} does not support {name}={value!r} (allowed: {list(allowed)})")
    channels = cfg.fuxi_channels
    if channels is not None and (not channels or len(set(channels)) != len(channels)):
        raise ValueError("fuxi_channels must list distinct channels, at least one")


def resolve(cfg: ModelConfig, max_len: int | None = None) -> ModelSpec:
    """Fill family defaults. The padded length N is cfg.max_seq_len, else `max_len`."""
    check_model_config(cfg)
    n = cfg.max_seq_len or max_len
    if n is None:
        raise ValueError("the model's padded length is unknown: set model.max_seq_len")
    fam = FAMILIES[cfg.family]

    def pick(name: str, fallback: object) -> object:
        value = getattr(cfg, name)
        return value if value is not None else fam.defaults.get(name, fallback)

    mult = pick("ffn_multiplier", 0.0)
    return ModelSpec(
        family=cfg.family,
        depth=cfg.depth,
        width=cfg.width,
        heads=cfg.heads,
        head_dim=cfg.head_dim or cfg.width // cfg.heads,
        ffn_hidden=max(1, round(float(mult) * cfg.width)) if mult else 0,  # type: ignore[arg-type]
        dropout=cfg.dropout,
        max_len=n,
        rab=pick("rab", "none"),  # type: ignore[arg-type]
        attention=pick("attention", "softmax"),  # type: ignore[arg-type]
        gate=bool(pick("gate", False)),
        residual=pick("residual", "pre"),  # type: ignore[arg-type]
        fuxi_channels=tuple(pick("fuxi_channels", ())),  # type: ignore[arg-type]
        absolute_positions=fam.absolute_positions,
        time_buckets=cfg.time_buckets,
    )
