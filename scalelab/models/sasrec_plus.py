"""SASRec+ (2412.00714, Table 3): SASRec with two switchable scaling fixes.

(a) HSTU's relative attention bias added to the attention logits (`rab`, default position_time);
(b) the pre-norm residual x + f(LN(x)) instead of SASRec's residual around LN(x) (`residual: pre`).
Everything else is SASRec's block (see `sasrec.py`).
"""

from __future__ import annotations

from scalelab.models.base import RetrievalModel
from scalelab.models.sasrec import SASRecEncoder
from scalelab.models.spec import ModelSpec


def build(spec: ModelSpec, num_items: int) -> RetrievalModel:
    return RetrievalModel(spec, num_items, SASRecEncoder(spec))
