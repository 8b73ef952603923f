"""The model interface shared by every architecture: input layer, encoder, scorer.

A `RetrievalModel` maps a batch of right-padded item-id sequences (+ timestamps) to one user
representation per position. The item table is shared between input and output; scores are
cosine similarities divided by a temperature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from scalelab.models.blocks import Dropout, TimeBucketing, next_timestamps
from scalelab.models.kernels import pair_time_buckets, relative_times, time_bucket_rows
from scalelab.models.side import SideInputs
from scalelab.models.spec import ModelSpec


@dataclass
class Context:
    """What blocks may need besides the hidden states. Time buckets are computed on first use and
    shared by every block."""

    valid: torch.Tensor  # (B, n) bool, real items
    timestamps: torch.Tensor | None  # (B, n) int64 seconds
    next_t: torch.Tensor | None  # (B, n) int64, t_{i+1} (see blocks.next_timestamps)
    bucketing: TimeBucketing = "exact"  # how gaps become buckets (model.time_buckets)
    _buckets: torch.Tensor | None = None
    _rows: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)
    _relative: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def has_times(self) -> bool:
        return self.timestamps is not None and self.next_t is not None

    @property
    def time_buckets(self) -> torch.Tensor | None:
        """(B, n, n) bucket(t_{i+1} - t_j) (lower triangle, see kernels.pair_time_buckets)."""
        if self._buckets is None and self.next_t is not None and self.timestamps is not None:
            self._buckets = pair_time_buckets(self.next_t, self.timestamps, bucketing=self.bucketing)
        return self._buckets

    def _times(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._relative is None:
            assert self.next_t is not None and self.timestamps is not None
            self._relative = relative_times(self.next_t, self.timestamps)
        return self._relative

    def time_bucket_rows(self, r0: int, r1: int) -> torch.Tensor | None:
        """(B, r1 - r0, r1) buckets of query rows r0:r1 against keys 0:r1 (a row block of
        `causal_silu_attention`), without building the (B, n, n) tensor."""
        if not self.has_times:
            return None
        if self._buckets is not None:
            return self._buckets[:, r0:r1, :r1]
        if (r0, r1) not in self._rows:
            self._rows[(r0, r1)] = time_bucket_rows(*self._times(), r0, r1, self.bucketing)
        return self._rows[(r0, r1)]

    def last_row_buckets(self, last: torch.Tensor) -> torch.Tensor | None:
        """(B, n) bucket(t_{last[b]+1} - t_j) of each user's row `last[b]` against every key."""
        if not self.has_times:
            return None
        next_t, t = self._times()
        rows = torch.arange(len(last), device=last.device)
        return time_bucket_rows(next_t[rows, last][:, None], t, 0, t.shape[1], self.bucketing)[:, 0]


class Encoder(nn.Module):
    """A stack of blocks: (B, n, D) -> (B, n, D)."""

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def forward_last(self, x: torch.Tensor, ctx: Context, last: torch.Tensor) -> torch.Tensor:
        """Hidden state at position last[b] of each row, (B, D). Encoders may override this with a
        cheaper path (only the last block's final row is needed for retrieval)."""
        return self.forward(x, ctx)[torch.arange(x.shape[0], device=x.device), last]


class BlockStack(Encoder):
    """Blocks applied in order; `blocks` keeps the state-dict keys `encoder.blocks.<i>.*`."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, ctx)
        return x


class RetrievalModel(nn.Module):
    """Item embedding + (absolute positions) -> encoder -> per-position user representation."""

    def __init__(self, spec: ModelSpec, num_items: int, encoder: Encoder) -> None:
        super().__init__()
        self.spec = spec
        self.num_items = num_items
        d = spec.width
        self.item_emb = nn.Embedding(num_items + 1, d, padding_idx=0)
        nn.init.trunc_normal_(self.item_emb.weight, std=0.02, a=-0.04, b=0.04)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.pos_emb: nn.Embedding | None = None
        if spec.absolute_positions:
            self.pos_emb = nn.Embedding(spec.max_len, d)
            std = math.sqrt(1.0 / d)
            nn.init.trunc_normal_(self.pos_emb.weight, std=std, a=-2 * std, b=2 * std)
        self.input_dropout = Dropout(spec.dropout)
        self.encoder = encoder
        self.side: SideInputs | None = None  # domain / feature / behaviour embeddings, when used

    def forward(
        self,
        items: torch.Tensor,
        timestamps: torch.Tensor | None = None,
        query_time: torch.Tensor | None = None,
        extra: torch.Tensor | None = None,
        behaviours: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden state at every position, (B, n, D); zero at padded positions.

        items: (B, n) int64, right-padded with 0. timestamps: (B, n) int64 seconds (needed by the
        time bias). query_time: (B,) time of the event to predict after each user's last item.
        extra: (B, n, D) optional side-feature embeddings added to the input. behaviours: (B, n)
        behaviour codes of the events (used when the model has a behaviour embedding).
        """
        x, ctx = self._embed(items, timestamps, query_time, extra, behaviours)
        return self.encoder(x, ctx) * ctx.valid[..., None]

    def _embed(
        self,
        items: torch.Tensor,
        timestamps: torch.Tensor | None,
        query_time: torch.Tensor | None,
        extra: torch.Tensor | None = None,
        behaviours: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Context]:
        n = items.shape[1]
        if n > self.spec.max_len:
            raise ValueError(f"sequence length {n} exceeds the model's max_seq_len {self.spec.max_len}")
        valid = items != 0
        e = self.item_emb(items) if self.side is None else self.side.embed(self.item_emb, items, behaviours)
        x = e * math.sqrt(self.spec.width)
        if self.pos_emb is not None:
            x = x + self.pos_emb.weight[:n][None]
        if extra is not None:
            x = x + extra
        x = self.input_dropout(x) * valid[..., None]
        next_t = next_timestamps(timestamps, valid, query_time) if timestamps is not None else None
        return x, Context(valid, timestamps, next_t, self.spec.time_buckets)

    # ------------------------------------------------------------------------------- scoring

    @staticmethod
    def normalize(x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1, eps=1e-6)

    def item_table(self) -> torch.Tensor:
        """Unnormalised representation of every id 0..num_items (row 0 = padding), (I+1, D): the item
        table, plus the items' side inputs when the model has them."""
        if self.side is None:
            return self.item_emb.weight
        return self.side.embed(
            self.item_emb, torch.arange(self.num_items + 1, device=self.item_emb.weight.device)
        )

    def item_embeddings(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised output embeddings of `ids` (default: every real item 1..num_items)."""
        if ids is None:
            return self.normalize(self.item_table()[1:])
        w = self.item_emb(ids) if self.side is None else self.side.embed(self.item_emb, ids)
        return self.normalize(w)

    def last_state(
        self,
        items: torch.Tensor,
        timestamps: torch.Tensor | None = None,
        query_time: torch.Tensor | None = None,
        behaviours: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """L2-normalised representation at each sequence's last real item, (B, D)."""
        x, ctx = self._embed(items, timestamps, query_time, behaviours=behaviours)
        last = (ctx.valid.sum(1) - 1).clamp(min=0)
        return self.normalize(self.encoder.forward_last(x, ctx, last))

    @staticmethod
    def score(users: torch.Tensor, items: torch.Tensor, temperature: float) -> torch.Tensor:
        """Cosine logits / temperature between normalised users (..., D) and items (M, D)."""
        return users @ items.T / temperature
