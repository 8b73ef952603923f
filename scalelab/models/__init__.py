"""The model zoo. `build_model(cfg, num_items, max_len)` builds any registered family."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from scalelab.models.registry import FAMILIES, ModelSpec, resolve

if TYPE_CHECKING:
    from scalelab.config import ModelConfig
    from scalelab.models.base import RetrievalModel


def build_from_spec(spec: ModelSpec, num_items: int) -> RetrievalModel:
    module = importlib.import_module(FAMILIES[spec.family].module)
    return module.build(spec, num_items)


def build_model(cfg: ModelConfig, num_items: int, max_len: int | None = None) -> RetrievalModel:
    """Build the model of `cfg` for a catalogue of `num_items` and padded length `max_len`."""
    return build_from_spec(resolve(cfg, max_len), num_items)


__all__ = ["FAMILIES", "ModelSpec", "build_from_spec", "build_model", "resolve"]
