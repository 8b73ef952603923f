"""The resolved description of a model that every layer shares (torch-free, imports nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
