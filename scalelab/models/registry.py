"""The architecture registry: family name -> `Family` (module, defaults, switches, size formulas).

Torch-free and at the bottom of the package (it imports only `spec` and `sizes`), so configs are
validated and sweeps sized without importing torch. Adding an architecture is one new file in
`scalelab/models/` with a `build(spec, num_items)` function and one `Family` entry in `FAMILIES`
naming its size formulas (torch-free functions: the built-in ones are in `sizes.py`); a family
from outside the package is added with `register` (tests/test_family_plugin.py registers a toy one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from scalelab.models import sizes
from scalelab.models.sizes import SizeReport
from scalelab.models.spec import ModelSpec

BlockSize = Callable[[ModelSpec], tuple[int, int]]  # (params, matmul weights) of one block
OwnSize = Callable[[ModelSpec, int, float, "float | None"], SizeReport]  # (spec, items, rate, history)


@dataclass(frozen=True)
class Family:
    module: str  # import path holding build(spec, num_items)
    description: str
    # default value of every switch the family has; a switch absent here is refused
    defaults: dict[str, object] = field(default_factory=dict)
    allowed: dict[str, tuple[object, ...]] = field(default_factory=dict)
    absolute_positions: bool = True  # uses the learned absolute position table
    tasks: tuple[str, ...] = ("retrieval", "ranking")  # a sequence encoder does both
    # size formulas (sizes.py): one block, the attention widths per head and layer, the final norm
    block_size: BlockSize | None = None
    attention_width: Callable[[ModelSpec], int] = sizes.qk_and_v
    final_norm: Callable[[ModelSpec], int] = sizes.no_final_norm
    # a model that is not a sequence encoder (ranking only) sizes itself whole
    own_size: OwnSize | None = None

    @property
    def is_encoder(self) -> bool:
        """A sequence encoder (per-position states; ranking wraps it in a scoring head)."""
        return "retrieval" in self.tasks


_RAB = ("none", "position", "position_time")
_CHANNELS = ("semantic", "positional", "temporal")

FAMILIES: dict[str, Family] = {
    "hstu": Family(
        "scalelab.models.hstu",
        "HSTU (Meta, ICML 2024): pointwise SiLU attention, relative bias, gating",
        {"rab": "position_time", "attention": "silu", "gate": True},
        {"rab": _RAB, "attention": ("silu", "softmax"), "gate": (True, False)},
        block_size=sizes.hstu_block,
    ),
    "sasrec": Family(
        "scalelab.models.sasrec",
        "SASRec (Kang & McAuley 2018), residual around LN(x), ReLU FFN",
        {"rab": "none", "attention": "softmax", "residual": "post", "ffn_multiplier": 1.0},
        {"rab": ("none",), "attention": ("softmax",), "residual": ("post",)},
        block_size=sizes.sasrec_block,
    ),
    "sasrec_plus": Family(
        "scalelab.models.sasrec_plus",
        "SASRec+ (2412.00714): SASRec with HSTU's relative bias and pre-norm",
        {"rab": "position_time", "attention": "softmax", "residual": "pre", "ffn_multiplier": 1.0},
        {"rab": _RAB, "attention": ("softmax",), "residual": ("post", "pre")},
        block_size=sizes.sasrec_block,
    ),
    "gpt": Family(
        "scalelab.models.gpt",
        "GPT-style: pre-LN, learned positions, softmax attention, GELU MLP",
        {"rab": "none", "attention": "softmax", "ffn_multiplier": 4.0},
        {"rab": ("none",), "attention": ("softmax",)},
        block_size=sizes.gpt_block,
        final_norm=sizes.layer_norm_final,
    ),
    "llama": Family(
        "scalelab.models.llama",
        "Llama-style: pre-RMSNorm, RoPE, softmax attention, SwiGLU, no biases",
        {"rab": "none", "attention": "softmax", "ffn_multiplier": 8.0 / 3.0},
        {"rab": ("none",), "attention": ("softmax",)},
        absolute_positions=False,
        block_size=sizes.llama_block,
        final_norm=sizes.rms_norm_final,
    ),
    "fuxi_alpha": Family(
        "scalelab.models.fuxi_alpha",
        "FuXi-alpha (2502.03036): multi-channel attention, multi-stage FFN",
        {"fuxi_channels": list(_CHANNELS), "ffn_multiplier": 1.0},
        {},
        block_size=sizes.fuxi_block,
        attention_width=sizes.fuxi_attention,
    ),
    "din": Family(
        "scalelab.models.din",
        "DIN (Zhou et al., KDD 2018): target attention over the history + MLP; ranking only, "
        "depth = hidden layers of the MLP",
        absolute_positions=False,
        tasks=("ranking",),
        own_size=sizes.din_size,
    ),
}

_SWITCHES = ("rab", "attention", "gate", "residual", "ffn_multiplier", "fuxi_channels")


class ModelSettings(Protocol):
    """What the registry reads of a model config (`scalelab.config.ModelConfig` has it); read-only,
    so a config with narrower (Literal) types fits."""

    @property
    def family(self) -> str: ...
    @property
    def depth(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def heads(self) -> int: ...
    @property
    def head_dim(self) -> int | None: ...
    @property
    def dropout(self) -> float: ...
    @property
    def max_seq_len(self) -> int | None: ...
    @property
    def time_buckets(self) -> Literal["exact", "float32"]: ...
    # the family switches; None = the family's default
    @property
    def rab(self) -> str | None: ...
    @property
    def attention(self) -> str | None: ...
    @property
    def gate(self) -> bool | None: ...
    @property
    def residual(self) -> str | None: ...
    @property
    def ffn_multiplier(self) -> float | None: ...
    @property
    def fuxi_channels(self) -> Sequence[str] | None: ...


def family_names() -> list[str]:
    return list(FAMILIES)


def family(name: str) -> Family:
    """The registered family `name` (ValueError naming the known ones otherwise)."""
    fam = FAMILIES.get(name)
    if fam is None:
        raise ValueError(f"unknown family {name!r}; known: {', '.join(FAMILIES)}")
    return fam


def register(name: str, fam: Family) -> None:
    """Add a family from outside the package (its module must be importable by the trials)."""
    if fam.block_size is None and fam.own_size is None:
        raise ValueError(f"family {name!r} needs a size formula (block_size or own_size)")
    FAMILIES[name] = fam


def unregister(name: str) -> None:
    FAMILIES.pop(name, None)


def check_model_config(cfg: ModelSettings) -> None:
    """Raise ValueError for an unknown family or a switch the family does not have."""
    fam = family(cfg.family)
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


def resolve(cfg: ModelSettings, max_len: int | None = None) -> ModelSpec:
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
